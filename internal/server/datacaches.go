package server

import (
	"net/http"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// The handlers of data caches and of the hosts' data caches.

func (s *Server) createDataCache(w http.ResponseWriter, r *http.Request) {
	var c apiv1.DataCache
	if err := decode(r, &c); err != nil {
		writeError(w, r, err)
		return
	}
	out, err := s.svc.CreateDataCache(r.Context(), principal(r), &c)
	respond(w, r, http.StatusCreated, out, err)
}

func (s *Server) listDataCaches(w http.ResponseWriter, r *http.Request) {
	out, err := s.svc.ListDataCaches(r.Context(), principal(r))
	respond(w, r, http.StatusOK, out, err)
}

func (s *Server) getDataCache(w http.ResponseWriter, r *http.Request) {
	out, err := s.svc.GetDataCache(r.Context(), principal(r), r.PathValue("id"))
	respond(w, r, http.StatusOK, out, err)
}

func (s *Server) deleteDataCache(w http.ResponseWriter, r *http.Request) {
	err := s.svc.DeleteDataCache(r.Context(), principal(r), r.PathValue("id"))
	respond(w, r, http.StatusNoContent, nil, err)
}

func (s *Server) hostDataCaches(w http.ResponseWriter, r *http.Request) {
	out, err := s.svc.HostDataCaches(r.Context(), principal(r), r.PathValue("name"))
	respond(w, r, http.StatusOK, out, err)
}

func (s *Server) reportHostData(w http.ResponseWriter, r *http.Request) {
	var rep apiv1.HostData
	if err := decode(r, &rep); err != nil {
		writeError(w, r, err)
		return
	}
	err := s.svc.ReportHostData(r.Context(), principal(r), r.PathValue("name"), rep)
	respond(w, r, http.StatusNoContent, nil, err)
}
