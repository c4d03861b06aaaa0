// Package cli holds the eci command-line client's verbs (run, ps, describe,
// logs, exec, rm, events, hosts, vswitches, tokens): their flags, how they
// find the server, and how they print. cmd/eci only adds them to the root.
package cli

import (
	"github.com/spf13/cobra"

	"github.com/eci-dev/eci/internal/client"
)

// Flags every client verb shares.
type Flags struct {
	Config, Server, Token, CAFile, Output string
}

func (f *Flags) bind(cmd *cobra.Command) {
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.Config, "config", "", "client config file (default $ECI_CONFIG, then ~/.eci/config)")
	pf.StringVar(&f.Server, "server", "", "server URL, https://host:port (default $ECI_SERVER, then the config file)")
	pf.StringVar(&f.Token, "token", "", "bearer token (default $ECI_TOKEN, then the config file)")
	pf.StringVar(&f.CAFile, "ca-file", "", "CA of the server's certificate (default $ECI_CA_FILE, then the config file)")
}

// client builds an API client: flags win over the environment, which wins
// over the config file (client.Source).
func (f *Flags) client() (*client.Client, error) {
	return client.Source{Server: f.Server, Token: f.Token, CAFile: f.CAFile, ConfigFile: f.Config, CLI: true}.New()
}
