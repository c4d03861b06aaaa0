package client

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSourceOrder(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "config")
	if err := WriteConfigFile(conf, ConfigFile{Server: "https://file:1", Token: "file-token", CAFile: "/file/ca"}); err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("token-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ECI_SERVER", "")
	t.Setenv("ECI_TOKEN", "")
	t.Setenv("ECI_CA_FILE", "")
	t.Setenv("ECI_CONFIG", "")
	t.Setenv("HOME", dir) // no ~/.eci/config

	for _, tc := range []struct {
		name string
		env  map[string]string
		src  Source
		want Config
	}{
		{"the config file alone", nil, Source{ConfigFile: conf, CLI: true}, Config{Server: "https://file:1", Token: "file-token", CAFile: "/file/ca"}},
		{"the environment over the file", map[string]string{"ECI_SERVER": "https://env:2", "ECI_TOKEN": "env-token"}, Source{ConfigFile: conf, CLI: true},
			Config{Server: "https://env:2", Token: "env-token", CAFile: "/file/ca"}},
		{"flags over the environment", map[string]string{"ECI_TOKEN": "env-token"}, Source{ConfigFile: conf, CLI: true, Server: "https://flag:3", Token: "flag-token"},
			Config{Server: "https://flag:3", Token: "flag-token", CAFile: "/file/ca"}},
		{"--token-file over --token", nil, Source{Server: "https://flag:3", Token: "flag-token", TokenFile: tokenFile},
			Config{Server: "https://flag:3", Token: "token-from-file"}},
		{"$ECI_CONFIG for the CLI", map[string]string{"ECI_CONFIG": conf}, Source{CLI: true},
			Config{Server: "https://file:1", Token: "file-token", CAFile: "/file/ca"}},
		{"a daemon reads no user config", map[string]string{"ECI_CONFIG": conf}, Source{Server: "https://flag:3"},
			Config{Server: "https://flag:3"}},
		{"a daemon takes $ECI_TOKEN alone from the environment", map[string]string{"ECI_TOKEN": "env-token", "ECI_CA_FILE": "/env/ca", "ECI_SERVER": "https://env:2"},
			Source{Server: "https://flag:3"}, Config{Server: "https://flag:3", Token: "env-token"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			got, err := tc.src.Config()
			if err != nil {
				t.Fatal(err)
			}
			if got.Server != tc.want.Server || got.Token != tc.want.Token || got.CAFile != tc.want.CAFile {
				t.Fatalf("Config() = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestSourceErrors(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("ECI_SERVER", "")
	t.Setenv("ECI_CONFIG", "")
	t.Setenv("HOME", dir)
	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(bad, []byte("server: x\nsurprise: y\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		src  Source
		want string
	}{
		{"no server anywhere", Source{CLI: true}, "no server"},
		{"a named config file that is missing", Source{ConfigFile: filepath.Join(dir, "missing")}, "config file"},
		{"an unknown field", Source{ConfigFile: bad}, "surprise"},
		{"a token file that is missing", Source{Server: "https://s:1", TokenFile: filepath.Join(dir, "missing")}, "--token-file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.src.Config()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Config() error = %v, want one naming %q", err, tc.want)
			}
		})
	}
}
