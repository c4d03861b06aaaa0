package log

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestLoggerTravelsInContext(t *testing.T) {
	var buf bytes.Buffer
	l, err := New(&buf, "json", "debug")
	if err != nil {
		t.Fatal(err)
	}
	ctx := With(WithLogger(context.Background(), l), "group", "g-1")
	G(ctx).Info("placed")
	if out := buf.String(); !strings.Contains(out, `"group":"g-1"`) || !strings.Contains(out, `"msg":"placed"`) {
		t.Fatalf("log line %q lacks the context's fields", out)
	}
}

func TestNewRejectsBadValues(t *testing.T) {
	if _, err := New(&bytes.Buffer{}, "yaml", "info"); err == nil || !strings.Contains(err.Error(), "--log-format") || !strings.Contains(err.Error(), "text, json") {
		t.Errorf("bad format: %v", err)
	}
	if _, err := New(&bytes.Buffer{}, "text", "loud"); err == nil || !strings.Contains(err.Error(), "--log-level") {
		t.Errorf("bad level: %v", err)
	}
}

func TestOnlyTheNamedLevels(t *testing.T) {
	for _, ok := range []string{"debug", "INFO", "warn", "error"} {
		if _, err := New(&bytes.Buffer{}, "text", ok); err != nil {
			t.Errorf("level %q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"debug-4", "info+2", "trace", ""} {
		if _, err := New(&bytes.Buffer{}, "text", bad); err == nil || !strings.Contains(err.Error(), "allowed: debug, info, warn, error") {
			t.Errorf("level %q: %v, want a refusal naming the allowed levels", bad, err)
		}
	}
}
