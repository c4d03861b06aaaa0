package server

import (
	"net/http"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/control"
)

func (s *Server) putSecurityGroup(w http.ResponseWriter, r *http.Request) {
	var g apiv1.SecurityGroup
	if err := decode(r, &g); err != nil {
		writeError(w, r, err)
		return
	}
	out, err := s.svc.PutSecurityGroup(r.Context(), principal(r), &g)
	respond(w, r, http.StatusOK, out, err)
}

// listSecurityGroups lists (or, with watch=true, watches) the security
// groups the caller may read.
func (s *Server) listSecurityGroups(w http.ResponseWriter, r *http.Request) {
	listOrWatch(s, w, r, func(rv string) (*control.Watch[apiv1.SecurityGroup], error) {
		return s.svc.WatchSecurityGroups(r.Context(), principal(r), rv)
	}, func() (any, error) { return s.svc.ListSecurityGroups(r.Context(), principal(r)) })
}

// deleteSecurityGroup removes a security group of the caller's tenant (the
// admin names the tenant: ?tenant=).
func (s *Server) deleteSecurityGroup(w http.ResponseWriter, r *http.Request) {
	err := s.svc.DeleteSecurityGroup(r.Context(), principal(r), r.URL.Query().Get("tenant"), r.PathValue("name"))
	respond(w, r, http.StatusNoContent, nil, err)
}
