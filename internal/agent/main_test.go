package agent

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/eci-dev/eci/internal/cni"
)

// TestMain lets this test binary be the CNI plugin too: symlinked as
// eci-cni into the bed's CNI bin dir, it answers containerd's CNI calls as
// the eci binary does.
func TestMain(m *testing.M) {
	if filepath.Base(os.Args[0]) == cni.PluginName {
		os.Exit(cni.Main(os.Getenv, os.Stdin, os.Stdout))
	}
	// Benchmark lines must stay readable: only warnings and errors are logged,
	// unless ECI_TEST_VERBOSE is set.
	level := slog.LevelWarn
	if os.Getenv("ECI_TEST_VERBOSE") != "" {
		level = slog.LevelDebug
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})))
	os.Exit(m.Run())
}

// quiet is the logger of the CRI client in tests: an agent stopped at the end
// of a test cancels calls in flight, which the client logs as errors.
func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
