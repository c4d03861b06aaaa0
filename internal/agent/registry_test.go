package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/poll"
	"github.com/eci-dev/eci/internal/server/servertest"
	"github.com/eci-dev/eci/internal/testbed"
)

// Registries on containerd: a private registry over plain HTTP on a
// non-loopback address (so containerd must be told), with basic auth; the
// agent's docker.io mirror (the bed's registry); the operator's registry
// settings left alone.
func testRegistries(t *testing.T, bed *testbed.Bed, srv *servertest.Server) {
	ctx := context.Background()
	// The private registry listens on an address of the host that is not a
	// loopback one.
	addr := bed.Network.LocalAddr.String()
	if out, err := exec.Command("ip", "addr", "replace", addr+"/32", "dev", "lo").CombinedOutput(); err != nil {
		t.Fatalf("put %s on lo: %v: %s", addr, err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "addr", "del", addr+"/32", "dev", "lo").Run() })
	ln, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		t.Fatalf("listen on %s: %v", addr, err)
	}
	private := &http.Server{Handler: basicAuth("puller", "s3cret", registry.New(registry.Logger(log.New(io.Discard, "", 0))))}
	go func() { _ = private.Serve(ln) }()
	t.Cleanup(func() { _ = private.Close() })
	host := ln.Addr().String()
	copyImage(t, bed.Registry.Busybox, host+"/private/busybox:1.35", &authn.Basic{Username: "puller", Password: "s3cret"})
	copyImage(t, bed.Registry.Busybox, bed.Registry.Host+"/library/busybox:mirrored", nil)
	copyImage(t, bed.Registry.Busybox, bed.Registry.Host+"/busybox:not-pulled-yet", nil)

	group := func(name, image string, mutate func(*apiv1.ContainerGroupSpec)) string {
		g := &apiv1.ContainerGroup{Metadata: apiv1.ObjectMeta{Name: name}, Spec: apiv1.ContainerGroupSpec{
			Containers: []apiv1.Container{{Name: "main", Image: image, Command: []string{"sleep", "3600"}}}}}
		if mutate != nil {
			mutate(&g.Spec)
		}
		return createGroup(t, srv, g)
	}
	// A failed pull shows as ErrImagePull, then, as soon as anything looks
	// at the group during the back-off, as ImagePullBackOff: either will do
	// when reason is "pull".
	waitingFor := func(id, reason, text string) {
		t.Helper()
		var last apiv1.ContainerStateWaiting
		poll.Eventually(t, 30*time.Second, "container waiting with "+reason, func() error {
			g, err := srv.Admin.GetGroup(ctx, id)
			if err != nil {
				return err
			}
			if len(g.Status.Containers) == 1 && g.Status.Containers[0].State.Waiting != nil {
				last = *g.Status.Containers[0].State.Waiting
			}
			ok := last.Reason == reason || (reason == "pull" && (last.Reason == "ErrImagePull" || last.Reason == "ImagePullBackOff"))
			if !ok || !strings.Contains(last.Message, text) {
				return fmt.Errorf("waiting %s %q, want %s with %q", last.Reason, last.Message, reason, text)
			}
			return nil
		})
	}
	image := host + "/private/busybox:1.35"
	hostsFile := filepath.Join(bed.Containerd.CertsDir, host, "hosts.toml")

	t.Run("a plain-HTTP registry nobody declared can't be pulled; the retry says ImagePullBackOff", func(t *testing.T) {
		id := group("undeclared", image, nil)
		waitingFor(id, "ImagePullBackOff", "server gave HTTP response to HTTPS client")
		_, _ = srv.Admin.DeleteGroup(ctx, id, client.DeleteOptions{Force: true})
	})

	t.Run("plainHttpRegistries without the credential: unauthorized", func(t *testing.T) {
		id := group("no-credential", image, func(s *apiv1.ContainerGroupSpec) { s.PlainHTTPRegistries = []string{host} })
		waitingFor(id, "pull", "no basic auth credentials")
		_, _ = srv.Admin.DeleteGroup(ctx, id, client.DeleteOptions{Force: true})
	})

	t.Run("plainHttpRegistries and imageRegistryCredentials: the group runs", func(t *testing.T) {
		id := group("private", image, func(s *apiv1.ContainerGroupSpec) {
			s.PlainHTTPRegistries = []string{host}
			s.ImageRegistryCredentials = []apiv1.RegistryCredential{{Server: "http://" + host, Username: "puller", Password: "s3cret"}}
		})
		srv.WaitGroup(t, id, "Running", inState(apiv1.StateRunning))
		if data, err := os.Stat(hostsFile); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("the group's plain-HTTP setting outlived its pull: %s: %v %v", hostsFile, data, err)
		}

		// While it runs, other groups of the host pull from that registry over
		// verified TLS: its wish changed nothing of theirs. The same image,
		// present on the host but pulled over plain HTTP, is pulled again (a
		// copy anyone on the path could have served is nobody else's image).
		creds := func(s *apiv1.ContainerGroupSpec) {
			s.ImageRegistryCredentials = []apiv1.RegistryCredential{{Server: host, Username: "puller", Password: "s3cret"}}
		}
		copyImage(t, bed.Registry.Busybox, host+"/private/busybox:other", &authn.Basic{Username: "puller", Password: "s3cret"})
		for name, img := range map[string]string{"other-image": host + "/private/busybox:other", "same-image": image} {
			other := group(name, img, creds)
			waitingFor(other, "pull", "server gave HTTP response to HTTPS client")
			_, _ = srv.Admin.DeleteGroup(ctx, other, client.DeleteOptions{Force: true})
		}
		if _, err := srv.Admin.DeleteGroup(ctx, id, client.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("a registry on the host's loopback or link-local addresses is refused", func(t *testing.T) {
		local, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer local.Close()
		var dialed atomic.Int32
		go func() {
			for {
				c, err := local.Accept()
				if err != nil {
					return
				}
				dialed.Add(1)
				_ = c.Close()
			}
		}()
		images := map[string]string{"loopback": local.Addr().String() + "/x:1", "localhost": "localhost:5000/x:1", "metadata": "169.254.169.254/x:1"}
		if own := ownAddress(t, bed.Network.LocalAddr); own.IsValid() {
			images["host-address"] = netip.AddrPortFrom(own, 5000).String() + "/x:1"
		}
		for name, img := range images {
			id := group(name, img, func(s *apiv1.ContainerGroupSpec) { s.PlainHTTPRegistries = []string{strings.Split(img, "/")[0]} })
			waitingFor(id, "pull", "on this host's own or link-local addresses")
			_, _ = srv.Admin.DeleteGroup(ctx, id, client.DeleteOptions{Force: true})
		}
		if n := dialed.Load(); n != 0 {
			t.Fatalf("the runtime connected to a loopback service %d times for a group", n)
		}
	})

	t.Run("docker.io comes from the agent's mirror", func(t *testing.T) {
		id := group("mirrored", "docker.io/library/busybox:mirrored", nil)
		srv.WaitGroup(t, id, "Running", inState(apiv1.StateRunning))
		_, _ = srv.Admin.DeleteGroup(ctx, id, client.DeleteOptions{})
	})

	t.Run("a group can't change a registry the operator configured", func(t *testing.T) {
		// (The setting matters only when an image is pulled: this one isn't here yet.)
		id := group("meddler", bed.Registry.Host+"/busybox:not-pulled-yet", func(s *apiv1.ContainerGroupSpec) { s.InsecureRegistries = []string{bed.Registry.Host} })
		waitingFor(id, "pull", "configured by the host's operator")
		data, err := os.ReadFile(filepath.Join(bed.Containerd.CertsDir, bed.Registry.Host, "hosts.toml"))
		if err != nil || strings.Contains(string(data), "skip_verify") {
			t.Fatalf("the operator's hosts.toml changed: %q (%v)", data, err)
		}
		_, _ = srv.Admin.DeleteGroup(ctx, id, client.DeleteOptions{Force: true})
	})
}

// basicAuth lets through requests with user:password; others get the 401
// that makes a registry client retry with its credential.
func basicAuth(user, password string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != user || p != password {
			w.Header().Set("WWW-Authenticate", `Basic realm="eci-test"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// copyImage copies an image between plain-HTTP registries.
func copyImage(t *testing.T, from, to string, auth authn.Authenticator) {
	t.Helper()
	src, err := name.ParseReference(from, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(src)
	if err != nil {
		t.Fatal(err)
	}
	dst, err := name.ParseReference(to, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if auth == nil {
		auth = authn.Anonymous
	}
	if err := remote.Write(dst, img, remote.WithAuth(auth)); err != nil {
		t.Fatal(err)
	}
}

// ownAddress is a global IPv4 address of one of this host's interfaces other
// than skip (the zero Addr when there is none).
func ownAddress(t *testing.T, skip netip.Addr) netip.Addr {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		p, err := netip.ParsePrefix(a.String())
		if err == nil && p.Addr().Is4() && !p.Addr().IsLoopback() && !p.Addr().IsLinkLocalUnicast() && p.Addr() != skip {
			return p.Addr()
		}
	}
	return netip.Addr{}
}
