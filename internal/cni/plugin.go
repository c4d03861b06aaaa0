// Package cni is eci's CNI IPAM plugin (cmd/eci-ipam) and the network config
// the agent writes for it. containerd's CNI call runs the bridge plugin, which
// asks the IPAM plugin "eci-ipam" for the sandbox's address; the plugin asks the agent over a unix socket, and the agent answers
// with the address the server allocated to the group (K8S_POD_UID is the
// group id). So a group's IP is exactly the one in its status.
package cni

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// PluginName is the IPAM type in the network config and the plugin binary's
// name in a CNI bin dir. This package imports only the standard library, so
// that the plugin, run for every sandbox, starts quickly.
const PluginName = "eci-ipam"

var supported = []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}

type netConf struct {
	CNIVersion string `json:"cniVersion"`
	IPAM       struct {
		Type   string `json:"type"`
		Socket string `json:"socket"`
	} `json:"ipam"`
}

// Address is what the agent answers: the group's address with its prefix
// length, and the vSwitch's gateway.
type Address struct {
	Address string `json:"address"` // 198.19.128.5/24
	Gateway string `json:"gateway"`
}

type cniError struct {
	CNIVersion string `json:"cniVersion"`
	Code       int    `json:"code"`
	Msg        string `json:"msg"`
	Details    string `json:"details,omitempty"`
}

// Main runs the plugin: the CNI command from env, the config from stdin, the
// result or error on stdout. It returns the process exit code.
func Main(env func(string) string, stdin io.Reader, stdout io.Writer) int {
	err := run(env, stdin, stdout)
	if err == nil {
		return 0
	}
	_ = json.NewEncoder(stdout).Encode(cniError{CNIVersion: "1.0.0", Code: 999, Msg: "eci-ipam: " + err.Error()})
	return 1
}

func run(env func(string) string, stdin io.Reader, stdout io.Writer) error {
	cmd := env("CNI_COMMAND")
	if cmd == "VERSION" {
		return json.NewEncoder(stdout).Encode(map[string]any{"cniVersion": "1.0.0", "supportedVersions": supported})
	}
	data, err := io.ReadAll(stdin)
	if err != nil {
		return err
	}
	var conf netConf
	if err := json.Unmarshal(data, &conf); err != nil {
		return fmt.Errorf("network config: %w", err)
	}
	switch cmd {
	case "ADD":
	case "DEL", "CHECK", "GC", "STATUS":
		// The server owns the address: nothing to release or verify here.
		return nil
	default:
		return fmt.Errorf("CNI_COMMAND %q is not supported", cmd)
	}
	group := cniArg(env("CNI_ARGS"), "K8S_POD_UID")
	if group == "" {
		return fmt.Errorf("CNI_ARGS has no K8S_POD_UID (the group id)")
	}
	if conf.IPAM.Socket == "" {
		return fmt.Errorf("ipam.socket (the agent's socket) is not set in the network config")
	}
	addr, err := ask(conf.IPAM.Socket, group)
	if err != nil {
		return err
	}
	result := map[string]any{
		"cniVersion": conf.CNIVersion,
		"ips":        []map[string]string{{"address": addr.Address, "gateway": addr.Gateway}},
		"routes":     []map[string]string{{"dst": "0.0.0.0/0", "gw": addr.Gateway}},
	}
	if strings.HasPrefix(conf.CNIVersion, "0.3") {
		result["ips"] = []map[string]string{{"version": "4", "address": addr.Address, "gateway": addr.Gateway}}
	}
	return json.NewEncoder(stdout).Encode(result)
}

func cniArg(args, key string) string {
	for _, kv := range strings.Split(args, ";") {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v
		}
	}
	return ""
}

// ask gets group's address from the agent.
func ask(socket, group string) (*Address, error) {
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		},
	}}
	resp, err := hc.Get("http://agent/v1/address?group=" + url.QueryEscape(group))
	if err != nil {
		return nil, fmt.Errorf("ask the agent at %s: %w", socket, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the agent has no address for group %s: %s", group, strings.TrimSpace(string(body)))
	}
	var a Address
	if err := json.Unmarshal(body, &a); err != nil {
		return nil, fmt.Errorf("the agent's answer: %w", err)
	}
	return &a, nil
}
