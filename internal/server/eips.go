package server

import (
	"net/http"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

func (s *Server) allocateEIP(w http.ResponseWriter, r *http.Request) {
	var e apiv1.EIP
	if err := decode(r, &e); err != nil {
		writeError(w, r, err)
		return
	}
	out, err := s.svc.AllocateEIP(r.Context(), principal(r), &e)
	respond(w, r, http.StatusCreated, out, err)
}

func (s *Server) listEIPs(w http.ResponseWriter, r *http.Request) {
	es, err := s.svc.ListEIPs(r.Context(), principal(r))
	respond(w, r, http.StatusOK, apiv1.List[apiv1.EIP]{Items: es}, err)
}

func (s *Server) getEIP(w http.ResponseWriter, r *http.Request) {
	e, err := s.svc.GetEIP(r.Context(), principal(r), r.PathValue("id"))
	respond(w, r, http.StatusOK, e, err)
}

func (s *Server) releaseEIP(w http.ResponseWriter, r *http.Request) {
	err := s.svc.ReleaseEIP(r.Context(), principal(r), r.PathValue("id"))
	respond(w, r, http.StatusNoContent, nil, err)
}
