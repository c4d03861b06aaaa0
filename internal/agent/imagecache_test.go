package agent

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/poll"
	"github.com/eci-dev/eci/internal/runtime"
	"github.com/eci-dev/eci/internal/server/servertest"
	"github.com/eci-dev/eci/internal/testbed"
)

// An image cache on containerd: the agent pulls a tenant's private image
// with the cache's credential and reports it, and the cache is Ready; a
// group of that tenant runs it as present, matching the cache; another
// tenant's group, without the credential, does not run the host's copy
// (its pull is refused); when the cache goes, the agent removes the image
// once no container is made of it.
func TestImageCacheOnContainerd(t *testing.T) {
	bed, srv, rt := containerdBed(t)
	ctx := context.Background()

	// A private registry (basic auth) on loopback, which the operator
	// configured (plain HTTP) and allowed.
	host := localRegistry(t, bed, basicAuth("puller", "s3cret", registry.New(registry.Logger(log.New(io.Discard, "", 0)))))
	img, err := testbed.BusyboxImage(testbed.ImageConfig{Cmd: []string{"sh"}, Env: []string{"MADE_FOR=image-cache-test"}}) // its own id: nobody pulled it in public
	if err != nil {
		t.Fatal(err)
	}
	image := host + "/private/app:v1"
	ref, err := name.ParseReference(image, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "puller", Password: "s3cret"})); err != nil {
		t.Fatal(err)
	}
	startAgentWith(t, srv, rt, bed, "", func(c *Config) {
		c.ImageCacheInterval = time.Second
		c.AllowedLocalRegistries = append(c.AllowedLocalRegistries, host)
	})

	acme, umbrella := srv.TenantClient(t, "acme"), srv.TenantClient(t, "umbrella")
	ic, err := acme.CreateImageCache(ctx, &apiv1.ImageCache{Metadata: apiv1.ObjectMeta{Name: "app"}, Spec: apiv1.ImageCacheSpec{
		Images:                   []string{image},
		ImageRegistryCredentials: []apiv1.RegistryCredential{{Server: host, Username: "puller", Password: "s3cret"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 60*time.Second, "the cache Ready", func() error {
		got, err := acme.GetImageCache(ctx, ic.Metadata.ID)
		if err != nil {
			return err
		}
		if got.Status.Phase != apiv1.ImageCacheReady || got.Status.SizeBytes == 0 {
			return fmt.Errorf("status %+v", got.Status)
		}
		return nil
	})
	if st, err := rt.ImageStatus(ctx, &runtimeapi.ImageSpec{Image: image}, false); err != nil || st.GetImage() == nil {
		t.Fatalf("containerd has no %s after the cache is Ready (%v)", image, err)
	}

	group := func(c *client.Client, name string) string {
		t.Helper()
		g := quickStop(&apiv1.ContainerGroup{Metadata: apiv1.ObjectMeta{Name: name}, Spec: apiv1.ContainerGroupSpec{
			Containers: []apiv1.Container{{Name: "main", Image: image, Command: []string{"sleep", "3600"}}}}})
		out, _, err := c.CreateGroup(ctx, g)
		if err != nil {
			t.Fatal(err)
		}
		return out.Metadata.ID
	}
	// Another tenant, without the credential: its pull is refused, the
	// host's copy notwithstanding.
	theirs := group(umbrella, "theirs")
	poll.Eventually(t, 30*time.Second, "umbrella's group refused its pull", func() error {
		g, err := srv.Admin.GetGroup(ctx, theirs)
		if err != nil {
			return err
		}
		if len(g.Status.Containers) == 1 && g.Status.Containers[0].State.Waiting != nil {
			if w := g.Status.Containers[0].State.Waiting; w.Reason == "ErrImagePull" || w.Reason == "ImagePullBackOff" {
				return nil
			}
		}
		if g.Status.State == apiv1.StateRunning {
			t.Fatalf("another tenant's group runs the private image without a credential: %+v", g.Status)
		}
		return fmt.Errorf("state %s %+v", g.Status.State, g.Status.Containers)
	})
	// The cache's tenant runs it as present, matching the cache.
	mine := group(acme, "mine")
	running := srv.WaitGroup(t, mine, "Running", inState(apiv1.StateRunning))
	if running.Status.MatchedImageCache != ic.Metadata.ID {
		t.Fatalf("the group matched %q, want %s", running.Status.MatchedImageCache, ic.Metadata.ID)
	}
	evs, err := srv.Admin.GroupEvents(ctx, mine)
	if err != nil {
		t.Fatal(err)
	}
	present, hit := false, false
	for _, ev := range evs {
		present = present || (ev.Reason == "Pulled" && ev.Message == fmt.Sprintf("Container image %q already present on machine", image))
		hit = hit || ev.Reason == "SuccessfulHitImageCache"
	}
	if !present || !hit {
		t.Fatalf("events %+v: want the image already present and SuccessfulHitImageCache", evs)
	}

	// The cache goes: its image stays while a container is made of it, and
	// goes after.
	if err := acme.DeleteImageCache(ctx, ic.Metadata.ID); err != nil {
		t.Fatal(err)
	}
	poll.Consistently(t, 3*time.Second, "the image kept while a container uses it", func() error {
		if st, err := rt.ImageStatus(ctx, &runtimeapi.ImageSpec{Image: image}, false); err != nil || st.GetImage() == nil {
			return fmt.Errorf("removed under a running group (%v)", err)
		}
		return nil
	})
	for _, id := range []string{mine, theirs} {
		srv.DeleteGroup(t, id, 30*time.Second, "deleted")
	}
	poll.Eventually(t, 30*time.Second, "the image removed", func() error {
		if st, err := rt.ImageStatus(ctx, &runtimeapi.ImageSpec{Image: image}, false); err != nil || st.GetImage() != nil {
			return fmt.Errorf("still there (%v)", err)
		}
		return nil
	})
}

// localRegistry serves h on loopback as a registry the operator configured
// in containerd's hosts directory (plain HTTP); the agent must allow it
// (AllowedLocalRegistries). It returns its host:port.
func localRegistry(t testing.TB, bed *testbed.Bed, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	host := ln.Addr().String()
	hostsDir := filepath.Join(bed.Containerd.CertsDir, host)
	if err := os.MkdirAll(hostsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	toml := fmt.Sprintf("server = \"http://%s\"\n\n[host.\"http://%s\"]\n  capabilities = [\"pull\", \"resolve\"]\n", host, host)
	if err := os.WriteFile(filepath.Join(hostsDir, "hosts.toml"), []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	return host
}

// Past the host's ImageCacheBytes the least recently used cache is not
// kept: its image goes, and the cache says why on that host.
func TestImageCacheBudget(t *testing.T) {
	srv := servertest.Start(t)
	srv.VSwitch(t, "vsw-a", "zone-a", "198.19.128.0/24")
	rt := runtime.NewFake(netip.MustParseAddr("198.19.200.2"))
	res := apiv1.Resources{MilliCPU: 8000, MemoryMiB: 16384, Pods: 20}
	runAgent(t, Config{
		Client: srv.HostClient(t, "h1"), Runtime: rt, LogDir: t.TempDir(), StateDir: t.TempDir(), NoCgroups: true,
		Host:           apiv1.Host{Metadata: apiv1.ObjectMeta{Name: "h1"}, Spec: apiv1.HostSpec{Zone: "zone-a", Capacity: res, Allocatable: res}},
		ResyncInterval: 500 * time.Millisecond, AllowedLocalRegistries: []string{"docker.io"},
		ImageCacheInterval: 200 * time.Millisecond, ImageCacheBytes: 3 << 19, // 1.5 MiB: one of the fake's 1 MiB images
	})
	ctx := context.Background()
	mk := func(name, image string) string {
		t.Helper()
		ic, err := srv.Admin.CreateImageCache(ctx, &apiv1.ImageCache{Metadata: apiv1.ObjectMeta{Name: name}, Spec: apiv1.ImageCacheSpec{Images: []string{image}}})
		if err != nil {
			t.Fatal(err)
		}
		return ic.Metadata.ID
	}
	old := mk("old", "docker.io/library/old:1")
	time.Sleep(10 * time.Millisecond) // (the newer one is made later)
	newer := mk("newer", "docker.io/library/newer:1")
	poll.Eventually(t, 30*time.Second, "the older cache not kept, the newer Ready", func() error {
		o, err := srv.Admin.GetImageCache(ctx, old)
		if err != nil {
			return err
		}
		n, err := srv.Admin.GetImageCache(ctx, newer)
		if err != nil {
			return err
		}
		if o.Status.Phase != apiv1.ImageCacheFailed || !strings.Contains(o.Status.Message, "not kept on this host") || n.Status.Phase != apiv1.ImageCacheReady {
			return fmt.Errorf("old %s %q, newer %s", o.Status.Phase, o.Status.Message, n.Status.Phase)
		}
		return nil
	})
	poll.Eventually(t, 10*time.Second, "the older cache's image removed", func() error {
		st, err := rt.ImageStatus(ctx, &runtimeapi.ImageSpec{Image: "docker.io/library/old:1"}, false)
		if err != nil || st.GetImage() != nil {
			return fmt.Errorf("still held (%v)", err)
		}
		return nil
	})
}
