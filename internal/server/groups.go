package server

import (
	"net/http"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/control"
)

func (s *Server) createGroup(w http.ResponseWriter, r *http.Request) {
	var g apiv1.ContainerGroup
	if err := decode(r, &g); err != nil {
		writeError(w, r, err)
		return
	}
	out, created, err := s.svc.CreateGroup(r.Context(), principal(r), &g)
	if err != nil {
		writeError(w, r, err)
		return
	}
	code := http.StatusCreated
	if !created {
		code = http.StatusOK
	}
	writeJSON(w, code, control.Redact(principal(r), out))
}

func groupFilter(r *http.Request) (control.GroupFilter, error) {
	q := r.URL.Query()
	f := control.GroupFilter{State: apiv1.State(q.Get("state")), Host: q.Get("host"), Tenant: q.Get("tenant")}
	var err error
	if f.Tags, err = control.ParseTags(q.Get("tag")); err != nil {
		return f, err
	}
	if f.Selector, err = control.ParseSelector(q.Get("labelSelector")); err != nil {
		return f, err
	}
	return f, nil
}

func (s *Server) listGroups(w http.ResponseWriter, r *http.Request) {
	f, err := groupFilter(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	watch, err := queryBool(r, "watch")
	if err != nil {
		writeError(w, r, err)
		return
	}
	if watch {
		s.watchGroups(w, r, f)
		return
	}
	limit, err := queryInt(r, "limit", 0, 0, 10000)
	if err != nil {
		writeError(w, r, err)
		return
	}
	list, err := s.svc.ListGroups(r.Context(), principal(r), f, limit, r.URL.Query().Get("continue"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	for i := range list.Items {
		list.Items[i] = *control.Redact(principal(r), &list.Items[i])
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) getGroup(w http.ResponseWriter, r *http.Request) {
	g, err := s.svc.GetGroup(r.Context(), principal(r), r.PathValue("id"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, control.Redact(principal(r), g))
}

func (s *Server) deleteGroup(w http.ResponseWriter, r *http.Request) {
	force, err := queryBool(r, "force")
	if err != nil {
		writeError(w, r, err)
		return
	}
	var grace *int64
	if r.URL.Query().Get("gracePeriodSeconds") != "" {
		g, err := queryInt(r, "gracePeriodSeconds", 0, 0, 86400)
		if err != nil {
			writeError(w, r, err)
			return
		}
		grace = &g
	}
	g, err := s.svc.DeleteGroup(r.Context(), principal(r), r.PathValue("id"), grace, force)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, control.Redact(principal(r), g))
}

func (s *Server) updateGroup(w http.ResponseWriter, r *http.Request) {
	var u apiv1.GroupUpdate
	if err := decode(r, &u); err != nil {
		writeError(w, r, err)
		return
	}
	g, err := s.svc.UpdateGroup(r.Context(), principal(r), r.PathValue("id"), u)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, control.Redact(principal(r), g))
}

func (s *Server) restartGroup(w http.ResponseWriter, r *http.Request) {
	g, err := s.svc.RestartGroup(r.Context(), principal(r), r.PathValue("id"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, control.Redact(principal(r), g))
}

func (s *Server) reportStatus(w http.ResponseWriter, r *http.Request) {
	var rep apiv1.StatusReport
	if err := decode(r, &rep); err != nil {
		writeError(w, r, err)
		return
	}
	g, err := s.svc.ReportStatus(r.Context(), principal(r), r.PathValue("id"), rep)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, control.Redact(principal(r), g))
}

func (s *Server) finalizeGroup(w http.ResponseWriter, r *http.Request) {
	if err := s.svc.Finalize(r.Context(), principal(r), r.PathValue("id")); err != nil {
		writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) groupEvents(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, err := s.svc.GetGroup(r.Context(), principal(r), id); err != nil {
		writeError(w, r, err)
		return
	}
	evs, err := s.svc.ListEvents(r.Context(), principal(r), id)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, apiv1.List[apiv1.Event]{Items: evs})
}
