package vnode

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	vklog "github.com/virtual-kubelet/virtual-kubelet/log"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/log"
	"github.com/eci-dev/eci/internal/pki"
	"github.com/eci-dev/eci/internal/poll"
)

// testConfig is a node on a fake cluster and an instance service that
// answers /readyz only (its groups are never listed, so the node never gets
// Ready).
func testConfig(t *testing.T) (Config, *httptest.Server) {
	t.Helper()
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" {
			return
		}
		http.Error(w, "not in this test", http.StatusServiceUnavailable)
	}))
	t.Cleanup(svc.Close)
	ca, err := pki.NewCA("test-cluster", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caFile, pki.CertPEM(ca.Cert), 0o600); err != nil {
		t.Fatal(err)
	}
	eci, err := client.New(client.Config{Server: svc.URL, Token: "t", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return Config{NodeName: "vn-test", Kube: fake.NewClientset(), ECI: eci, InternalIP: "127.0.0.1",
		ListenAddr: "127.0.0.1:0", ClientCAFile: caFile}, svc
}

// goroutines is how many run now, once a moment's stragglers are gone: at
// most base, or the least seen within a few seconds.
func goroutines(base int) int {
	least := runtime.NumGoroutine()
	_ = poll.Until(context.Background(), 5*time.Second, func() error {
		if least = min(least, runtime.NumGoroutine()); least > base {
			return fmt.Errorf("%d goroutines", least)
		}
		return nil
	})
	return least
}

func stacks() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}

// New starts nothing; Run starts the controllers, the informers, the event
// broadcaster and the log bridge, and takes them all down when ctx ends:
// Done closes, Err is nil, no goroutine is left.
func TestNewStartsNothingRunStopsEverything(t *testing.T) {
	cfg, svc := testConfig(t)
	base := runtime.NumGoroutine()
	v, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if n := goroutines(base); n > base {
		t.Fatalf("New started %d goroutines:\n%s", n-base, stacks())
	}
	var buf syncBuffer
	ctx, cancel := context.WithCancel(log.WithLogger(t.Context(), slog.New(slog.NewJSONHandler(&buf, nil))))
	go func() { _ = v.Run(ctx) }()
	poll.Eventually(t, 10*time.Second, "the bridge in place while Run runs", func() error {
		if !bridged() {
			return context.DeadlineExceeded
		}
		return nil
	})
	vklog.L.Info("through the bridge")
	select {
	case <-v.Done():
		t.Fatalf("Run returned: %v", v.Err())
	case <-time.After(200 * time.Millisecond):
	}
	cancel()
	select {
	case <-v.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("Run did not return when ctx ended:\n%s", stacks())
	}
	if err := v.Err(); err != nil {
		t.Fatalf("Err: %v", err)
	}
	if bridged() {
		t.Error("the log bridge is still in place after Run")
	}
	if r := find(buf.lines(t), "through the bridge"); r == nil || r["node"] != "vn-test" {
		t.Errorf("log.L's line not in Run's logger with the node's name: %v", r)
	}
	svc.CloseClientConnections() // the test's: the client's kept connections to it end
	if n := goroutines(base); n > base {
		s := stacks()
		t.Fatalf("%d goroutines left after Run:\n%s", n-base, s[:min(len(s), 20000)])
	}
}
