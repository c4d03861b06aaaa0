// Package servertest runs an in-process eci server on a real embedded etcd for
// the tests of other packages (the agent, the CLI, the virtual node).
package servertest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"testing"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/poll"
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
	var g *apiv1.ContainerGroup
	poll.Eventually(t, 20*time.Second, "group "+id+": "+what, func() error {
		cur, err := s.Admin.GetGroup(context.Background(), id)
		if err != nil {
			return err
		}
		if !cond(cur) {
			return fmt.Errorf("status %+v", cur.Status)
		}
		g = cur
		return nil
	})
	return g
}

// DeleteGroup deletes group id gracefully and waits until the server has
// removed it (its agent stopped it and finalized), timeout at most.
func (s *Server) DeleteGroup(t testing.TB, id string, timeout time.Duration, what string) {
	t.Helper()
	if _, err := s.Admin.DeleteGroup(context.Background(), id, client.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, timeout, what, func() error {
		if _, err := s.Admin.GetGroup(context.Background(), id); !errdefs.IsNotFound(err) {
			return fmt.Errorf("still there (%v)", err)
		}
		return nil
	})
}

// TenantClient makes tenant (without quota) and a token of it, and returns
// its client.
func (s *Server) TenantClient(t testing.TB, tenant string) *client.Client {
	t.Helper()
	return s.Client(t, s.TenantToken(t, tenant))
}

// TenantToken makes tenant (without quota) and returns a token of it.
func (s *Server) TenantToken(t testing.TB, tenant string) string {
	t.Helper()
	if _, err := s.Admin.PutTenant(context.Background(), &apiv1.Tenant{Metadata: apiv1.ObjectMeta{Name: tenant}}); err != nil {
		t.Fatal(err)
	}
	tok, err := s.Admin.CreateToken(context.Background(), &apiv1.Token{Spec: apiv1.TokenSpec{Kind: apiv1.TokenTenant, Tenant: tenant}})
	if err != nil {
		t.Fatal(err)
	}
	return tok.Status.Token
}

// AdminRequest sends a raw request with the admin token (for what the Go
// client never sends: malformed queries).
func (s *Server) AdminRequest(t testing.TB, method, path string, body io.Reader) (*http.Response, error) {
	t.Helper()
	pool := x509.NewCertPool()
	ca, err := os.ReadFile(s.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	pool.AppendCertsFromPEM(ca)
	req, err := http.NewRequest(method, s.URL()+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+s.AdminToken())
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	return hc.Do(req)
}
