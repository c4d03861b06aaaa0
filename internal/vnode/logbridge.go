package vnode

import (
	"context"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/go-logr/logr"
	vklog "github.com/virtual-kubelet/virtual-kubelet/log"
	"k8s.io/klog/v2"

	"github.com/eci-dev/eci/internal/log"
)

// The libraries the node runs on log through loggers of their own:
// virtual-kubelet through its log package (log.G(ctx), or log.L when ctx
// carries none of its loggers), client-go and the apiserver libraries
// through klog. While a vnode runs, both go to the vnode's slog logger (the
// one in Run's context), so the pod controller's and client-go's errors are
// in the daemon's log, in its format, with its fields.
//
// virtual-kubelet's own slog adapter (log/slog) is not used: it takes its
// first argument for a string, and the pod controller logs Error(err).

// bridgeLogs sends virtual-kubelet's log.L and klog's global logger to l
// until the returned function is called. Several vnodes in one process (the
// e2e tests run two) share them: the first one's logger is set, and the
// last one to stop sets them back. Each node's own controllers log with its
// logger anyway: Run puts it in their context (withLibraryLoggers).
//
// log.L is a plain variable the library reads without a lock: it is written
// once per process, before the first vnode's controllers start, to a logger
// that forwards to the bridged one while there is one (and to the library's
// own before and after).
func bridgeLogs(l *slog.Logger) (restore func()) {
	bridge.mu.Lock()
	defer bridge.mu.Unlock()
	bridge.once.Do(func() { vklog.L = forwarder{prev: vklog.L} })
	if bridge.users == 0 {
		bridge.current.Store(l)
		klog.SetLogger(cappedLogr(l))
	}
	bridge.users++
	var once sync.Once
	return func() {
		once.Do(func() {
			bridge.mu.Lock()
			defer bridge.mu.Unlock()
			if bridge.users--; bridge.users == 0 {
				bridge.current.Store(nil)
				klog.ClearLogger()
			}
		})
	}
}

var bridge struct {
	mu      sync.Mutex
	once    sync.Once
	users   int
	current atomic.Pointer[slog.Logger]
}

// bridged tells whether a bridge is in place (for tests).
func bridged() bool {
	bridge.mu.Lock()
	defer bridge.mu.Unlock()
	return bridge.users > 0
}

// forwarder is log.L: the bridged logger while there is one, else the
// library's own.
type forwarder struct{ prev vklog.Logger }

func (f forwarder) target() vklog.Logger {
	if l := bridge.current.Load(); l != nil {
		return vkLogger{l}
	}
	return f.prev
}

func (f forwarder) Debug(args ...any)                 { f.target().Debug(args...) }
func (f forwarder) Debugf(format string, args ...any) { f.target().Debugf(format, args...) }
func (f forwarder) Info(args ...any)                  { f.target().Info(args...) }
func (f forwarder) Infof(format string, args ...any)  { f.target().Infof(format, args...) }
func (f forwarder) Warn(args ...any)                  { f.target().Warn(args...) }
func (f forwarder) Warnf(format string, args ...any)  { f.target().Warnf(format, args...) }
func (f forwarder) Error(args ...any)                 { f.target().Error(args...) }
func (f forwarder) Errorf(format string, args ...any) { f.target().Errorf(format, args...) }
func (f forwarder) Fatal(args ...any)                 { f.target().Fatal(args...) }
func (f forwarder) Fatalf(format string, args ...any) { f.target().Fatalf(format, args...) }
func (f forwarder) WithField(key string, val any) vklog.Logger {
	return f.target().WithField(key, val)
}
func (f forwarder) WithFields(fl vklog.Fields) vklog.Logger { return f.target().WithFields(fl) }
func (f forwarder) WithError(err error) vklog.Logger        { return f.target().WithError(err) }

// withLibraryLoggers puts ctx's slog logger in ctx as virtual-kubelet's and
// klog's contextual logger too.
func withLibraryLoggers(ctx context.Context) context.Context {
	l := log.G(ctx)
	ctx = vklog.WithLogger(ctx, vkLogger{l})
	return klog.NewContext(ctx, cappedLogr(l))
}

