package main

import (
	"github.com/spf13/cobra"
)

// newClientCommands returns the client verbs of the instance API. They talk to an
// eci server (--server, a token from --token or $ECI_TOKEN).
func newClientCommands() []*cobra.Command {
	verbs := []struct{ use, short string }{
		{"run NAME --image IMAGE", "Create a container group (CreateContainerGroup)"},
		{"ps", "List container groups with their state, IP, host and size (DescribeContainerGroups)"},
		{"describe GROUP", "Show one container group: spec, status, containers, events"},
		{"logs GROUP [CONTAINER]", "Print a container's log: --tail, --since, --timestamps, --previous, --follow"},
		{"exec GROUP [CONTAINER] -- COMMAND...", "Run a command in a container, with -i for stdin and -t for a tty"},
		{"rm GROUP...", "Delete container groups: graceful by default, --force to kill at once"},
		{"events [GROUP]", "List events of a container group or of the whole service"},
		{"bill", "Show metered usage and cost per group, tenant or tag over a period"},
	}
	cmds := make([]*cobra.Command, 0, len(verbs))
	for _, v := range verbs {
		cmds = append(cmds, planned(&cobra.Command{Use: v.use, Short: v.short, GroupID: ""}, "#4"))
	}
	return cmds
}
