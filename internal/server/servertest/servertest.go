// Package servertest runs an in-process eci server on a real embedded etcd for
// the tests of other packages (the agent, the CLI, the virtual node).
package servertest

import (
	"context"
	"testing"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/server"
)

// Server is a running test server.
type Server struct {
	*server.Server
	// Admin is a client with the admin token.
	Admin *client.Client
	stop  func()
}

// Start runs a server in t.TempDir until the test ends (or Stop).
func Start(t testing.TB, mutate ...func(*server.Config)) *Server {
	t.Helper()
	cfg := server.Config{Addr: "127.0.0.1:0", DataDir: t.TempDir(), Name: t.Name()}
	cfg.Control.RetryInterval = 200 * time.Millisecond
	for _, m := range mutate {
		m(&cfg)
	}
	srv, err := server.New(cfg)
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
	s := &Server{Server: srv, stop: func() {
		if !stopped {
			stopped = true
			cancel()
			<-srv.Done()
		}
	}}
	t.Cleanup(s.Stop)
	s.Admin = s.Client(t, srv.AdminToken())
	return s
}

// Stop stops the server.
func (s *Server) Stop() { s.stop() }

// Client returns a client with token.
func (s *Server) Client(t testing.TB, token string) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{Server: s.URL(), Token: token, CAFile: s.CAFile()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// HostClient makes a host token for host and returns its client.
func (s *Server) HostClient(t testing.TB, host string) *client.Client {
	t.Helper()
	tok, err := s.Admin.CreateToken(context.Background(), &apiv1.Token{Spec: apiv1.TokenSpec{Kind: apiv1.TokenHost, Host: host}})
	if err != nil {
		t.Fatal(err)
	}
	return s.Client(t, tok.Status.Token)
}

// VSwitch adds a vSwitch.
func (s *Server) VSwitch(t testing.TB, name, zone, cidr string) {
	t.Helper()
	if _, err := s.Admin.CreateVSwitch(context.Background(), &apiv1.VSwitch{Metadata: apiv1.ObjectMeta{Name: name}, Spec: apiv1.VSwitchSpec{Zone: zone, CIDR: cidr}}); err != nil {
		t.Fatal(err)
	}
}

// WaitGroup polls group id until cond holds (20 s at most).
func (s *Server) WaitGroup(t testing.TB, id string, what string, cond func(*apiv1.ContainerGroup) bool) *apiv1.ContainerGroup {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		g, err := s.Admin.GetGroup(context.Background(), id)
		if err == nil && cond(g) {
			return g
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %s: %s: not after 20s (err %v, status %+v)", id, what, err, g.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
