package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/log"
)

// Probes run as the kubelet's do: one goroutine per container and kind, for
// as long as that container (by id) runs. Startup holds liveness and
// readiness back until it succeeds; liveness or startup failing
// failureThreshold times in a row kills the container (its restart policy and
// back-off then apply); readiness sets the container's ready flag.

type probeKind string

const (
	startup   probeKind = "startup"
	liveness  probeKind = "liveness"
	readiness probeKind = "readiness"
)

// syncProbes starts the probes of g's running containers and stops those of
// containers that are gone or changed. ip is the group's address.
func (a *Agent) syncProbes(ctx context.Context, g *apiv1.ContainerGroup, ctrs map[string]attempts, ip string) {
	want := map[probeKey]string{} // -> container id
	for _, c := range g.Spec.Containers {
		last := ctrs[c.Name].latest()
		if last == nil || last.State.String() != "CONTAINER_RUNNING" {
			continue
		}
		for kind, pr := range map[probeKind]*apiv1.Probe{startup: c.StartupProbe, liveness: c.LivenessProbe, readiness: c.ReadinessProbe} {
			if pr != nil {
				want[probeKey{c.Name, kind}] = last.Id
				a.startProbe(ctx, g, c, kind, pr, last.Id, ip)
			}
		}
	}
	a.states.edit(g.Metadata.ID, func(st *groupState) {
		for key, p := range st.probers {
			if want[key] != p.containerID {
				p.cancel()
				delete(st.probers, key)
			}
		}
	})
}

// startProbe runs the kind probe of container name (by id) unless it runs.
// A new probe's result is not known yet: not ready, not started.
func (a *Agent) startProbe(ctx context.Context, g *apiv1.ContainerGroup, c apiv1.Container, kind probeKind, pr *apiv1.Probe, containerID, ip string) {
	name := c.Name
	key := probeKey{name, kind}
	var pctx context.Context
	a.states.edit(g.Metadata.ID, func(st *groupState) {
		if p, ok := st.probers[key]; ok && p.containerID == containerID {
			return
		}
		var cancel context.CancelFunc
		pctx, cancel = context.WithCancel(ctx)
		st.probers[key] = &prober{containerID: containerID, cancel: cancel}
		switch kind {
		case readiness:
			st.container(name).ready = false
		case startup:
			st.container(name).started = false
		}
	})
	if pctx != nil {
		go a.runProbe(a.probeContext(pctx, g), g, c, kind, pr, containerID, ip)
	}
}

func orDefault(v, d int32) time.Duration {
	if v <= 0 {
		v = d
	}
	return time.Duration(v) * time.Second
}

