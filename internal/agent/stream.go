package agent

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/httpapi"
	"github.com/eci-dev/eci/internal/log"
	"github.com/eci-dev/eci/internal/pki"
	"github.com/eci-dev/eci/internal/streamproxy"
)

// The stream server is how the control plane reaches a group's logs, exec,
// attach, port-forward and stats. It serves TLS with a certificate of its own
// CA, which the agent registers with the host (over its authenticated
// connection to the server), and takes only the bearer secret it registered
// alongside: the server is the only client. Exec, attach and port-forward are
// the kubelet's streaming protocols, proxied to the runtime's streaming
// server (containerd's, on loopback).

// streamListener opens the stream server's socket and records, in the host
// the agent registers, its address, CA and secret.
func (a *Agent) streamListener() (net.Listener, *tls.Config, error) {
	ln, err := net.Listen("tcp", a.cfg.StreamAddress)
	if err != nil {
		return nil, nil, fmt.Errorf("stream server: %w", err)
	}
	tcp := ln.Addr().(*net.TCPAddr)
	ip := tcp.IP
	if a.cfg.AdvertiseIP != "" {
		ip = net.ParseIP(a.cfg.AdvertiseIP)
	}
	if ip == nil || ip.IsUnspecified() {
		_ = ln.Close()
		return nil, nil, fmt.Errorf("stream server listens on %s: give --advertise-address, the IP the server reaches this host at", ln.Addr())
	}
	ca, err := pki.NewCA("eci-agent-stream-ca-"+a.name, 10*365*24*time.Hour)
	if err != nil {
		_ = ln.Close()
		return nil, nil, err
	}
	kp, err := ca.Issue(pki.CertRequest{CommonName: "eci-agent-" + a.name, IPs: []net.IP{ip}, DNSNames: []string{a.name}, Server: true})
	if err != nil {
		_ = ln.Close()
		return nil, nil, err
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		_ = ln.Close()
		return nil, nil, err
	}
	a.streamToken = hex.EncodeToString(secret)
	spec := &a.cfg.Host.Spec
	spec.Address = net.JoinHostPort(ip.String(), fmt.Sprint(tcp.Port))
	spec.StreamCA = string(pki.CertPEM(ca.Cert))
	spec.StreamToken = a.streamToken
	cert := tls.Certificate{Certificate: [][]byte{kp.Cert.Raw}, PrivateKey: kp.Key, Leaf: kp.Cert}
	return ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}, nil
}

// serveStream serves the stream API on ln until ctx ends.
func (a *Agent) serveStream(ctx context.Context, ln net.Listener, tlsCfg *tls.Config) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/groups/{id}/log", a.serveLog)
	mux.HandleFunc("/v1/groups/{id}/exec", a.serveExec)
	mux.HandleFunc("/v1/groups/{id}/attach", a.serveAttach)
	mux.HandleFunc("/v1/groups/{id}/portforward", a.servePortForward)
	mux.HandleFunc("GET /v1/groups/{id}/stats", a.serveStats)
	logger := log.G(ctx)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r = r.WithContext(log.WithLogger(r.Context(), logger.With("stream", r.URL.Path)))
			got := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
			if subtle.ConstantTimeCompare([]byte(got), []byte(a.streamToken)) != 1 {
				httpapi.WriteError(w, r, fmt.Errorf("the stream server takes only the control plane's secret: %w", errdefs.ErrUnauthenticated))
				return
			}
			r.Header.Del("Authorization") // never passed on to the runtime
			mux.ServeHTTP(w, r)
		}),
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
		logger.Error("stream server stopped", "err", err)
	}
}

// streamGroup is the group a stream request names, when this host runs it.
func (a *Agent) streamGroup(r *http.Request) (*apiv1.ContainerGroup, error) {
	id := r.PathValue("id")
	g := a.desired(id)
	if g == nil {
		return nil, fmt.Errorf("group %s does not run on host %s: %w", id, a.name, errdefs.ErrNotFound)
	}
	return g, nil
}

// readySandbox is the group's running sandbox.
func (a *Agent) readySandbox(ctx context.Context, id string) (string, error) {
	sbs, err := a.groupSandboxes(ctx, id, &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY})
	if err != nil {
		return "", fmt.Errorf("list sandboxes: %w", err)
	}
	if len(sbs) == 0 {
		return "", fmt.Errorf("group %s has no running sandbox: %w", id, errdefs.ErrConflict)
	}
	return sbs[0].Id, nil
}

// runningContainer is the running attempt of container name of group id.
func (a *Agent) runningContainer(ctx context.Context, id, name string) (string, error) {
	ctrs, err := a.cfg.Runtime.ListContainers(ctx, &runtimeapi.ContainerFilter{
		LabelSelector: map[string]string{LabelGroup: id, LabelContainer: name},
		State:         &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING},
	})
	if err != nil {
		return "", fmt.Errorf("list containers: %w", err)
	}
	if len(ctrs) == 0 {
		return "", fmt.Errorf("container %q of group %s is not running: %w", name, id, errdefs.ErrConflict)
	}
	return ctrs[0].Id, nil
}

