package vnode

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"

	vklog "github.com/virtual-kubelet/virtual-kubelet/log"
	"k8s.io/klog/v2"

	"github.com/eci-dev/eci/internal/log"
)

// syncBuffer is a buffer the handler and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// lines are the JSON records written so far.
func (s *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s.b.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not a JSON record: %q", l)
		}
		out = append(out, m)
	}
	return out
}

// find is the first record whose message is msg.
func find(recs []map[string]any, msg string) map[string]any {
	for _, r := range recs {
		if r["msg"] == msg {
			return r
		}
	}
	return nil
}

// What virtual-kubelet (log.L, log.G) and klog write reaches the vnode's slog
// handler, with the logger's fields, until the bridge is taken down.
func TestLibraryLogsReachSlog(t *testing.T) {
	var buf syncBuffer
	l := slog.New(slog.NewJSONHandler(&buf, nil)).With("node", "vn-1")
	restore := bridgeLogs(l)
	vklog.L.WithField("pod", "default/web").Error(errors.New("boom"))
	vklog.G(withLibraryLoggers(log.WithLogger(t.Context(), l))).WithFields(vklog.Fields{"b": 2, "a": 1}).Warnf("queue %s", "full")
	vklog.L.Debug("not at info level")
	klog.ErrorS(errors.New("connection refused"), "Failed to watch", "resource", "pods")
	klog.Infof("reflector %d", 7)
	restore()
	restore() // twice is once
	vklog.L.Error("after the bridge")
	klog.Flush()

	recs := buf.lines(t)
	for msg, want := range map[string]map[string]any{
		"boom":            {"level": "ERROR", "node": "vn-1", "pod": "default/web"},
		"queue full":      {"level": "WARN", "node": "vn-1", "a": float64(1), "b": float64(2)},
		"Failed to watch": {"level": "ERROR", "node": "vn-1", "resource": "pods", "err": "connection refused"},
		"reflector 7":     {"level": "INFO", "node": "vn-1"},
	} {
		r := find(recs, msg)
		if r == nil {
			t.Errorf("no record %q in %v", msg, recs)
			continue
		}
		for k, v := range want {
			if r[k] != v {
				t.Errorf("record %q: %s = %v, want %v", msg, k, r[k], v)
			}
		}
	}
	for _, msg := range []string{"not at info level", "after the bridge"} {
		if find(recs, msg) != nil {
			t.Errorf("record %q should not be in the vnode's log", msg)
		}
	}
	if bridged() {
		t.Error("the bridge is still in place once it is taken down")
	}
}

// client-go logs request and response bodies (tokens, pods' env) at klog
// V(8): nothing past V(4) reaches the log, whatever the handler's level.
func TestKlogVerbosityIsCapped(t *testing.T) {
	var buf syncBuffer
	l := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.Level(-10)}))
	ctx := withLibraryLoggers(log.WithLogger(t.Context(), l))
	logger := klog.FromContext(ctx)
	logger.V(4).Info("request line")
	logger.V(8).Info("response body", "body", "a-secret-token")
	if logger.V(8).Enabled() {
		t.Error("klog V(8) is enabled through the bridge")
	}
	restore := bridgeLogs(l)
	klog.V(8).InfoS("global body", "body", "a-secret-token")
	restore()
	klog.Flush()
	recs := buf.lines(t)
	if find(recs, "request line") == nil {
		t.Errorf("no V(4) record in %v", recs)
	}
	for _, msg := range []string{"response body", "global body"} {
		if find(recs, msg) != nil {
			t.Errorf("a V(8) record %q reached the log", msg)
		}
	}
}

// A handshake that ends before a byte (a TCP probe) is not logged; other
// handshake errors are.
func TestHTTPErrorLogDropsProbes(t *testing.T) {
	var buf bytes.Buffer
	l := httpErrorLog(slog.New(slog.NewTextHandler(&buf, nil)))
	l.Printf("http: TLS handshake error from 198.19.0.1:54230: EOF")
	if buf.Len() != 0 {
		t.Fatalf("a probe's handshake was logged: %q", buf.String())
	}
	l.Printf("http: TLS handshake error from 198.19.0.1:54230: remote error: tls: bad certificate")
	if !strings.Contains(buf.String(), "bad certificate") {
		t.Fatalf("a real handshake error was not logged: %q", buf.String())
	}
}
