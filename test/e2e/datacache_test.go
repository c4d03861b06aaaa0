package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/agent"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/poll"
	"github.com/eci-dev/eci/internal/vnode"
)

// A data cache of the vnode's tenant, served by the test over HTTP: pods
// with k8s.aliyun.com/eci-data-cache-bucket mount it as their hostPath
// volume, read-only; the host fetches it once for the cache's fetch-ahead
// and all the pods together; a path no cache has fails the pod, naming
// the volume; a deleted cache's copy leaves the host once no pod mounts
// it.
func TestDataCaches(t *testing.T) {
	ctx := context.Background()
	weights := strings.Repeat("w", 3<<20)
	archive := dataArchive(t, map[string]string{"model/weights.bin": weights, "model/config.json": `{"layers": 2}`})
	var hits atomic.Int32
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		time.Sleep(2 * time.Second) // (the pods arrive while it is fetched)
		_, _ = w.Write(archive)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	var stateDir string
	c := start(t, func(cfg *agent.Config) {
		cfg.ImageCacheInterval, cfg.ImageCachePruneGrace = time.Second, 2*time.Second
		// The agent fetches only from hosts the operator allowed on its
		// own addresses: this test's server is on loopback.
		cfg.AllowedLocalDataHosts = []string{ln.Addr().String()}
		stateDir = cfg.StateDir
	})

	dc, err := c.eci.CreateDataCache(ctx, &apiv1.DataCache{Metadata: apiv1.ObjectMeta{Name: "model"}, Spec: apiv1.DataCacheSpec{
		Bucket: "models", Path: "/models/m1",
		DataSource: apiv1.DataCacheSource{Type: apiv1.DataSourceURL, Options: map[string]string{"url": "http://" + ln.Addr().String() + "/m1.tar.gz?sig=x"}}}})
	if err != nil {
		t.Fatal(err)
	}
	ns := "default"
	pod := func(name, path string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{vnode.AnnDataCacheBucket: "models"}}, Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "main", Image: c.bed.Registry.Busybox, Command: []string{"sh", "-c",
				"wc -c < /data/model/weights.bin; cat /data/model/config.json; echo; (echo x > /data/new) 2>/dev/null && echo WRITABLE || echo READONLY; sleep 3600"},
				VolumeMounts: []corev1.VolumeMount{{Name: "model", MountPath: "/data"}}}},
			Volumes: []corev1.Volume{{Name: "model", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: path}}}}}}
	}
	for i := range 3 {
		c.createPod(t, ns, pod(fmt.Sprintf("reader-%d", i), "/models/m1"))
	}
	for i := range 3 {
		name := fmt.Sprintf("reader-%d", i)
		c.waitPod(t, ns, name, "Running", 120*time.Second, running)
		poll.Eventually(t, 30*time.Second, name+" reads the data, read-only", func() error {
			raw, err := c.kube.CoreV1().Pods(ns).GetLogs(name, &corev1.PodLogOptions{}).Do(ctx).Raw()
			if err != nil {
				return err
			}
			if want := fmt.Sprintf("%d\n{\"layers\": 2}\nREADONLY\n", len(weights)); string(raw) != want {
				return fmt.Errorf("logs %q, want %q", raw, want)
			}
			return nil
		})
	}
	if n := hits.Load(); n != 1 {
		t.Fatalf("the data was fetched %d times for the host's fetch-ahead and 3 pods; want once", n)
	}
	poll.Eventually(t, 30*time.Second, "the cache Available", func() error {
		got, err := c.eci.GetDataCache(ctx, dc.Metadata.ID)
		if err != nil {
			return err
		}
		if got.Status.Phase != apiv1.DataCacheAvailable || got.Status.HostsReady != 1 || got.Status.SizeBytes < int64(len(weights)) {
			return fmt.Errorf("status %+v", got.Status)
		}
		return nil
	})

	// A path no cache of the tenant has: the pod fails, naming the volume.
	c.createPod(t, ns, pod("no-cache", "/models/other"))
	c.waitPod(t, ns, "no-cache", "Failed naming the data cache", 60*time.Second, func(p *corev1.Pod) error {
		if p.Status.Phase != corev1.PodFailed || !strings.Contains(p.Status.Message, "spec.volumes[0].dataCache") {
			return fmt.Errorf("phase %s: %s", p.Status.Phase, p.Status.Message)
		}
		return nil
	})

	// Deleted, and no pod mounting it: the host's copy goes.
	if err := c.eci.DeleteDataCache(ctx, dc.Metadata.ID); err != nil {
		t.Fatal(err)
	}
	copyDir := filepath.Join(stateDir, "datacaches", dc.Metadata.ID)
	time.Sleep(3 * time.Second)
	if _, err := os.Stat(copyDir); err != nil {
		t.Fatalf("the copy went while pods mount it: %v", err)
	}
	c.deletePods(t, ns, map[string]string{"reader-0": "", "reader-1": "", "reader-2": ""})
	poll.Eventually(t, 90*time.Second, "the host's copy removed", func() error {
		if _, err := os.Stat(copyDir); !os.IsNotExist(err) {
			return fmt.Errorf("%s: %v", copyDir, err)
		}
		return nil
	})
}

