// Command eci-cni is eci's CNI plugin: put it in the runtime's CNI bin dir;
// the network config the eci agent writes names it. It asks the agent to
// attach the sandbox (the agent makes its interface, with the address the
// server allocated to the sandbox's group, and the host's route to it).
//
// It is the one main package besides cmd/eci because the runtime executes it
// for every sandbox: it imports nothing but the standard library and
// internal/cni, and starts in about 2 ms where the full eci binary takes
// about 35 ms (docs/architecture.md).
package main

import (
	"os"

	"github.com/eci-dev/eci/internal/cni"
)

func main() { os.Exit(cni.Main(os.Getenv, os.Stdin, os.Stdout)) }
