package agent

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/eci-dev/eci/internal/cni"
)

// TestMain lets this test binary be the CNI plugin too: symlinked as
// eci-ipam into the bed's CNI bin dir, it answers containerd's CNI calls as
// the eci binary does.
func TestMain(m *testing.M) {
	if filepath.Base(os.Args[0]) == cni.PluginName {
		os.Exit(cni.Main(os.Getenv, os.Stdin, os.Stdout))
	}
	os.Exit(m.Run())
}
