package server

import (
	"net/http"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/control"
)

// The handlers of hosts, vSwitches, tenants, tokens and events: decode, call
// control, encode.

func (s *Server) registerHost(w http.ResponseWriter, r *http.Request) {
	var h apiv1.Host
	if err := decode(r, &h); err != nil {
		writeError(w, r, err)
		return
	}
	out, err := s.svc.RegisterHost(r.Context(), principal(r), &h)
	respond(w, r, http.StatusOK, out, err)
}

func (s *Server) listHosts(w http.ResponseWriter, r *http.Request) {
	hosts, err := s.svc.ListHosts(r.Context(), principal(r))
	respond(w, r, http.StatusOK, apiv1.List[apiv1.Host]{Items: hosts}, err)
}

func (s *Server) capacity(w http.ResponseWriter, r *http.Request) {
	c, err := s.svc.Capacity(r.Context(), principal(r))
	respond(w, r, http.StatusOK, c, err)
}

func (s *Server) getHost(w http.ResponseWriter, r *http.Request) {
	h, err := s.svc.GetHost(r.Context(), principal(r), r.PathValue("name"))
	respond(w, r, http.StatusOK, h, err)
}

func (s *Server) updateHost(w http.ResponseWriter, r *http.Request) {
	var u apiv1.HostUpdate
	if err := decode(r, &u); err != nil {
		writeError(w, r, err)
		return
	}
	h, err := s.svc.UpdateHost(r.Context(), principal(r), r.PathValue("name"), u)
	respond(w, r, http.StatusOK, h, err)
}

func (s *Server) heartbeat(w http.ResponseWriter, r *http.Request) {
	h, err := s.svc.Heartbeat(r.Context(), principal(r), r.PathValue("name"))
	respond(w, r, http.StatusOK, h, err)
}

func (s *Server) syncWarmPool(w http.ResponseWriter, r *http.Request) {
	var req apiv1.WarmPoolSync
	if err := decode(r, &req); err != nil {
		writeError(w, r, err)
		return
	}
	out, err := s.svc.SyncWarmPool(r.Context(), principal(r), r.PathValue("name"), req)
	respond(w, r, http.StatusOK, out, err)
}

func (s *Server) createVSwitch(w http.ResponseWriter, r *http.Request) {
	var v apiv1.VSwitch
	if err := decode(r, &v); err != nil {
		writeError(w, r, err)
		return
	}
	out, err := s.svc.CreateVSwitch(r.Context(), principal(r), &v)
	respond(w, r, http.StatusCreated, out, err)
}

func (s *Server) listVSwitches(w http.ResponseWriter, r *http.Request) {
	vs, err := s.svc.ListVSwitches(r.Context(), principal(r))
	respond(w, r, http.StatusOK, apiv1.List[apiv1.VSwitch]{Items: vs}, err)
}

func (s *Server) getVSwitch(w http.ResponseWriter, r *http.Request) {
	v, err := s.svc.GetVSwitch(r.Context(), principal(r), r.PathValue("id"))
	respond(w, r, http.StatusOK, v, err)
}

func (s *Server) deleteVSwitch(w http.ResponseWriter, r *http.Request) {
	err := s.svc.DeleteVSwitch(r.Context(), principal(r), r.PathValue("id"))
	respond(w, r, http.StatusNoContent, nil, err)
}

func (s *Server) putTenant(w http.ResponseWriter, r *http.Request) {
	var t apiv1.Tenant
	if err := decode(r, &t); err != nil {
		writeError(w, r, err)
		return
	}
	if t.Metadata.Name == "" {
		t.Metadata.Name = r.PathValue("name")
	}
	if t.Metadata.Name != r.PathValue("name") {
		writeError(w, r, badRequest("metadata.name", "must match the name in the path"))
		return
	}
	out, err := s.svc.PutTenant(r.Context(), principal(r), &t)
	respond(w, r, http.StatusOK, out, err)
}

func (s *Server) listTenants(w http.ResponseWriter, r *http.Request) {
	ts, err := s.svc.ListTenants(r.Context(), principal(r))
	respond(w, r, http.StatusOK, apiv1.List[apiv1.Tenant]{Items: ts}, err)
}

func (s *Server) getTenant(w http.ResponseWriter, r *http.Request) {
	t, err := s.svc.GetTenant(r.Context(), principal(r), r.PathValue("name"))
	respond(w, r, http.StatusOK, t, err)
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) {
	var t apiv1.Token
	if err := decode(r, &t); err != nil {
		writeError(w, r, err)
		return
	}
	out, err := s.svc.CreateToken(r.Context(), principal(r), &t)
	respond(w, r, http.StatusCreated, out, err)
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) {
	out, err := s.svc.ListTokens(r.Context(), principal(r))
	respond(w, r, http.StatusOK, apiv1.List[apiv1.Token]{Items: out}, err)
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) {
	out, err := s.svc.RevokeToken(r.Context(), principal(r), r.PathValue("id"))
	respond(w, r, http.StatusOK, out, err)
}

func (s *Server) listEvents(w http.ResponseWriter, r *http.Request) {
	listOrWatch(s, w, r, func(rv string) (*control.Watch[apiv1.Event], error) {
		return s.svc.WatchEvents(r.Context(), principal(r), rv)
	}, func() (any, error) {
		evs, err := s.svc.ListEvents(r.Context(), principal(r), r.URL.Query().Get("object"))
		return apiv1.List[apiv1.Event]{Items: evs}, err
	})
}

func (s *Server) addEvent(w http.ResponseWriter, r *http.Request) {
	var ev apiv1.Event
	if err := decode(r, &ev); err != nil {
		writeError(w, r, err)
		return
	}
	out, err := s.svc.AddEvent(r.Context(), principal(r), &ev)
	respond(w, r, http.StatusCreated, out, err)
}

func respond(w http.ResponseWriter, r *http.Request, code int, v any, err error) {
	if err != nil {
		writeError(w, r, err)
		return
	}
	if code == http.StatusNoContent {
		w.WriteHeader(code)
		return
	}
	writeJSON(w, code, v)
}
