// Package cni is eci's CNI plugin (cmd/eci-cni) and the network config the
// agent writes for it. containerd's CNI call runs the plugin, which asks the
// agent over a unix socket to attach the sandbox: the agent makes the
// sandbox's interface with the address the server allocated to the group
// (K8S_POD_UID is the group id), so a group's IP is exactly the one in its
// status, and answers what it made, which the plugin returns as the CNI
// result. The plugin holds no state and makes nothing itself.
package cni

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// PluginName is the plugin's type in the network config and its binary's
// name in a CNI bin dir. This package imports only the standard library, so
// that the plugin, run for every sandbox, starts quickly.
const PluginName = "eci-cni"

var supported = []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}

type netConf struct {
	CNIVersion string `json:"cniVersion"`
	Type       string `json:"type"`
	Socket     string `json:"socket"`
}

// AttachRequest is what the plugin asks the agent for, from the runtime's
// CNI call: the group (K8S_POD_UID), the sandbox and where its interface
// goes.
type AttachRequest struct {
	Group       string `json:"group"`
	ContainerID string `json:"containerID"`
	NetNS       string `json:"netns"`
	IfName      string `json:"ifName"`
}

// Attached is what the agent answers: the host end of the interface, the
// instance's interface and MAC, its address with the vSwitch's prefix
// length (198.19.128.5/24) and the vSwitch's gateway.
type Attached struct {
	HostInterface string `json:"hostInterface"`
	Interface     string `json:"interface"`
	MAC           string `json:"mac"`
	Address       string `json:"address"`
	Gateway       string `json:"gateway"`
	// Address6 and Gateway6: the IPv6 ones, when the instance has IPv6.
	Address6 string `json:"address6,omitempty"`
	Gateway6 string `json:"gateway6,omitempty"`
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
	_ = json.NewEncoder(stdout).Encode(cniError{CNIVersion: "1.0.0", Code: 999, Msg: PluginName + ": " + err.Error()})
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
	if conf.Socket == "" {
		return fmt.Errorf("socket (the agent's) is not set in the network config")
	}
	req := AttachRequest{ContainerID: env("CNI_CONTAINERID"), NetNS: env("CNI_NETNS"), IfName: env("CNI_IFNAME")}
	switch cmd {
	case "ADD":
	case "DEL":
		// The interface dies with the sandbox's namespace, which the
		// runtime deletes after this call: the agent's detach is tidiness,
		// and an agent that can't be reached must not keep the runtime
		// from tearing the sandbox down.
		_ = call(conf.Socket, "/v1/detach", req, nil)
		return nil
	case "CHECK", "GC", "STATUS":
		return nil
	default:
		return fmt.Errorf("CNI_COMMAND %q is not supported", cmd)
	}
	req.Group = cniArg(env("CNI_ARGS"), "K8S_POD_UID")
	if req.Group == "" {
		return fmt.Errorf("CNI_ARGS has no K8S_POD_UID (the group id)")
	}
	if req.ContainerID == "" || req.NetNS == "" || req.IfName == "" {
		return fmt.Errorf("CNI_CONTAINERID, CNI_NETNS and CNI_IFNAME must be set")
	}
	var a Attached
	if err := call(conf.Socket, "/v1/attach", req, &a); err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(result(conf.CNIVersion, req, &a))
}

// result is the CNI result of an attach in the config's version.
func result(version string, req AttachRequest, a *Attached) map[string]any {
	ip := map[string]any{"address": a.Address, "gateway": a.Gateway, "interface": 1}
	ips, routes := []map[string]any{ip}, []map[string]string{{"dst": "0.0.0.0/0", "gw": a.Gateway}}
	if a.Address6 != "" {
		ips = append(ips, map[string]any{"address": a.Address6, "gateway": a.Gateway6, "interface": 1})
		routes = append(routes, map[string]string{"dst": "::/0", "gw": a.Gateway6})
	}
	if strings.HasPrefix(version, "0.") {
		ip["version"] = "4"
		if len(ips) > 1 {
			ips[1]["version"] = "6"
		}
	}
	return map[string]any{
		"cniVersion": version,
		"interfaces": []map[string]string{{"name": a.HostInterface}, {"name": a.Interface, "mac": a.MAC, "sandbox": req.NetNS}},
		"ips":        ips,
		"routes":     routes,
	}
}

func cniArg(args, key string) string {
	for _, kv := range strings.Split(args, ";") {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v
		}
	}
	return ""
}

// call posts req to the agent's path and decodes its answer into out.
func call(socket, path string, req AttachRequest, out any) error {
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		},
	}}
	body, _ := json.Marshal(req)
	resp, err := hc.Post("http://agent"+path, "application/json", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("ask the agent at %s: %w", socket, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("the agent could not attach group %s: %s", req.Group, strings.TrimSpace(string(data)))
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("the agent's answer: %w", err)
	}
	return nil
}
