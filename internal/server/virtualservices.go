package server

import (
	"net/http"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/control"
)

func (s *Server) putVirtualService(w http.ResponseWriter, r *http.Request) {
	var v apiv1.VirtualService
	if err := decode(r, &v); err != nil {
		writeError(w, r, err)
		return
	}
	out, err := s.svc.PutVirtualService(r.Context(), principal(r), &v)
	respond(w, r, http.StatusOK, out, err)
}

// listVirtualServices lists (or, with watch=true, watches) the virtual IPs of
// ?table= (every table the caller may read when empty).
func (s *Server) listVirtualServices(w http.ResponseWriter, r *http.Request) {
	f := control.VirtualServiceFilter{Table: r.URL.Query().Get("table")}
	watch, err := queryBool(r, "watch")
	if err != nil {
		writeError(w, r, err)
		return
	}
	if watch {
		vw, err := s.svc.WatchVirtualServices(r.Context(), principal(r), f, r.URL.Query().Get("resourceVersion"))
		if err != nil {
			writeError(w, r, err)
			return
		}
		serveWatch(s, w, r, vw)
		return
	}
	list, err := s.svc.ListVirtualServices(r.Context(), principal(r), f)
	respond(w, r, http.StatusOK, list, err)
}

// deleteVirtualService removes a virtual IP of the caller's table (the admin
// names the tenant: ?tenant=).
func (s *Server) deleteVirtualService(w http.ResponseWriter, r *http.Request) {
	err := s.svc.DeleteVirtualService(r.Context(), principal(r), r.URL.Query().Get("tenant"), r.PathValue("table"), r.PathValue("ip"))
	respond(w, r, http.StatusNoContent, nil, err)
}

// listAddresses lists (or, with watch=true, watches) where every group's
// address is routed: the hosts' view of the network.
func (s *Server) listAddresses(w http.ResponseWriter, r *http.Request) {
	listOrWatch(s, w, r, func(rv string) (*control.Watch[apiv1.InstanceAddress], error) {
		return s.svc.WatchAddresses(r.Context(), principal(r), rv)
	}, func() (any, error) { return s.svc.ListAddresses(r.Context(), principal(r)) })
}
