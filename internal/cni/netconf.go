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

// WriteConfig writes the bridge network whose addresses come from eci-ipam,
// atomically (the runtime watches the directory). The plugin leaves the
// bridge's own addresses alone: the agent puts every vSwitch's gateway on it
// (the plugin's gateway mode takes one subnet per bridge).
func WriteConfig(dir, bridge, socket string) (string, error) {
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       "eci",
		"plugins": []map[string]any{
			{
				"type": "bridge", "bridge": bridge, "isGateway": false, "ipMasq": false, "hairpinMode": true,
				"ipam": map[string]any{"type": PluginName, "socket": socket},
			},
		},
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
