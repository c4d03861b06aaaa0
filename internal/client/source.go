package client

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"
)

// ConfigFile is a client config file (YAML): where the server is and the
// token to use. eci server and eci up write one for the admin.
type ConfigFile struct {
	Server string `json:"server"`
	Token  string `json:"token"`
	CAFile string `json:"caFile,omitempty"`
}

// WriteConfigFile writes c to path, readable by its owner only.
func WriteConfigFile(path string, c ConfigFile) error {
	data, err := yaml.Marshal(c)
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o600)
}

// LoadConfigFile reads a client config file; a field it does not know is
// an error.
func LoadConfigFile(path string) (ConfigFile, error) {
	var c ConfigFile
	data, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("config file: %w", err)
	}
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return c, fmt.Errorf("config file %s: %w", path, err)
	}
	return c, nil
}

// Source is where a client finds its server, token and CA: the one place
// the eci binary's verbs and daemons (agent, vnode) resolve them. Each
// setting comes from the first that has it: the flag (for the token, the
// file --token-file names, then --token), the environment, the config
// file. A daemon (CLI false) takes only $ECI_TOKEN from the environment and
// reads no config file: a host must not run with whatever server, CA or
// token its operator's shell or home holds. The CLI (CLI true) also takes
// $ECI_SERVER and $ECI_CA_FILE, and reads ConfigFile, else $ECI_CONFIG,
// else ~/.eci/config if there is one.
type Source struct {
	Server, Token, TokenFile, CAFile string
	ConfigFile                       string // read, an error if it can't be
	CLI                              bool
}

// Config resolves s.
func (s Source) Config() (Config, error) {
	var file ConfigFile
	path, explicit := s.ConfigFile, s.ConfigFile != ""
	if !explicit && s.CLI {
		path = os.Getenv("ECI_CONFIG")
		explicit = path != ""
		if home, err := os.UserHomeDir(); path == "" && err == nil {
			path = filepath.Join(home, ".eci", "config")
		}
	}
	if path != "" {
		var err error
		file, err = LoadConfigFile(path)
		if err != nil && (explicit || !errors.Is(err, os.ErrNotExist)) {
			return Config{}, err
		}
	}
	token := s.Token
	if s.TokenFile != "" {
		data, err := os.ReadFile(s.TokenFile)
		if err != nil {
			return Config{}, fmt.Errorf("--token-file: %w", err)
		}
		token = strings.TrimSpace(string(data))
	}
	env := func(name string) string {
		if s.CLI {
			return os.Getenv(name)
		}
		return ""
	}
	c := Config{
		Server: firstOf(s.Server, env("ECI_SERVER"), file.Server),
		Token:  firstOf(token, os.Getenv("ECI_TOKEN"), file.Token),
		CAFile: firstOf(s.CAFile, env("ECI_CA_FILE"), file.CAFile),
	}
	if c.Server == "" {
		return Config{}, errors.New("no server: give --server, $ECI_SERVER or a config file (eci server writes one to <data-dir>/admin.conf)")
	}
	return c, nil
}

// New resolves s and builds its client.
func (s Source) New() (*Client, error) {
	c, err := s.Config()
	if err != nil {
		return nil, err
	}
	return New(c)
}

func firstOf(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}
