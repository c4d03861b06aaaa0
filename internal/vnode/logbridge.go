package vnode

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"

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
func bridgeLogs(l *slog.Logger) (restore func()) {
	bridge.mu.Lock()
	defer bridge.mu.Unlock()
	if bridge.users == 0 {
		bridge.prevL = vklog.L
		vklog.L = vkLogger{l}
		klog.SetSlogLogger(l)
	}
	bridge.users++
	var once sync.Once
	return func() {
		once.Do(func() {
			bridge.mu.Lock()
			defer bridge.mu.Unlock()
			if bridge.users--; bridge.users == 0 {
				vklog.L = bridge.prevL
				klog.ClearLogger()
			}
		})
	}
}

var bridge struct {
	mu    sync.Mutex
	users int
	prevL vklog.Logger
}

// withLibraryLoggers puts ctx's slog logger in ctx as virtual-kubelet's and
// klog's contextual logger too.
func withLibraryLoggers(ctx context.Context) context.Context {
	l := log.G(ctx)
	ctx = vklog.WithLogger(ctx, vkLogger{l})
	return klog.NewContext(ctx, logr.FromSlogHandler(l.Handler()))
}

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