// attemptRunning tells whether attempt n of container name still runs (or
// is about to); a followed log ends when it doesn't.
func (a *Agent) attemptRunning(ctx context.Context, id, name string, n int) bool {
	ctrs, err := a.cfg.Runtime.ListContainers(ctx, &runtimeapi.ContainerFilter{
		LabelSelector: map[string]string{LabelGroup: id, LabelContainer: name},
	})
	if err != nil {
		return ctx.Err() == nil
	}
	for _, c := range ctrs {
		if int(c.GetMetadata().GetAttempt()) == n {
			return c.State == runtimeapi.ContainerState_CONTAINER_RUNNING || c.State == runtimeapi.ContainerState_CONTAINER_CREATED
		}
	}
	return false
}

func (a *Agent) serveLog(w http.ResponseWriter, r *http.Request) {
	g, err := a.streamGroup(r)
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	o, err := apiv1.ParseLogOptions(r.URL.Query())
	if err != nil {
		httpapi.WriteError(w, r, httpapi.Invalid(err))
		return
	}
	path, attempt, err := a.logFile(g.Metadata.ID, o)
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	flush := func() {
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
	}
	ctx := r.Context()
	running := func() bool { return a.attemptRunning(ctx, g.Metadata.ID, o.Container, attempt) }
	if err := readLog(ctx, path, o, w, flush, running); err != nil && ctx.Err() == nil {
		log.G(ctx).Warn("read log", "file", path, "err", err)
	}
}

func (a *Agent) serveExec(w http.ResponseWriter, r *http.Request) {
	a.serveSession(w, r, true)
}

func (a *Agent) serveAttach(w http.ResponseWriter, r *http.Request) {
	a.serveSession(w, r, false)
}

// serveSession asks the runtime for an exec (or attach) session and proxies
// the client's upgraded connection to it.
func (a *Agent) serveSession(w http.ResponseWriter, r *http.Request, exec bool) {
	g, err := a.streamGroup(r)
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	o, err := apiv1.ParseExecOptions(r.URL.Query(), exec)
	if err != nil {
		httpapi.WriteError(w, r, httpapi.Invalid(err))
		return
	}
	ctx := r.Context()
	cid, err := a.runningContainer(ctx, g.Metadata.ID, o.Container)
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	var streamURL string
	if exec {
		resp, err := a.cfg.Runtime.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: cid, Cmd: o.Command, Tty: o.TTY, Stdin: o.Stdin, Stdout: o.Stdout, Stderr: o.Stderr})
		if err != nil {
			httpapi.WriteError(w, r, fmt.Errorf("exec in container %s: %w", o.Container, err))
			return
		}
		streamURL = resp.Url
	} else {
		resp, err := a.cfg.Runtime.Attach(ctx, &runtimeapi.AttachRequest{ContainerId: cid, Tty: o.TTY, Stdin: o.Stdin, Stdout: o.Stdout, Stderr: o.Stderr})
		if err != nil {
			httpapi.WriteError(w, r, fmt.Errorf("attach to container %s: %w", o.Container, err))
			return
		}
		streamURL = resp.Url
	}
	proxyStream(w, r, streamURL)
}

func (a *Agent) servePortForward(w http.ResponseWriter, r *http.Request) {
	g, err := a.streamGroup(r)
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	ports, err := apiv1.ParsePorts(r.URL.Query())
	if err != nil {
		httpapi.WriteError(w, r, httpapi.Invalid(err))
		return
	}
	sb, err := a.readySandbox(r.Context(), g.Metadata.ID)
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	resp, err := a.cfg.Runtime.PortForward(r.Context(), &runtimeapi.PortForwardRequest{PodSandboxId: sb, Port: ports})
	if err != nil {
		httpapi.WriteError(w, r, fmt.Errorf("port-forward to group %s: %w", g.Metadata.ID, err))
		return
	}
	proxyStream(w, r, resp.Url)
}

// proxyStream hands the (upgrade) request to the runtime's streaming server.
func proxyStream(w http.ResponseWriter, r *http.Request, rawURL string) {
	u, err := url.Parse(rawURL)
	if err != nil {
		httpapi.WriteError(w, r, fmt.Errorf("the runtime answered a bad stream URL %q: %w", rawURL, err))
		return
	}
	p := &streamproxy.Proxy{Target: u, Transport: http.DefaultTransport, Error: func(w http.ResponseWriter, r *http.Request, err error) {
		httpapi.WriteError(w, r, fmt.Errorf("the runtime's streaming server: %w: %w", errdefs.ErrUnavailable, err))
	}}
	p.ServeHTTP(w, r)
}
