package server

import (
	"context"
	"net/http"
	"time"

	"github.com/eci-dev/eci/internal/log"
)

// handler routes the API. Every /v1 route needs a bearer token.
func (s *Server) handler(ctx context.Context) http.Handler {
	mux := http.NewServeMux()
	api := func(pattern string, h http.HandlerFunc) {
		mux.Handle(pattern, s.metrics.instrument(pattern, s.authenticate(h)))
	}
	open := func(pattern string, h http.HandlerFunc) {
		mux.Handle(pattern, s.metrics.instrument(pattern, h))
	}
	open("GET /healthz", s.healthz)
	open("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", s.metrics.handler())

	api("POST /v1/containergroups", s.createGroup)
	api("GET /v1/containergroups", s.listGroups)
	api("GET /v1/containergroups/{id}", s.getGroup)
	api("DELETE /v1/containergroups/{id}", s.deleteGroup)
	api("PATCH /v1/containergroups/{id}", s.updateGroup)
	api("POST /v1/containergroups/{id}/restart", s.restartGroup)
	api("PUT /v1/containergroups/{id}/status", s.reportStatus)
	api("POST /v1/containergroups/{id}/finalize", s.finalizeGroup)
	api("GET /v1/containergroups/{id}/events", s.groupEvents)

	api("GET /v1/events", s.listEvents)
	api("POST /v1/events", s.addEvent)

	api("POST /v1/hosts", s.registerHost)
	api("GET /v1/hosts", s.listHosts)
	api("GET /v1/hosts/{name}", s.getHost)
	api("PATCH /v1/hosts/{name}", s.updateHost)
	api("PUT /v1/hosts/{name}/heartbeat", s.heartbeat)

	api("POST /v1/vswitches", s.createVSwitch)
	api("GET /v1/vswitches", s.listVSwitches)
	api("GET /v1/vswitches/{id}", s.getVSwitch)
	api("DELETE /v1/vswitches/{id}", s.deleteVSwitch)

	api("PUT /v1/tenants/{name}", s.putTenant)
	api("GET /v1/tenants", s.listTenants)
	api("GET /v1/tenants/{name}", s.getTenant)
	api("POST /v1/tokens", s.createToken)

	logger := log.G(ctx)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r = r.WithContext(log.WithLogger(r.Context(), logger.With("method", r.Method, "path", r.URL.Path)))
		mux.ServeHTTP(w, r)
	})
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz answers 200 while etcd answers.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.st.Ping(ctx); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "etcd unavailable: " + err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "leader": s.Leading()})
}
