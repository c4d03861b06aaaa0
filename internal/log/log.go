// Package log carries a *slog.Logger in a context.Context, as containerd's log
// package does: every daemon and request gets its logger from its context, with
// the fields of its scope already attached.
package log

import (
	"context"
	"io"
	"log/slog"
	"strings"
)

type loggerKey struct{}

// WithLogger returns a context that carries l.
func WithLogger(ctx context.Context, l *slog.Logger) context.Context {
	return context.WithValue(ctx, loggerKey{}, l)
}

// G returns the logger of ctx, or slog's default logger when ctx carries none.
func G(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok {
		return l
	}
	return slog.Default()
}

// With returns a context whose logger has the given attributes added.
func With(ctx context.Context, args ...any) context.Context {
	return WithLogger(ctx, G(ctx).With(args...))
}

// New builds the logger of a daemon: format is "text" or "json", level one of
// debug, info, warn, error.
func New(w io.Writer, format, level string) (*slog.Logger, error) {
	// Only the four named levels: slog would also take "debug-4" and the
	// like, which would turn on libraries' most verbose logs (bodies of
	// requests, with their tokens).
	lv, ok := map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}[strings.ToLower(level)]
	if !ok {
		return nil, &FlagError{Flag: "log-level", Value: level, Allowed: "debug, info, warn, error"}
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "text", "":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, &FlagError{Flag: "log-format", Value: format, Allowed: "text, json"}
	}
}

// FlagError names a bad flag value and what is allowed.
type FlagError struct {
	Flag, Value, Allowed string
}

func (e *FlagError) Error() string {
	return "--" + e.Flag + ": " + "invalid value " + `"` + e.Value + `"` + "; allowed: " + e.Allowed
}
