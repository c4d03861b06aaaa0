package server

import (
	"context"
	"log/slog"
	"testing"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/fakeagent"
)

// running is an in-process eci server for a test.
type running struct {
	srv   *Server
	stop  func()
	admin *client.Client
}

// start runs a server on dir (a real embedded etcd) until the test ends or stop.
func start(t testing.TB, dir string, mutate ...func(*Config)) *running {
	t.Helper()
	cfg := Config{Addr: "127.0.0.1:0", DataDir: dir, Name: "test"}
	cfg.Control.RetryInterval = 200 * time.Millisecond
	for _, m := range mutate {
		m(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { _ = srv.Run(ctx) }()
	select {
	case <-srv.Ready():
	case <-srv.Done():
		cancel()
		t.Fatalf("server did not start: %v", srv.Err())
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatal("server not ready after 60s")
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			<-srv.Done()
		}
	}
	t.Cleanup(stop)
	return &running{srv: srv, stop: stop, admin: clientFor(t, srv, srv.AdminToken())}
}

func clientFor(t testing.TB, srv *Server, token string) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{Server: srv.URL(), Token: token, CAFile: srv.CAFile()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// token makes a tenant or host token and a client with it.
func (r *running) token(t testing.TB, spec apiv1.TokenSpec) *client.Client {
	t.Helper()
	ctx := context.Background()
	if spec.Kind == apiv1.TokenTenant {
		if _, err := r.admin.PutTenant(ctx, &apiv1.Tenant{Metadata: apiv1.ObjectMeta{Name: spec.Tenant}}); err != nil {
			t.Fatal(err)
		}
	}
	tok, err := r.admin.CreateToken(ctx, &apiv1.Token{Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	return clientFor(t, r.srv, tok.Status.Token)
}

// fakeHost makes a vSwitch vsw-a in zone-a and a fake agent (no containers)
// for host name until ctx ends: groups are placed on it and reported Running.
func (r *running) fakeHost(ctx context.Context, t testing.TB, name string) {
	t.Helper()
	r.fakeHostOf(ctx, t, name, "198.19.128.0/24", 50)
}

// fakeHostOf is fakeHost with vsw-a's range and the host's pods.
func (r *running) fakeHostOf(ctx context.Context, t testing.TB, name, cidr string, pods int) {
	t.Helper()
	if _, err := r.admin.CreateVSwitch(ctx, &apiv1.VSwitch{Metadata: apiv1.ObjectMeta{Name: "vsw-a"}, Spec: apiv1.VSwitchSpec{Zone: "zone-a", CIDR: cidr}}); err != nil {
		t.Fatal(err)
	}
	res := apiv1.Resources{MilliCPU: int64(16000 * pods / 50), MemoryMiB: int64(65536 * pods / 50), Pods: pods}
	agent := fakeagent.New(fakeagent.Config{Client: r.token(t, apiv1.TokenSpec{Kind: apiv1.TokenHost, Host: name}),
		Hosts: []apiv1.Host{{Metadata: apiv1.ObjectMeta{Name: name}, Spec: apiv1.HostSpec{Zone: "zone-a", Capacity: res, Allocatable: res}}}})
	go func() { _ = agent.Run(ctx) }()
	<-agent.Ready()
}

func group(name string) *apiv1.ContainerGroup {
	return &apiv1.ContainerGroup{
		Metadata: apiv1.ObjectMeta{Name: name},
		Spec:     apiv1.ContainerGroupSpec{Containers: []apiv1.Container{{Name: "app", Image: "busybox"}}},
	}
}

func quietLogs() { slog.SetDefault(slog.New(slog.NewTextHandler(discard{}, nil))) }

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
