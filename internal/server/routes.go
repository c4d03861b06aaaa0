package server

import (
	"context"
	"net/http"
	"time"

	"github.com/eci-dev/eci/internal/console"
	"github.com/eci-dev/eci/internal/log"
)

// route is one endpoint of the API.
type route struct {
	method, path string
	handler      http.HandlerFunc
	// open routes need no token.
	open bool
	// long routes (streams) are counted but not timed.
	long bool
}

// routes is the whole API; docs/openapi.yaml describes exactly these (a test
// checks it).
func (s *Server) routes() []route {
	return []route{
		{method: "GET", path: "/healthz", handler: s.healthz, open: true},
		{method: "GET", path: "/readyz", handler: s.readyz, open: true},
		{method: "GET", path: "/metrics", handler: s.metrics.handler().ServeHTTP, open: true},
		{method: "GET", path: "/metrics/billing", handler: s.costMetrics},

		{method: "POST", path: "/v1/containergroups", handler: s.createGroup},
		{method: "GET", path: "/v1/containergroups", handler: s.listGroups},
		{method: "GET", path: "/v1/containergroups/{id}", handler: s.getGroup},
		{method: "DELETE", path: "/v1/containergroups/{id}", handler: s.deleteGroup},
		{method: "PATCH", path: "/v1/containergroups/{id}", handler: s.updateGroup},
		{method: "POST", path: "/v1/containergroups/{id}/restart", handler: s.restartGroup},
		{method: "PUT", path: "/v1/containergroups/{id}/status", handler: s.reportStatus},
		{method: "POST", path: "/v1/containergroups/{id}/finalize", handler: s.finalizeGroup},
		{method: "GET", path: "/v1/containergroups/{id}/events", handler: s.groupEvents},
		{method: "GET", path: "/v1/containergroups/{id}/log", handler: s.groupLog, long: true},
		{method: "GET", path: "/v1/containergroups/{id}/exec", handler: s.groupExec, long: true},
		{method: "POST", path: "/v1/containergroups/{id}/exec", handler: s.groupExec, long: true},
		{method: "GET", path: "/v1/containergroups/{id}/attach", handler: s.groupAttach, long: true},
		{method: "POST", path: "/v1/containergroups/{id}/attach", handler: s.groupAttach, long: true},
		{method: "GET", path: "/v1/containergroups/{id}/portforward", handler: s.groupPortForward, long: true},
		{method: "POST", path: "/v1/containergroups/{id}/portforward", handler: s.groupPortForward, long: true},
		{method: "GET", path: "/v1/containergroups/{id}/stats", handler: s.groupStats},

		{method: "GET", path: "/v1/events", handler: s.listEvents},
		{method: "GET", path: "/v1/bill", handler: s.bill},
		{method: "PUT", path: "/v1/virtualnodes/{name}", handler: s.virtualNodeHeartbeat},
		{method: "POST", path: "/v1/events", handler: s.addEvent},

		{method: "POST", path: "/v1/hosts", handler: s.registerHost},
		{method: "GET", path: "/v1/hosts", handler: s.listHosts},
		{method: "GET", path: "/v1/hosts/{name}", handler: s.getHost},
		{method: "GET", path: "/v1/capacity", handler: s.capacity},
		{method: "PATCH", path: "/v1/hosts/{name}", handler: s.updateHost},
		{method: "PUT", path: "/v1/hosts/{name}/heartbeat", handler: s.heartbeat},
		{method: "PUT", path: "/v1/hosts/{name}/warmpool", handler: s.syncWarmPool},
		{method: "GET", path: "/v1/hosts/{name}/imagecaches", handler: s.hostImageCaches},
		{method: "PUT", path: "/v1/hosts/{name}/images", handler: s.reportHostImages},
		{method: "GET", path: "/v1/hosts/{name}/datacaches", handler: s.hostDataCaches},
		{method: "PUT", path: "/v1/hosts/{name}/datacaches", handler: s.reportHostData},

		{method: "POST", path: "/v1/imagecaches", handler: s.createImageCache},
		{method: "GET", path: "/v1/imagecaches", handler: s.listImageCaches},
		{method: "GET", path: "/v1/imagecaches/{id}", handler: s.getImageCache},
		{method: "DELETE", path: "/v1/imagecaches/{id}", handler: s.deleteImageCache},
		{method: "POST", path: "/v1/datacaches", handler: s.createDataCache},
		{method: "GET", path: "/v1/datacaches", handler: s.listDataCaches},
		{method: "GET", path: "/v1/datacaches/{id}", handler: s.getDataCache},
		{method: "DELETE", path: "/v1/datacaches/{id}", handler: s.deleteDataCache},

		{method: "POST", path: "/v1/vswitches", handler: s.createVSwitch},
		{method: "GET", path: "/v1/vswitches", handler: s.listVSwitches},
		{method: "GET", path: "/v1/vswitches/{id}", handler: s.getVSwitch},
		{method: "DELETE", path: "/v1/vswitches/{id}", handler: s.deleteVSwitch},
		{method: "POST", path: "/v1/vpcs", handler: s.createVPC},
		{method: "GET", path: "/v1/vpcs", handler: s.listVPCs},
		{method: "GET", path: "/v1/vpcs/{id}", handler: s.getVPC},
		{method: "DELETE", path: "/v1/vpcs/{id}", handler: s.deleteVPC},
		{method: "POST", path: "/v1/eips", handler: s.allocateEIP},
		{method: "GET", path: "/v1/eips", handler: s.listEIPs},
		{method: "GET", path: "/v1/eips/{id}", handler: s.getEIP},
		{method: "DELETE", path: "/v1/eips/{id}", handler: s.releaseEIP},
		{method: "POST", path: "/v1/routeentries", handler: s.addRouteEntry},
		{method: "GET", path: "/v1/routeentries", handler: s.listRouteEntries},
		{method: "DELETE", path: "/v1/routeentries/{id}", handler: s.deleteRouteEntry},
		{method: "PUT", path: "/v1/virtualservices", handler: s.putVirtualService},
		{method: "GET", path: "/v1/virtualservices", handler: s.listVirtualServices},
		{method: "DELETE", path: "/v1/virtualservices/{table}/{ip}", handler: s.deleteVirtualService},
		{method: "GET", path: "/v1/addresses", handler: s.listAddresses},
		{method: "PUT", path: "/v1/securitygroups", handler: s.putSecurityGroup},
		{method: "GET", path: "/v1/securitygroups", handler: s.listSecurityGroups},
		{method: "DELETE", path: "/v1/securitygroups/{name}", handler: s.deleteSecurityGroup},

		{method: "PUT", path: "/v1/tenants/{name}", handler: s.putTenant},
		{method: "GET", path: "/v1/tenants", handler: s.listTenants},
		{method: "GET", path: "/v1/tenants/{name}", handler: s.getTenant},
		{method: "POST", path: "/v1/tokens", handler: s.createToken},
		{method: "GET", path: "/v1/tokens", handler: s.listTokens},
		{method: "DELETE", path: "/v1/tokens/{id}", handler: s.revokeToken},
	}
}

// handler routes the API. Every route but the open ones needs a bearer token.
func (s *Server) handler(ctx context.Context) http.Handler {
	mux := http.NewServeMux()
	for _, rt := range s.routes() {
		pattern := rt.method + " " + rt.path
		var h http.Handler = rt.handler
		if !rt.open {
			h = s.authenticate(h)
		}
		mux.Handle(pattern, s.metrics.instrument(pattern, h, rt.long))
	}
	// The web console (docs/console.md): pages for browsers, behind the
	// same tokens, held in a session cookie.
	mux.Handle("/console/", s.metrics.instrument("/console/", console.New(s.svc, consoleSessions{s}).Handler(), false))
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
