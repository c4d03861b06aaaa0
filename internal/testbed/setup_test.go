package testbed

import (
	"context"
	"net"
	"strings"
	"testing"
)

// Bad setup gets an error that says what to run.
func TestSetupErrorsSayWhatToDo(t *testing.T) {
	cases := []struct {
		name  string
		env   map[string]string
		euid  int
		opts  Options
		wants []string
	}{
		{name: "not root", euid: 1000, opts: Options{Kube: true}, wants: []string{"needs root", "sudo make test"}},
		{name: "kube binaries missing", env: map[string]string{"KUBE_BIN_DIR": t.TempDir()}, opts: Options{Kube: true},
			wants: []string{"etcd is missing", "hack/build-kube.sh (make kube)"}},
		{name: "containerd missing", env: map[string]string{"CONTAINERD_BIN": "/nonexistent/containerd"}, opts: Options{Containerd: true},
			wants: []string{"CONTAINERD_BIN=/nonexistent/containerd", "hack/install-deps.sh (make deps)"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			err := checkMachine(c.opts, c.euid)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestRegistryPortTaken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = Start(context.Background(), Options{Registry: true, RegistryAddr: l.Addr().String()})
	if err == nil || !strings.Contains(err.Error(), "already in use") || !strings.Contains(err.Error(), l.Addr().String()) {
		t.Fatalf("want an error naming %s as already in use, got %v", l.Addr(), err)
	}
}
