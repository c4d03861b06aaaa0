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
	if _, ok := vklog.L.(vkLogger); ok {
		t.Error("log.L is still the bridge once it is taken down")
	}
}
