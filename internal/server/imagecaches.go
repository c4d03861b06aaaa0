package server

import (
	"net/http"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// The handlers of image caches and of the hosts' images.

func (s *Server) createImageCache(w http.ResponseWriter, r *http.Request) {
	var c apiv1.ImageCache
	if err := decode(r, &c); err != nil {
		writeError(w, r, err)
		return
	}
	out, err := s.svc.CreateImageCache(r.Context(), principal(r), &c)
	respond(w, r, http.StatusCreated, out, err)
}

func (s *Server) listImageCaches(w http.ResponseWriter, r *http.Request) {
	out, err := s.svc.ListImageCaches(r.Context(), principal(r))
	respond(w, r, http.StatusOK, out, err)
}

func (s *Server) getImageCache(w http.ResponseWriter, r *http.Request) {
	out, err := s.svc.GetImageCache(r.Context(), principal(r), r.PathValue("id"))
	respond(w, r, http.StatusOK, out, err)
}

func (s *Server) deleteImageCache(w http.ResponseWriter, r *http.Request) {
	err := s.svc.DeleteImageCache(r.Context(), principal(r), r.PathValue("id"))
	respond(w, r, http.StatusNoContent, nil, err)
}

func (s *Server) hostImageCaches(w http.ResponseWriter, r *http.Request) {
	out, err := s.svc.HostImageCaches(r.Context(), principal(r), r.PathValue("name"))
	respond(w, r, http.StatusOK, out, err)
}

func (s *Server) reportHostImages(w http.ResponseWriter, r *http.Request) {
	var rep apiv1.HostImages
	if err := decode(r, &rep); err != nil {
		writeError(w, r, err)
		return
	}
	err := s.svc.ReportHostImages(r.Context(), principal(r), r.PathValue("name"), rep)
	respond(w, r, http.StatusNoContent, nil, err)
}
