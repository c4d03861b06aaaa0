package main

import (
	"github.com/spf13/cobra"

	"github.com/eci-dev/eci/internal/cli"
)

// newClientCommands returns the client verbs of the instance API; they find
// the server with --server/--token/--ca-file, $ECI_SERVER/$ECI_TOKEN/
// $ECI_CA_FILE, or a config file (--config, $ECI_CONFIG, ~/.eci/config).
func newClientCommands() []*cobra.Command {
	cmds := cli.Commands()
	planned := []struct{ use, short, issue string }{
		{"bill", "Show metered usage and cost per group, tenant or tag over a period", "(billing, not filed yet)"},
	}
	for _, v := range planned {
		cmds = append(cmds, plannedCmd(&cobra.Command{Use: v.use, Short: v.short}, v.issue))
	}
	return cmds
}
