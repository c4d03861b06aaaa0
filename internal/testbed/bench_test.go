package testbed

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// benchSamples is how many pods each benchmark iteration starts.
const benchSamples = 20

// BenchmarkBedStart: seconds from nothing to a ready bed with the control plane,
// containerd, the registry and a Ready kubelet node.
func BenchmarkBedStart(b *testing.B) {
	var total time.Duration
	for i := 0; i < b.N; i++ {
		start := time.Now()
		bed, err := Start(context.Background(), Options{Kube: true, Containerd: true, Kubelet: true})
		if err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
		if err := bed.Stop(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s/bed")
}

// BenchmarkCRIPodStart is the floor the eci agent is measured against: a pod
// sandbox plus one busybox container (image already pulled) through CRI on the
// bed's containerd, sandbox + create + start, sequentially.
func BenchmarkCRIPodStart(b *testing.B) {
	bed := New(b, Options{Containerd: true})
	ctx := context.Background()
	c := bed.Containerd
	img := &runtimeapi.ImageSpec{Image: bed.Registry.Busybox}
	if _, err := c.Images.PullImage(ctx, img, nil, nil); err != nil {
		b.Fatal(err)
	}
	var sandbox, container, total []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := 0; j < benchSamples; j++ {
			name := fmt.Sprintf("bench-%d-%d", i, j)
			cfg := &runtimeapi.PodSandboxConfig{
				Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "bench", Uid: name},
				LogDirectory: c.LogDir + "/" + name,
				Linux:        &runtimeapi.LinuxPodSandboxConfig{CgroupParent: bed.CgroupParent + "/" + name},
			}
			t0 := time.Now()
			podID, err := c.Runtime.RunPodSandbox(ctx, cfg, "")
			if err != nil {
				b.Fatal(err)
			}
			t1 := time.Now()
			ctrID, err := c.Runtime.CreateContainer(ctx, podID, &runtimeapi.ContainerConfig{
				Metadata: &runtimeapi.ContainerMetadata{Name: "main"}, Image: img,
				Command: []string{"sleep", "3600"}, LogPath: "main.log",
			}, cfg)
			if err != nil {
				b.Fatal(err)
			}
			if err := c.Runtime.StartContainer(ctx, ctrID); err != nil {
				b.Fatal(err)
			}
			t2 := time.Now()
			sandbox, container, total = append(sandbox, t1.Sub(t0)), append(container, t2.Sub(t1)), append(total, t2.Sub(t0))
			b.StopTimer()
			if err := c.Runtime.StopPodSandbox(ctx, podID); err != nil {
				b.Fatal(err)
			}
			if err := c.Runtime.RemovePodSandbox(ctx, podID); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	}
	b.StopTimer()
	reportQuantiles(b, "sandbox", sandbox)
	reportQuantiles(b, "container", container)
	reportQuantiles(b, "pod", total)
}

// BenchmarkKubeletPodStart is the baseline a virtual node is compared with: a
// pod created in the apiserver until the real kubelet reports it Running
// (scheduler, kubelet, containerd; image already on the node).
func BenchmarkKubeletPodStart(b *testing.B) {
	bed := New(b, Options{Kube: true, Containerd: true, Kubelet: true})
	ctx := context.Background()
	cs := bed.Kube.Client
	if _, err := bed.Containerd.Images.PullImage(ctx, &runtimeapi.ImageSpec{Image: bed.Registry.Busybox}, nil, nil); err != nil {
		b.Fatal(err)
	}
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := 0; j < benchSamples/2; j++ {
			name := fmt.Sprintf("bench-%d-%d", i, j)
			pod := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: new(int64),
					Containers: []corev1.Container{{Name: "main", Image: bed.Registry.Busybox, Command: []string{"sleep", "3600"},
						ImagePullPolicy: corev1.PullIfNotPresent}},
				},
			}
			start := time.Now()
			if _, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
				b.Fatal(err)
			}
			// Not poll.Eventually: its 50 ms interval would blur the latency measured.
			deadline := start.Add(time.Minute)
			for {
				p, err := cs.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
				if err != nil {
					b.Fatal(err)
				}
				if p.Status.Phase == corev1.PodRunning {
					break
				}
				if time.Now().After(deadline) {
					b.Fatalf("pod %s not Running after a minute: %s", name, p.Status.Phase)
				}
				time.Sleep(10 * time.Millisecond)
			}
			lat = append(lat, time.Since(start))
			b.StopTimer()
			if err := cs.CoreV1().Pods("default").Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	}
	b.StopTimer()
	reportQuantiles(b, "pod-running", lat)
}

func reportQuantiles(b *testing.B, name string, d []time.Duration) {
	if len(d) == 0 {
		return
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	q := func(p float64) float64 { return float64(d[int(p*float64(len(d)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.5), name+"-p50-ms")
	b.ReportMetric(q(0.95), name+"-p95-ms")
}