// maxKlogV is the most verbose klog level that reaches the log: client-go
// logs request and response bodies (service-account tokens, pods' env) at
// V(8) and headers at V(7), and logr over slog would map V(n) to slog level
// -n, which a debug-4 handler enables. Nothing past V(4) (client-go's
// request lines) is ever passed on.
const maxKlogV = 4

// cappedLogr is l as a logr.Logger for klog, capped at maxKlogV.
func cappedLogr(l *slog.Logger) logr.Logger {
	return logr.New(cappedSink{logr.FromSlogHandler(l.Handler()).GetSink()})
}

type cappedSink struct{ logr.LogSink }

func (c cappedSink) Enabled(level int) bool {
	return level <= maxKlogV && c.LogSink.Enabled(level)
}

func (c cappedSink) Info(level int, msg string, kv ...any) {
	if level <= maxKlogV {
		c.LogSink.Info(level, msg, kv...)
	}
}

func (c cappedSink) WithValues(kv ...any) logr.LogSink {
	return cappedSink{c.LogSink.WithValues(kv...)}
}

func (c cappedSink) WithName(name string) logr.LogSink { return cappedSink{c.LogSink.WithName(name)} }

// vkLogger is virtual-kubelet's Logger over slog. Fatal logs at error level
// and returns: a library never ends the daemon.
type vkLogger struct{ l *slog.Logger }

var _ vklog.Logger = vkLogger{}

func (v vkLogger) log(level slog.Level, args []any) {
	// The bridge has no context of its own: it is a logger's call.
	if ctx := context.Background(); v.l.Enabled(ctx, level) {
		v.l.Log(ctx, level, fmt.Sprint(args...))
	}
}

func (v vkLogger) logf(level slog.Level, format string, args []any) {
	if ctx := context.Background(); v.l.Enabled(ctx, level) {
		v.l.Log(ctx, level, fmt.Sprintf(format, args...))
	}
}

func (v vkLogger) Debug(args ...any)                 { v.log(slog.LevelDebug, args) }
func (v vkLogger) Debugf(format string, args ...any) { v.logf(slog.LevelDebug, format, args) }
func (v vkLogger) Info(args ...any)                  { v.log(slog.LevelInfo, args) }
func (v vkLogger) Infof(format string, args ...any)  { v.logf(slog.LevelInfo, format, args) }
func (v vkLogger) Warn(args ...any)                  { v.log(slog.LevelWarn, args) }
func (v vkLogger) Warnf(format string, args ...any)  { v.logf(slog.LevelWarn, format, args) }
func (v vkLogger) Error(args ...any)                 { v.log(slog.LevelError, args) }
func (v vkLogger) Errorf(format string, args ...any) { v.logf(slog.LevelError, format, args) }
func (v vkLogger) Fatal(args ...any)                 { v.with("fatal", true).log(slog.LevelError, args) }
func (v vkLogger) Fatalf(format string, args ...any) {
	v.with("fatal", true).logf(slog.LevelError, format, args)
}

// with is slog's With.
func (v vkLogger) with(args ...any) vkLogger { return vkLogger{v.l.With(args...)} }

func (v vkLogger) WithField(key string, val any) vklog.Logger { return v.with(key, val) }

func (v vkLogger) WithFields(f vklog.Fields) vklog.Logger {
	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	args := make([]any, 0, 2*len(keys))
	for _, k := range keys {
		args = append(args, k, f[k])
	}
	return v.with(args...)
}

func (v vkLogger) WithError(err error) vklog.Logger { return v.with("err", err) }

// httpErrorLog is net/http's error log for the node's servers, at warn:
// what it writes, but for the handshakes that end before a byte (EOF): a
// TCP probe or a load balancer's health check every few seconds.
func httpErrorLog(l *slog.Logger) *stdlog.Logger {
	return stdlog.New(probeFilter{slog.NewLogLogger(l.Handler(), slog.LevelWarn).Writer()}, "", 0)
}

type probeFilter struct{ w io.Writer }

func (f probeFilter) Write(p []byte) (int, error) {
	if line := strings.TrimSpace(string(p)); strings.Contains(line, "TLS handshake error") && strings.HasSuffix(line, ": EOF") {
		return len(p), nil
	}
	return f.w.Write(p)
}