func (a *Agent) runProbe(ctx context.Context, g *apiv1.ContainerGroup, c apiv1.Container, kind probeKind, pr *apiv1.Probe, containerID, ip string) {
	name := c.Name
	period, timeout := orDefault(pr.PeriodSeconds, 10), orDefault(pr.TimeoutSeconds, 1)
	failureThreshold, successThreshold := int(pr.FailureThreshold), int(pr.SuccessThreshold)
	if failureThreshold <= 0 {
		failureThreshold = 3
	}
	if successThreshold <= 0 {
		successThreshold = 1
	}
	select {
	case <-ctx.Done():
		return
	case <-time.After(time.Duration(pr.InitialDelaySeconds) * time.Second):
	}
	fails, oks := 0, 0
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		if kind != startup && !a.startedOK(g.Metadata.ID, c) {
			// Wait for the startup probe.
		} else if err := a.probeOnce(ctx, pr, containerID, ip, timeout); err != nil {
			fails, oks = fails+1, 0
			if ctx.Err() != nil {
				return
			}
			a.containerEvent(ctx, g, name, apiv1.EventWarning, "Unhealthy", fmt.Sprintf("%s probe failed: %v", probeTitle(kind), err))
			if kind == readiness {
				a.setProbe(g.Metadata.ID, name, kind, containerID, false)
			} else if fails >= failureThreshold {
				a.containerEvent(ctx, g, name, apiv1.EventNormal, "Killing", fmt.Sprintf("Container %s failed %s probe, will be restarted", name, kind))
				if err := a.stopContainer(ctx, g, name, containerID, ip, grace(g)); err != nil {
					log.G(ctx).Warn("kill an unhealthy container", "group", g.Metadata.ID, "container", name, "err", err)
				}
				return
			}
		} else {
			fails, oks = 0, oks+1
			if oks >= successThreshold {
				a.setProbe(g.Metadata.ID, name, kind, containerID, true)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// startedOK tells whether container c of group id has started as far as
// probes go: it has no startup probe (init containers have none), or that
// probe succeeded.
func (a *Agent) startedOK(id string, c apiv1.Container) (ok bool) {
	if c.StartupProbe == nil {
		return true
	}
	a.states.read(id, func(st groupState) { ok = st.containerOf(c.Name).started })
	return ok
}

// readyOK tells whether container name of group id is ready as far as its
// readiness probe goes (hasProbe: it has one).
func (a *Agent) readyOK(id, name string, hasProbe bool) (ok bool) {
	if !hasProbe {
		return true
	}
	a.states.read(id, func(st groupState) { ok = st.containerOf(name).ready })
	return ok
}

// setProbe records a result of the kind probe of container name (by id) and,
// when it changes something, reconciles the group so that its status is
// reported at once. A result of a probe that was stopped meanwhile (its
// container changed, its group forgotten) records nothing.
func (a *Agent) setProbe(id, name string, kind probeKind, containerID string, ok bool) {
	if kind == liveness {
		return
	}
	changed := false
	a.states.update(id, func(st *groupState) {
		if p := st.probers[probeKey{name, kind}]; p == nil || p.containerID != containerID {
			return
		}
		c := st.container(name)
		flag := &c.ready
		if kind == startup {
			flag = &c.started
		}
		changed = *flag != ok
		*flag = ok
	})
	if changed {
		a.queue.add(id)
	}
}

// probeOnce runs one check: nil on success.
func (a *Agent) probeOnce(ctx context.Context, pr *apiv1.Probe, containerID, ip string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	switch {
	case pr.Exec != nil:
		_, stderr, err := a.cfg.Runtime.ExecSync(ctx, containerID, pr.Exec.Command, timeout)
		if err != nil {
			return fmt.Errorf("%v %s", err, strings.TrimSpace(string(stderr)))
		}
		return nil
	case pr.HTTPGet != nil:
		scheme := "http"
		if pr.HTTPGet.Scheme == "HTTPS" {
			scheme = "https"
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+net.JoinHostPort(ip, strconv.Itoa(int(pr.HTTPGet.Port)))+pr.HTTPGet.Path, nil)
		if err != nil {
			return err
		}
		req.Header.Set("User-Agent", probeUserAgent)
		req.Header.Set("Accept", "*/*")
		for _, h := range pr.HTTPGet.HTTPHeaders {
			req.Header.Set(h.Name, h.Value)
		}
		resp, err := probeHTTP.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 10<<10)) // the kubelet reads at most 10 KiB
		_ = resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode >= 400 {
			return fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		return nil
	case pr.TCPSocket != nil:
		conn, err := dialProbe(ctx, "tcp", net.JoinHostPort(ip, strconv.Itoa(int(pr.TCPSocket.Port))))
		if err != nil {
			return err
		}
		return conn.Close()
	case pr.GRPC != nil:
		conn, err := grpc.NewClient(net.JoinHostPort(ip, strconv.Itoa(int(pr.GRPC.Port))), grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithContextDialer(func(_ context.Context, addr string) (net.Conn, error) { return dialProbe(ctx, "tcp", addr) }))
		if err != nil {
			return err
		}
		defer func() { _ = conn.Close() }()
		resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: pr.GRPC.Service})
		if err != nil {
			return err
		}
		if resp.Status != healthpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("gRPC health: %s", resp.Status)
		}
		return nil
	}
	return fmt.Errorf("the probe has no action")
}

// probeHTTP is the client of httpGet probes and hooks, as the kubelet's: it
// skips certificate checks (HTTPS probes), and follows a redirect only to
// the same host, at most 10 times. A redirect elsewhere (127.0.0.1, the
// host's own services, another tenant's instance) is not followed: the
// redirect itself is the answer, a success as for the kubelet.
var probeHTTP = &http.Client{
	Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext:       dialProbe,                             // the request's context: the instance's VPC mark
		Proxy:             nil,                                   // never the host's proxy settings
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // as the kubelet's HTTPS probes
	},
	CheckRedirect: localRedirects,
}

// localRedirects is the kubelet's RedirectChecker(false).
func localRedirects(req *http.Request, via []*http.Request) error {
	if req.URL.Hostname() != via[0].URL.Hostname() {
		return http.ErrUseLastResponse
	}
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	return nil
}

// probeUserAgent is the kubelet's, so that applications that tell probes
// apart keep doing so.
const probeUserAgent = "kube-probe/1.35"

// hasProbes tells whether a container of g has a probe.
func hasProbes(g *apiv1.ContainerGroup) bool {
	for _, c := range g.Spec.Containers {
		if c.StartupProbe != nil || c.LivenessProbe != nil || c.ReadinessProbe != nil {
			return true
		}
	}
	return false
}
