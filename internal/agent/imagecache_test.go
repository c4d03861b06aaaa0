package agent

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
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
	bed := testbed.New(t, testbed.Options{Containerd: true})
	srv := servertest.Start(t)
	srv.VSwitch(t, "vsw-a", "zone-a", bed.Network.VSwitchCIDR.String())
	rt, err := runtime.NewCRI(bed.Containerd.Endpoint, quiet())
	if err != nil {
		t.Fatal(err)
	}
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
