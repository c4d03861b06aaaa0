package server

import (
	"net/http"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

func (s *Server) addRouteEntry(w http.ResponseWriter, r *http.Request) {
	var e apiv1.RouteEntry
	if err := decode(r, &e); err != nil {
		writeError(w, r, err)
		return
	}
	out, err := s.svc.AddRouteEntry(r.Context(), principal(r), &e)
	respond(w, r, http.StatusCreated, out, err)
}

func (s *Server) listRouteEntries(w http.ResponseWriter, r *http.Request) {
	es, err := s.svc.ListRouteEntries(r.Context(), principal(r))
	respond(w, r, http.StatusOK, apiv1.List[apiv1.RouteEntry]{Items: es}, err)
}

func (s *Server) deleteRouteEntry(w http.ResponseWriter, r *http.Request) {
	err := s.svc.DeleteRouteEntry(r.Context(), principal(r), r.PathValue("id"))
	respond(w, r, http.StatusNoContent, nil, err)
}
