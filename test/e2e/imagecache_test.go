package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/agent"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/poll"
	"github.com/eci-dev/eci/internal/testbed"
	"github.com/eci-dev/eci/internal/vnode"
)

// An image cache of the vnode's tenant: the host pulls its image before
// any pod asks; a pod naming it (eci-imc-id) starts from the host's copy
// (Pulled: already present), has the cache written back
// (eci-matched-image-cache) and a SuccessfulHitImageCache Event; a pod
// with eci-auto-imc "false" matches none.
func TestImageCaches(t *testing.T) {
	c := start(t, func(cfg *agent.Config) { cfg.ImageCacheInterval = time.Second })
	ctx := context.Background()
	img, err := testbed.BusyboxImage(testbed.ImageConfig{Cmd: []string{"sh"}, Env: []string{"MADE_FOR=image-cache-e2e"}})
	if err != nil {
		t.Fatal(err)
	}
	image, err := c.bed.Registry.Push(ctx, "imc/app:v1", img)
	if err != nil {
		t.Fatal(err)
	}
	ic, err := c.eci.CreateImageCache(ctx, &apiv1.ImageCache{Metadata: apiv1.ObjectMeta{Name: "app"}, Spec: apiv1.ImageCacheSpec{Images: []string{image}}})
	if err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 60*time.Second, "the cache Ready", func() error {
		got, err := c.eci.GetImageCache(ctx, ic.Metadata.ID)
		if err != nil {
			return err
		}
		if got.Status.Phase != apiv1.ImageCacheReady {
			return fmt.Errorf("status %+v", got.Status)
		}
		return nil
	})

	ns := "default"
	pod := func(name string, ann map[string]string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: ann}, Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "main", Image: image, Command: []string{"sleep", "3600"}}}}}
	}
	c.createPod(t, ns, pod("hit", map[string]string{vnode.AnnIMCID: ic.Metadata.ID}))
	c.createPod(t, ns, pod("no-match", map[string]string{vnode.AnnAutoIMC: "false"}))
	hit := c.waitPod(t, ns, "hit", "Running with the cache written back", 90*time.Second, func(p *corev1.Pod) error {
		if err := running(p); err != nil {
			return err
		}
		if got := p.Annotations[vnode.AnnMatchedImageCache]; got != ic.Metadata.ID {
			return fmt.Errorf("%s: %q", vnode.AnnMatchedImageCache, got)
		}
		return nil
	})
	c.eventsSay(t, ns, hit, map[string]string{
		"SuccessfulHitImageCache": "Successfully hit image cache " + ic.Metadata.ID,
		"Pulled":                  fmt.Sprintf("Container image %q already present on machine", image),
	})
	other := c.waitPod(t, ns, "no-match", "Running", 90*time.Second, running)
	if got, ok := other.Annotations[vnode.AnnMatchedImageCache]; ok {
		t.Fatalf("eci-auto-imc false: the pod matched %q", got)
	}
}

// The cluster's ImageCache objects (the chart's custom resource): the node
// keeps each as a cache of its tenant and writes its status back (kubectl
// get imagecache); a changed spec makes a new cache and the old one goes;
// a deleted object's cache goes.
func TestImageCacheObjects(t *testing.T) {
	c := start(t, func(cfg *agent.Config) { cfg.ImageCacheInterval = time.Second })
	ctx := context.Background()
	if err := vnode.InstallImageCacheCRD(ctx, c.kube); err != nil {
		t.Fatal(err)
	}
	c.stopVNode()
	c.stopVNode = c.startVNodeAs(t, nodeName, "cluster-a", c.eci, func(cfg *vnode.Config) { cfg.ImageCaches = true })
	var images []string
	for _, tag := range []string{"one", "two"} {
		img, err := testbed.BusyboxImage(testbed.ImageConfig{Cmd: []string{"sh"}, Env: []string{"MADE_FOR=" + tag}})
		if err != nil {
			t.Fatal(err)
		}
		ref, err := c.bed.Registry.Push(ctx, "imc/"+tag+":v1", img)
		if err != nil {
			t.Fatal(err)
		}
		images = append(images, ref)
	}
	apply := func(images ...string) {
		t.Helper()
		manifest := fmt.Sprintf("apiVersion: eci.alibabacloud.com/v1\nkind: ImageCache\nmetadata: {name: app}\nspec: {images: [%s], retentionDays: 7}\n", strings.Join(images, ", "))
		if out, err := c.kubectlIn(strings.NewReader(manifest), "apply", "-f", "-"); err != nil {
			t.Fatalf("kubectl apply: %v\n%s", err, out)
		}
	}
	ready := func(n int) string {
		t.Helper()
		var id string
		poll.Eventually(t, 60*time.Second, fmt.Sprintf("kubectl get imagecache: Ready with %d images", n), func() error {
			out, err := c.kubectlIn(nil, "get", "imagecache", "app", "-o", "jsonpath={.status.imageCacheId} {.status.phase} {.status.hostsReady}")
			if err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			f := strings.Fields(string(out))
			if len(f) != 3 || f[1] != "Ready" || f[2] != "1/1" {
				return fmt.Errorf("status %q", out)
			}
			ic, err := c.eci.GetImageCache(ctx, f[0])
			if err != nil || len(ic.Spec.Images) != n || ic.Spec.RetentionDays != 7 {
				return fmt.Errorf("cache %s: %v %+v", f[0], err, ic)
			}
			id = f[0]
			return nil
		})
		return id
	}
	apply(images[0])
	first := ready(1)
	if out, err := c.kubectlIn(nil, "get", "imagecache"); err != nil || !strings.Contains(string(out), "CACHEID") || !strings.Contains(string(out), first) {
		t.Fatalf("kubectl get imagecache: %v\n%s", err, out)
	}
	apply(images...)
	second := ready(2)
	gone := func(id string) {
		t.Helper()
		poll.Eventually(t, 30*time.Second, "cache "+id+" gone", func() error {
			if _, err := c.eci.GetImageCache(ctx, id); !errdefs.IsNotFound(err) {
				return fmt.Errorf("still there (%v)", err)
			}
			return nil
		})
	}
	if second == first {
		t.Fatalf("a changed spec kept cache %s", first)
	}
	gone(first)
	if out, err := c.kubectlIn(nil, "delete", "imagecache", "app"); err != nil {
		t.Fatalf("kubectl delete: %v\n%s", err, out)
	}
	gone(second)
}
