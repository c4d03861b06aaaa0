package cni

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

func TestPluginAsksTheAgent(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "cni.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var detached []string
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/attach", func(w http.ResponseWriter, r *http.Request) {
		var req AttachRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Group != "eci-1" {
			http.Error(w, "unknown group", http.StatusNotFound)
			return
		}
		if req.ContainerID != "sb1" || req.NetNS != "/run/netns/cni-1" || req.IfName != "eth0" {
			http.Error(w, "wrong sandbox", http.StatusBadRequest)
			return
		}
		_ = json.NewEncoder(w).Encode(Attached{HostInterface: "eci0123456789ab", Interface: "eth0", MAC: "02:00:00:00:00:01",
			Address: "198.19.128.7/24", Gateway: "198.19.128.1"})
	})
	mux.HandleFunc("POST /v1/detach", func(w http.ResponseWriter, r *http.Request) {
		var req AttachRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		detached = append(detached, req.ContainerID)
	})
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })

	call := func(cmd, args, conf string) (string, int) {
		env := map[string]string{"CNI_COMMAND": cmd, "CNI_ARGS": args, "CNI_CONTAINERID": "sb1", "CNI_NETNS": "/run/netns/cni-1", "CNI_IFNAME": "eth0"}
		var out bytes.Buffer
		code := Main(func(k string) string { return env[k] }, strings.NewReader(conf), &out)
		return out.String(), code
	}
	conf := `{"cniVersion":"1.0.0","name":"eci","type":"eci-cni","socket":"` + sock + `"}`
	out, code := call("ADD", "IgnoreUnknown=1;K8S_POD_NAMESPACE=acme;K8S_POD_UID=eci-1", conf)
	var res struct {
		CNIVersion string `json:"cniVersion"`
		Interfaces []struct{ Name, Mac, Sandbox string }
		IPs        []struct {
			Address, Gateway, Version string
			Interface                 int
		}
		Routes []struct{ Dst, Gw string }
	}
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || res.CNIVersion != "1.0.0" || len(res.IPs) != 1 || res.IPs[0].Address != "198.19.128.7/24" ||
		res.IPs[0].Gateway != "198.19.128.1" || res.IPs[0].Interface != 1 || res.IPs[0].Version != "" || len(res.Interfaces) != 2 ||
		res.Interfaces[1].Sandbox != "/run/netns/cni-1" || res.Interfaces[1].Mac != "02:00:00:00:00:01" || res.Routes[0].Gw != "198.19.128.1" {
		t.Fatalf("ADD: exit %d, %s", code, out)
	}
	old := strings.Replace(conf, "1.0.0", "0.3.1", 1)
	if out, code := call("ADD", "K8S_POD_UID=eci-1", old); code != 0 || json.Unmarshal([]byte(out), &res) != nil || res.IPs[0].Version != "4" {
		t.Fatalf("ADD in 0.3.1: exit %d, %s", code, out)
	}
	if out, code := call("ADD", "K8S_POD_UID=eci-2", conf); code != 1 || !strings.Contains(out, "unknown group") {
		t.Fatalf("ADD for a group the agent does not know: exit %d, %s", code, out)
	}
	if out, code := call("ADD", "K8S_POD_NAME=x", conf); code != 1 || !strings.Contains(out, "K8S_POD_UID") {
		t.Fatalf("ADD without the uid: exit %d, %s", code, out)
	}
	if _, code := call("DEL", "K8S_POD_UID=eci-1", conf); code != 0 || len(detached) != 1 || detached[0] != "sb1" {
		t.Fatalf("DEL: exit %d, detached %v", code, detached)
	}
	// An agent that can't be reached keeps no sandbox from going.
	gone := `{"cniVersion":"1.0.0","name":"eci","type":"eci-cni","socket":"` + filepath.Join(t.TempDir(), "none.sock") + `"}`
	if _, code := call("DEL", "K8S_POD_UID=eci-1", gone); code != 0 {
		t.Fatal("DEL without an agent failed")
	}
	if out, code := call("VERSION", "", ""); code != 0 || !strings.Contains(out, `"1.0.0"`) {
		t.Fatalf("VERSION: %s", out)
	}
}

// A dual-stack instance's result has both addresses and both default
// routes, IPv4 first (the runtime's pod IP).
func TestResultDualStack(t *testing.T) {
	a := &Attached{HostInterface: "eci-0123456789a", Interface: "eth0", MAC: "02:00:00:00:00:01",
		Address: "198.19.128.7/24", Gateway: "198.19.128.1", Address6: "2001:2:0:60::7/64", Gateway6: "2001:2:0:60::1"}
	for _, version := range []string{"1.0.0", "0.3.1"} {
		raw, _ := json.Marshal(result(version, AttachRequest{NetNS: "/run/netns/cni-1"}, a))
		var res struct {
			IPs    []struct{ Address, Gateway, Version string }
			Routes []struct{ Dst, Gw string }
		}
		if err := json.Unmarshal(raw, &res); err != nil || len(res.IPs) != 2 || len(res.Routes) != 2 {
			t.Fatalf("%s: %s (%v)", version, raw, err)
		}
		if res.IPs[0].Address != a.Address || res.IPs[1].Address != a.Address6 || res.IPs[1].Gateway != a.Gateway6 || res.Routes[1].Dst != "::/0" || res.Routes[1].Gw != a.Gateway6 {
			t.Errorf("%s: %s", version, raw)
		}
		if wantV := map[string]string{"1.0.0": "", "0.3.1": "6"}[version]; res.IPs[1].Version != wantV {
			t.Errorf("%s: the IPv6 address's version %q, want %q", version, res.IPs[1].Version, wantV)
		}
	}
}
