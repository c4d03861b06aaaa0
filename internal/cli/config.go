// Package cli holds the eci command-line client's verbs (run, ps, describe,
// logs, exec, rm, events, hosts, vswitches, tokens): their flags, how they
// find the server, and how they print. cmd/eci only adds them to the root.
package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/eci-dev/eci/internal/client"
)

// Config is the client's config file (YAML): where the server is and the
// token to use. eci server writes one for the admin into its data dir.
type Config struct {
	Server string `json:"server"`
	Token  string `json:"token"`
	CAFile string `json:"caFile,omitempty"`
}

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

// WriteConfig writes a client config file readable by its owner only.
func WriteConfig(path string, c Config) error {
	data, err := yaml.Marshal(c)
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o600)
}

// LoadConfig reads a client config file.
func LoadConfig(path string) (Config, error) {
	var c Config
	data, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("config file: %w", err)
	}
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return c, fmt.Errorf("config file %s: %w", path, err)
	}
	return c, nil
}

// client builds an API client: flags win over the environment, which wins over
// the config file.
func (f *Flags) client() (*client.Client, error) {
	var c Config
	path := firstOf(f.Config, os.Getenv("ECI_CONFIG"))
	explicit := path != ""
	if path == "" {
		if home, err := os.UserHomeDir(); err == nil {
			path = filepath.Join(home, ".eci", "config")
		}
	}
	if path != "" {
		data, err := os.ReadFile(path)
		switch {
		case err == nil:
			if err := yaml.UnmarshalStrict(data, &c); err != nil {
				return nil, fmt.Errorf("config file %s: %w", path, err)
			}
		case explicit || !errors.Is(err, os.ErrNotExist):
			return nil, fmt.Errorf("config file: %w", err)
		}
	}
	c.Server = firstOf(f.Server, os.Getenv("ECI_SERVER"), c.Server)
	c.Token = firstOf(f.Token, os.Getenv("ECI_TOKEN"), c.Token)
	c.CAFile = firstOf(f.CAFile, os.Getenv("ECI_CA_FILE"), c.CAFile)
	if c.Server == "" {
		return nil, errors.New("no server: give --server, $ECI_SERVER or a config file (eci server writes one to <data-dir>/admin.conf)")
	}
	return client.New(client.Config{Server: c.Server, Token: c.Token, CAFile: c.CAFile})
}

func firstOf(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}
