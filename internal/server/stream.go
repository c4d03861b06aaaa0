package server

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/control"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/httpapi"
	"github.com/eci-dev/eci/internal/streamproxy"
)

// Logs, exec, attach, port-forward and stats are served by the agent of the
// group's host. The server checks the caller (its token, and that it may see
// the group) and the request (every parameter), then proxies to the agent's
// stream server, trusting exactly the CA the agent registered and presenting
// the secret registered with it: the caller's own token never leaves the
// server. Exec, attach and port-forward are upgraded connections (the
// kubelet's SPDY streaming protocols), so kubectl-style clients work as they
// are.

func (s *Server) groupLog(w http.ResponseWriter, r *http.Request) {
	o, err := apiv1.ParseLogOptions(r.URL.Query())
	if err != nil {
		writeError(w, r, httpapi.Invalid(err))
		return
	}
	if t, ok := s.streamTarget(w, r, &o.Container); ok {
		s.proxyToAgent(w, r, t, "log", o.Query())
	}
}

func (s *Server) groupExec(w http.ResponseWriter, r *http.Request)   { s.groupSession(w, r, true) }
func (s *Server) groupAttach(w http.ResponseWriter, r *http.Request) { s.groupSession(w, r, false) }

func (s *Server) groupSession(w http.ResponseWriter, r *http.Request, exec bool) {
	o, err := apiv1.ParseExecOptions(r.URL.Query(), exec)
	if err != nil {
		writeError(w, r, httpapi.Invalid(err))
		return
	}
	t, ok := s.streamTarget(w, r, &o.Container)
	if !ok {
		return
	}
	kind := "attach"
	if exec {
		kind = "exec"
	}
	s.proxyToAgent(w, r, t, kind, o.Query())
}

func (s *Server) groupPortForward(w http.ResponseWriter, r *http.Request) {
	if _, err := apiv1.ParsePorts(r.URL.Query()); err != nil {
		writeError(w, r, httpapi.Invalid(err))
		return
	}
	if t, ok := s.streamTarget(w, r, nil); ok {
		s.proxyToAgent(w, r, t, "portforward", url.Values{"ports": r.URL.Query()["ports"]})
	}
}

func (s *Server) groupStats(w http.ResponseWriter, r *http.Request) {
	if t, ok := s.streamTarget(w, r, nil); ok {
		s.proxyToAgent(w, r, t, "stats", nil)
	}
}

// streamTarget finds the agent serving the request's group and, when
// container is given, checks (or picks) the container; on failure it has
// answered the request.
func (s *Server) streamTarget(w http.ResponseWriter, r *http.Request, container *string) (*control.StreamTarget, bool) {
	t, err := s.svc.StreamTarget(r.Context(), principal(r), r.PathValue("id"))
	if err == nil && container != nil {
		*container, err = pickContainer(t.Group, *container)
	}
	if err != nil {
		writeError(w, r, err)
		return nil, false
	}
	return t, true
}

// pickContainer checks name against the group's containers; an empty name
// is the group's only container.
func pickContainer(g *apiv1.ContainerGroup, name string) (string, error) {
	var names []string
	for _, c := range g.Spec.InitContainers {
		names = append(names, c.Name)
	}
	for _, c := range g.Spec.Containers {
		names = append(names, c.Name)
	}
	for _, c := range g.Spec.EphemeralContainers {
		names = append(names, c.Name)
	}
	switch {
	case name == "" && len(g.Spec.Containers) == 1:
		return g.Spec.Containers[0].Name, nil
	case name == "":
		return "", httpapi.Invalid(apiv1.FieldErrors{{Field: "container",
			Message: "required: group " + g.Metadata.ID + " has containers " + strings.Join(names, ", ")}})
	case !slices.Contains(names, name):
		return "", fmt.Errorf("container %q is not in group %s (its containers: %s): %w", name, g.Metadata.ID, strings.Join(names, ", "), errdefs.ErrNotFound)
	}
	return name, nil
}

// proxyToAgent sends the request on to the agent's stream server.
func (s *Server) proxyToAgent(w http.ResponseWriter, r *http.Request, t *control.StreamTarget, kind string, query url.Values) {
	tr, err := s.agents.transport(t.Address, t.CA)
	if err != nil {
		writeError(w, r, err)
		return
	}
	p := &streamproxy.Proxy{
		Target:    &url.URL{Scheme: "https", Host: t.Address, Path: "/v1/groups/" + t.Group.Metadata.ID + "/" + kind, RawQuery: query.Encode()},
		TLS:       tr.TLSClientConfig,
		Transport: tr,
		Header:    http.Header{"Authorization": {"Bearer " + t.Token}},
		Error: func(w http.ResponseWriter, r *http.Request, err error) {
			writeError(w, r, fmt.Errorf("the host agent: %w: %w", errdefs.ErrUnavailable, err))
		},
	}
	p.ServeHTTP(w, r)
}

// agentTransports keeps one transport per agent (address and CA).
type agentTransports struct {
	mu sync.Mutex
	m  map[string]*http.Transport
}

func (a *agentTransports) transport(address, caPEM string) (*http.Transport, error) {
	key := address + "\n" + caPEM
	a.mu.Lock()
	defer a.mu.Unlock()
	if tr, ok := a.m[key]; ok {
		return tr, nil
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(caPEM)) {
		return nil, fmt.Errorf("the agent at %s registered no usable CA: %w", address, errdefs.ErrUnavailable)
	}
	if a.m == nil {
		a.m = map[string]*http.Transport{}
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, MaxIdleConnsPerHost: 16}
	a.m[key] = tr
	return tr, nil
}
