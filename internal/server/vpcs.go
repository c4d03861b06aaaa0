package server

import (
	"net/http"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

func (s *Server) createVPC(w http.ResponseWriter, r *http.Request) {
	var v apiv1.VPC
	if err := decode(r, &v); err != nil {
		writeError(w, r, err)
		return
	}
	out, err := s.svc.CreateVPC(r.Context(), principal(r), &v)
	respond(w, r, http.StatusCreated, out, err)
}

func (s *Server) listVPCs(w http.ResponseWriter, r *http.Request) {
	vs, err := s.svc.ListVPCs(r.Context(), principal(r))
	respond(w, r, http.StatusOK, apiv1.List[apiv1.VPC]{Items: vs}, err)
}

func (s *Server) getVPC(w http.ResponseWriter, r *http.Request) {
	v, err := s.svc.GetVPC(r.Context(), principal(r), r.PathValue("id"))
	respond(w, r, http.StatusOK, v, err)
}

func (s *Server) deleteVPC(w http.ResponseWriter, r *http.Request) {
	err := s.svc.DeleteVPC(r.Context(), principal(r), r.PathValue("id"))
	respond(w, r, http.StatusNoContent, nil, err)
}
