package cni

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// ConfigFile is the network config the agent writes; its name sorts before the
// usual ones so that the runtime picks it.
const ConfigFile = "05-eci.conflist"

// WriteConfig writes the network name whose one plugin is eci-cni, asking
// the agent at socket, atomically (the runtime watches the directory).
func WriteConfig(dir, name, socket string) (string, error) {
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       name,
		"plugins":    []map[string]any{{"type": PluginName, "socket": socket}},
	}
	data, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("CNI config dir: %w", err)
	}
	path := filepath.Join(dir, ConfigFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return "", err
	}
	return path, os.Rename(tmp, path)
}
