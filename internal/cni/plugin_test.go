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
	sock := filepath.Join(t.TempDir(), "ipam.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("group") != "eci-1" {
			http.Error(w, "unknown group", http.StatusNotFound)
			return
		}
		_ = json.NewEncoder(w).Encode(Address{Address: "198.19.128.7/24", Gateway: "198.19.128.1"})
	})}
	go func() { _ = srv.Serve(l) }()
	defer func() { _ = srv.Close() }()

	conf := `{"cniVersion":"1.0.0","name":"eci","type":"bridge","ipam":{"type":"eci-ipam","socket":"` + sock + `"}}`
	call := func(cmd, args string) (string, int) {
		env := map[string]string{"CNI_COMMAND": cmd, "CNI_ARGS": args}
		var out bytes.Buffer
		code := Main(func(k string) string { return env[k] }, strings.NewReader(conf), &out)
		return out.String(), code
	}
	out, code := call("ADD", "IgnoreUnknown=1;K8S_POD_NAMESPACE=acme;K8S_POD_UID=eci-1")
	var res struct {
		CNIVersion string `json:"cniVersion"`
		IPs        []struct{ Address, Gateway string }
		Routes     []struct{ Dst, Gw string }
	}
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || res.CNIVersion != "1.0.0" || res.IPs[0].Address != "198.19.128.7/24" ||
		res.IPs[0].Gateway != "198.19.128.1" || res.Routes[0].Gw != "198.19.128.1" {
		t.Fatalf("ADD: exit %d, %s", code, out)
	}
	if out, code := call("ADD", "K8S_POD_UID=eci-2"); code != 1 || !strings.Contains(out, "unknown group") {
		t.Fatalf("ADD for a group the agent does not know: exit %d, %s", code, out)
	}
	if out, code := call("ADD", "K8S_POD_NAME=x"); code != 1 || !strings.Contains(out, "K8S_POD_UID") {
		t.Fatalf("ADD without the uid: exit %d, %s", code, out)
	}
	if _, code := call("DEL", "K8S_POD_UID=eci-1"); code != 0 {
		t.Fatal("DEL failed")
	}
	if out, code := call("VERSION", ""); code != 0 || !strings.Contains(out, `"1.0.0"`) {
		t.Fatalf("VERSION: %s", out)
	}
}
