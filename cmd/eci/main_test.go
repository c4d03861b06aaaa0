package main

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"

	"github.com/eci-dev/eci/internal/version"
)

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCommand()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

func TestVersion(t *testing.T) {
	out, err := run(t, "version")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "eci "+version.Version+" (commit ") {
		t.Fatalf("version printed %q", out)
	}
	out, err = run(t, "version", "--json")
	if err != nil || !strings.Contains(out, `"version":"`+version.Version+`"`) {
		t.Fatalf("version --json printed %q (%v)", out, err)
	}
}

// Every role's --help says what it does.
func TestRolesHelp(t *testing.T) {
	roles := map[string][]string{
		"server": {"etcd", "placement", "IPAM"},
		"agent":  {"CRI", "containerd", "CNI"},
		"vnode":  {"virtual-kubelet", "eci-profile", "10250"},
		"up":     {"serverless"},
	}
	for role, words := range roles {
		out, err := run(t, role, "--help")
		if err != nil {
			t.Fatalf("%s --help: %v", role, err)
		}
		for _, w := range words {
			if !strings.Contains(out, w) {
				t.Errorf("%s --help does not mention %q", role, w)
			}
		}
	}
}

func TestServerFlagsAreChecked(t *testing.T) {
	for args, says := range map[string]string{
		"server --data-dir=": "--data-dir is required",
		"server --data-dir=/tmp/x --placement-policy=random": "allowed: spread, binpack",
		"server --data-dir=/tmp/x --listen=nowhere":          "want host:port",
		"vnode --kubeconfig=/nonexistent":                    "--kubeconfig",
	} {
		_, err := run(t, strings.Fields(args)...)
		if err == nil || !strings.Contains(err.Error(), says) {
			t.Errorf("eci %s: want an error saying %q, got %v", args, says, err)
		}
	}
}

func TestBadLogFlagNamesTheFlag(t *testing.T) {
	_, err := run(t, "--log-level", "loud", "version")
	if err == nil || !strings.Contains(err.Error(), "--log-level") || !strings.Contains(err.Error(), "debug, info, warn, error") {
		t.Fatalf("want an error naming --log-level and its allowed values, got %v", err)
	}
}

func TestClientVerbsListed(t *testing.T) {
	out, err := run(t, "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"run", "ps", "describe", "logs", "exec", "rm", "events", "hosts", "vswitches", "token", "bill", "server", "agent", "vnode", "up", "version"} {
		if !strings.Contains(out, "\n  "+v+" ") {
			t.Errorf("eci --help does not list %q", v)
		}
	}
}

// The product binary links neither the test bed nor the testing package:
// the bed is hack/devbed's (eci-devbed).
func TestBinaryCarriesNoTestBed(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool on PATH")
	}
	out, err := exec.Command(gobin, "list", "-deps", "github.com/eci-dev/eci/cmd/eci").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep == "testing" || strings.HasSuffix(dep, "/internal/testbed") || strings.Contains(dep, "/internal/testbed/") {
			t.Errorf("eci links %s", dep)
		}
	}
}