// dataArchive is a tar.gz of files.
func dataArchive(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// The cluster's DataCache objects (the chart's custom resource): the node
// keeps each as a data cache of its tenant and writes its status back
// (kubectl get datacache); a pod mounts it by bucket and path; a deleted
// object's cache goes.
func TestDataCacheObjects(t *testing.T) {
	ctx := context.Background()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("corpus v1\n")) })}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	c := start(t, func(cfg *agent.Config) {
		cfg.ImageCacheInterval = time.Second
		cfg.AllowedLocalDataHosts = []string{ln.Addr().String()}
	})
	if err := vnode.InstallDataCacheCRD(ctx, c.kube); err != nil {
		t.Fatal(err)
	}
	c.stopVNode()
	c.stopVNode = c.startVNodeAs(t, nodeName, "cluster-a", c.eci, func(cfg *vnode.Config) { cfg.ImageCaches = true })
	manifest := fmt.Sprintf(`apiVersion: eci.aliyun.com/v1alpha1
kind: DataCache
metadata: {name: corpus}
spec:
  bucket: data
  path: /corpus
  dataSource: {type: URL, options: {url: "http://%s/corpus.txt"}}
  retentionDays: 7
`, ln.Addr())
	if out, err := c.kubectlIn(strings.NewReader(manifest), "apply", "-f", "-"); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
	var id string
	poll.Eventually(t, 60*time.Second, "kubectl get datacache: Available on 1 of 1 hosts", func() error {
		out, err := c.kubectlIn(nil, "get", "datacache", "corpus", "-o", "jsonpath={.status.dataCacheId} {.status.phase} {.status.hostsReady}")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		f := strings.Fields(string(out))
		if len(f) != 3 || f[1] != "Available" || f[2] != "1/1" {
			return fmt.Errorf("status %q", out)
		}
		id = f[0]
		return nil
	})
	if dc, err := c.eci.GetDataCache(ctx, id); err != nil || dc.Spec.Bucket != "data" || dc.Spec.Path != "/corpus" || dc.Spec.RetentionDays != 7 {
		t.Fatalf("cache %s: %v %+v", id, err, dc)
	}
	if out, err := c.kubectlIn(nil, "get", "edc"); err != nil || !strings.Contains(string(out), "DATACACHEID") || !strings.Contains(string(out), id) {
		t.Fatalf("kubectl get edc: %v\n%s", err, out)
	}
	ns := "default"
	c.createPod(t, ns, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "corpus-reader", Annotations: map[string]string{vnode.AnnDataCacheBucket: "data"}}, Spec: corev1.PodSpec{
		Containers: []corev1.Container{{Name: "main", Image: c.bed.Registry.Busybox, Command: []string{"sh", "-c", "cat /in/corpus.txt; sleep 3600"},
			VolumeMounts: []corev1.VolumeMount{{Name: "in", MountPath: "/in"}}}},
		Volumes: []corev1.Volume{{Name: "in", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/corpus"}}}}}})
	c.waitPod(t, ns, "corpus-reader", "Running", 90*time.Second, running)
	poll.Eventually(t, 30*time.Second, "the pod reads the corpus", func() error {
		raw, err := c.kube.CoreV1().Pods(ns).GetLogs("corpus-reader", &corev1.PodLogOptions{}).Do(ctx).Raw()
		if err != nil || string(raw) != "corpus v1\n" {
			return fmt.Errorf("logs %q: %v", raw, err)
		}
		return nil
	})
	// A changed spec is refused by the apiserver (the data of a cache
	// never changes under the pods mounting it); the cache keeps serving.
	out, err := c.kubectlIn(strings.NewReader(strings.Replace(manifest, "corpus.txt", "corpus-v2.txt", 1)), "apply", "-f", "-")
	if err == nil || !strings.Contains(string(out), "does not change once made") {
		t.Fatalf("kubectl apply of a changed spec: %v\n%s", err, out)
	}
	if _, err := c.eci.GetDataCache(ctx, id); err != nil {
		t.Fatalf("the first cache went: %v", err)
	}
	if out, err := c.kubectlIn(nil, "delete", "datacache", "corpus"); err != nil {
		t.Fatalf("kubectl delete: %v\n%s", err, out)
	}
	poll.Eventually(t, 30*time.Second, "cache "+id+" gone", func() error {
		if _, err := c.eci.GetDataCache(ctx, id); !errdefs.IsNotFound(err) {
			return fmt.Errorf("still there: %v", err)
		}
		return nil
	})
}
