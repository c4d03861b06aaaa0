package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport/spdy"
	utilexec "k8s.io/client-go/util/exec"

	"github.com/eci-dev/eci/internal/poll"
	"github.com/eci-dev/eci/internal/testbed"
)

// waitPod polls pod name until cond holds.
func (c *cluster) waitPod(t testing.TB, ns, name, what string, timeout time.Duration, cond func(*corev1.Pod) error) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	poll.Eventually(t, timeout, name+": "+what, func() error {
		p, err := c.kube.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		pod = p
		return cond(p)
	})
	return pod
}

func running(p *corev1.Pod) error {
	if p.Status.Phase != corev1.PodRunning {
		return fmt.Errorf("phase %s %v", p.Status.Phase, p.Status.ContainerStatuses)
	}
	return nil
}

func (c *cluster) createPod(t testing.TB, ns string, pod *corev1.Pod) {
	t.Helper()
	pod.Spec = onVNode(pod.Spec)
	if _, err := c.kube.CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestWorkloads(t *testing.T) {
	c := start(t)
	ctx := context.Background()
	ns := "default"
	busybox := c.bed.Registry.Busybox

	t.Run("a Job's pod Succeeds and the Job completes", func(t *testing.T) {
		job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "once"}, Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: onVNode(corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers:    []corev1.Container{{Name: "main", Image: busybox, Command: []string{"sh", "-c", "echo done"}}},
		})}}}
		if _, err := c.kube.BatchV1().Jobs(ns).Create(ctx, job, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		poll.Eventually(t, 60*time.Second, "the Job Complete", func() error {
			j, err := c.kube.BatchV1().Jobs(ns).Get(ctx, "once", metav1.GetOptions{})
			if err != nil {
				return err
			}
			for _, cond := range j.Status.Conditions {
				if cond.Type == batchv1.JobComplete && cond.Status == corev1.ConditionTrue {
					return nil
				}
			}
			return fmt.Errorf("succeeded %d, conditions %v", j.Status.Succeeded, j.Status.Conditions)
		})
	})

	t.Run("a crashing container shows CrashLoopBackOff with restarts", func(t *testing.T) {
		c.createPod(t, ns, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "crasher"}, Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "main", Image: busybox, Command: []string{"sh", "-c", "exit 2"}}}}})
		c.waitPod(t, ns, "crasher", "CrashLoopBackOff with restarts", 60*time.Second, func(p *corev1.Pod) error {
			if len(p.Status.ContainerStatuses) != 1 {
				return fmt.Errorf("statuses %v", p.Status.ContainerStatuses)
			}
			cs := p.Status.ContainerStatuses[0]
			if cs.RestartCount < 1 || cs.State.Waiting == nil || cs.State.Waiting.Reason != "CrashLoopBackOff" || cs.LastTerminationState.Terminated == nil || cs.LastTerminationState.Terminated.ExitCode != 2 {
				return fmt.Errorf("restarts %d state %+v last %+v", cs.RestartCount, cs.State, cs.LastTerminationState)
			}
			return nil
		})
		// Its Events, as a kubelet records them: from the node's kubelet,
		// on the container, in the kubelet's words, BackOff counted.
		poll.Eventually(t, 30*time.Second, "the crasher's Events", func() error {
			return podEventsLike(ctx, c, ns, "crasher", map[string]string{
				"Pulled":  `Container image "` + busybox + `" already present on machine|Successfully pulled image "` + busybox + `" in `,
				"Created": "Created container: main",
				"Started": "Started container main",
				"BackOff": "Back-off restarting failed container main in pod ",
			})
		})
	})

	t.Run("a changed image restarts the container with it", func(t *testing.T) {
		img, err := testbed.BusyboxImage(testbed.ImageConfig{Cmd: []string{"sh"}, Env: []string{"IMAGE=two"}})
		if err != nil {
			t.Fatal(err)
		}
		two, err := c.bed.Registry.Push(ctx, "busybox:two", img)
		if err != nil {
			t.Fatal(err)
		}
		c.createPod(t, ns, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "imaged"}, Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "main", Image: busybox, Command: []string{"sh", "-c", "echo image=${IMAGE:-one}; exec sleep 3600"}}}}})
		c.waitPod(t, ns, "imaged", "Running", 60*time.Second, running)
		patch := fmt.Sprintf(`{"spec":{"containers":[{"name":"main","image":%q}]}}`, two)
		if _, err := c.kube.CoreV1().Pods(ns).Patch(ctx, "imaged", types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		c.waitPod(t, ns, "imaged", "running the new image, restarted once", 60*time.Second, func(p *corev1.Pod) error {
			if len(p.Status.ContainerStatuses) != 1 {
				return fmt.Errorf("statuses %v", p.Status.ContainerStatuses)
			}
			cs := p.Status.ContainerStatuses[0]
			raw, err := c.kube.CoreV1().Pods(ns).GetLogs("imaged", &corev1.PodLogOptions{}).DoRaw(ctx)
			if cs.RestartCount != 1 || cs.State.Running == nil || err != nil || string(raw) != "image=two\n" {
				return fmt.Errorf("restarts %d, state %+v, log %q (%v)", cs.RestartCount, cs.State, raw, err)
			}
			return nil
		})
		poll.Eventually(t, 30*time.Second, "its Killing event", func() error {
			return podEventsLike(ctx, c, ns, "imaged", map[string]string{"Killing": "Container main definition changed, will be restarted"})
		})
	})

	// One web pod serves exec, port-forward and stats.
	c.createPod(t, ns, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: corev1.PodSpec{
		Containers: []corev1.Container{{Name: "web", Image: busybox,
			Command: []string{"sh", "-c", "mkdir -p /srv && echo forwarded > /srv/index.html && exec httpd -f -p 8080 -h /srv"}}}}})
	c.waitPod(t, ns, "web", "Running", 60*time.Second, running)

	t.Run("kubectl exec through the apiserver", func(t *testing.T) {
		req := c.kube.CoreV1().RESTClient().Post().Resource("pods").Namespace(ns).Name("web").SubResource("exec").
			VersionedParams(&corev1.PodExecOptions{Container: "web", Command: []string{"sh", "-c", "cat /srv/index.html; exit 3"}, Stdout: true, Stderr: true}, scheme.ParameterCodec)
		ex, err := remotecommand.NewSPDYExecutor(c.bed.Kube.Config, "POST", req.URL())
		if err != nil {
			t.Fatal(err)
		}
		var out, errOut bytes.Buffer
		err = ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &out, Stderr: &errOut})
		var exit utilexec.ExitError
		if !errors.As(err, &exit) || exit.ExitStatus() != 3 || out.String() != "forwarded\n" {
			t.Fatalf("exec: %q %q %v", out.String(), errOut.String(), err)
		}
	})

	t.Run("kubectl port-forward through the apiserver reaches the pod's port", func(t *testing.T) {
		req := c.kube.CoreV1().RESTClient().Post().Resource("pods").Namespace(ns).Name("web").SubResource("portforward")
		tr, upgrader, err := spdy.RoundTripperFor(c.bed.Kube.Config)
		if err != nil {
			t.Fatal(err)
		}
		stop, ready := make(chan struct{}), make(chan struct{})
		defer close(stop)
		pf, err := portforward.New(spdy.NewDialer(upgrader, &http.Client{Transport: tr}, "POST", req.URL()), []string{":8080"}, stop, ready, io.Discard, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		errc := make(chan error, 1)
		go func() { errc <- pf.ForwardPorts() }()
		select {
		case <-ready:
		case err := <-errc:
			t.Fatal(err)
		}
		ports, _ := pf.GetPorts()
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(fmt.Sprintf("http://127.0.0.1:%d/index.html", ports[0].Local))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.TrimSpace(string(body)) != "forwarded" {
			t.Fatalf("through the forward: %q", body)
		}
	})

	t.Run("the node's /stats/summary through the apiserver (kubectl top's source)", func(t *testing.T) {
		poll.Eventually(t, 20*time.Second, "stats of the running pod", func() error {
			raw, err := c.kube.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes/" + nodeName + "/proxy/stats/summary").DoRaw(ctx)
			if err != nil {
				return err
			}
			if !strings.Contains(string(raw), `"name":"web"`) || !strings.Contains(string(raw), "workingSetBytes") {
				return fmt.Errorf("summary %s", raw)
			}
			return nil
		})
	})

	t.Run("the node's /metrics/resource through the apiserver (metrics-server's source)", func(t *testing.T) {
		poll.Eventually(t, 20*time.Second, "resource metrics of the running pod", func() error {
			raw, err := c.kube.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes/" + nodeName + "/proxy/metrics/resource").DoRaw(ctx)
			if err != nil {
				return err
			}
			parser := expfmt.NewTextParser(model.UTF8Validation)
			fams, err := parser.TextToMetricFamilies(bytes.NewReader(raw))
			if err != nil {
				return fmt.Errorf("not Prometheus text: %w\n%s", err, raw)
			}
			for _, name := range []string{"node_cpu_usage_seconds_total", "node_memory_working_set_bytes", "pod_cpu_usage_seconds_total", "container_cpu_usage_seconds_total", "container_start_time_seconds", "scrape_error"} {
				if fams[name] == nil {
					return fmt.Errorf("no %s in\n%s", name, raw)
				}
			}
			for _, m := range fams["container_memory_working_set_bytes"].GetMetric() {
				labels := map[string]string{}
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				if labels["namespace"] == ns && labels["container"] == "web" && m.GetGauge().GetValue() > 0 {
					return nil
				}
			}
			return fmt.Errorf("no working set of container web in %s:\n%s", ns, raw)
		})
	})

	t.Run("the node's /healthz and /metrics through the apiserver", func(t *testing.T) {
		proxy := "/api/v1/nodes/" + nodeName + "/proxy/"
		raw, err := c.kube.CoreV1().RESTClient().Get().AbsPath(proxy + "healthz").DoRaw(ctx)
		if err != nil || string(raw) != "ok" {
			t.Fatalf("/healthz: %q, %v", raw, err)
		}
		raw, err = c.kube.CoreV1().RESTClient().Get().AbsPath(proxy + "metrics").DoRaw(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{`kubelet_node_name{node="` + nodeName + `"} 1`, "kubelet_running_pods ", `kubelet_running_containers{container_state="running"} `,
			"kubelet_pod_start_total_duration_seconds_count ", `kubelet_runtime_operations_duration_seconds_count{operation_type="create_container_group"} `,
			// The node's own status writes came back and were not compared
			// (podupdates.go): the apiserver stored the status it pushed.
			`eci_vnode_pod_update_events_total{result="echo"} `} {
			if !strings.Contains(string(raw), want) || strings.Contains(string(raw), want+"0\n") {
				t.Errorf("/metrics lacks %q with a value above 0", want)
			}
		}
	})

	t.Run("a configMap update reaches the mounted file", func(t *testing.T) {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "app"}, Data: map[string]string{"mode": "one"}}
		if _, err := c.kube.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		c.createPod(t, ns, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "reader"}, Spec: corev1.PodSpec{
			Volumes: []corev1.Volume{{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "app"}}}}},
			Containers: []corev1.Container{{Name: "main", Image: busybox, VolumeMounts: []corev1.VolumeMount{{Name: "cfg", MountPath: "/cfg"}},
				Command: []string{"sh", "-c", "while :; do echo mode=$(cat /cfg/mode); sleep 0.2; done"}}}}})
		c.waitPod(t, ns, "reader", "Running", 60*time.Second, running)
		logHas := func(want string) {
			poll.Eventually(t, 30*time.Second, "the log shows "+want, func() error {
				raw, err := c.kube.CoreV1().Pods(ns).GetLogs("reader", &corev1.PodLogOptions{}).Do(ctx).Raw()
				if err != nil || !strings.Contains(string(raw), want) {
					return fmt.Errorf("log %q (%v)", raw, err)
				}
				return nil
			})
		}
		logHas("mode=one")
		cm.Data["mode"] = "two"
		if _, err := c.kube.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		logHas("mode=two")
	})

	t.Run("a pod with a missing mandatory secret stays Pending and starts once the secret exists", func(t *testing.T) {
		c.createPod(t, ns, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "needs-secret"}, Spec: corev1.PodSpec{
			Volumes: []corev1.Volume{{Name: "s", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "later"}}}},
			Containers: []corev1.Container{{Name: "main", Image: busybox, VolumeMounts: []corev1.VolumeMount{{Name: "s", MountPath: "/s"}},
				Command: []string{"sh", "-c", "echo $(cat /s/password); sleep 3600"}}}}})
		c.waitPod(t, ns, "needs-secret", "Pending with CreateContainerConfigError", 30*time.Second, func(p *corev1.Pod) error {
			if p.Status.Phase != corev1.PodPending || len(p.Status.ContainerStatuses) != 1 || p.Status.ContainerStatuses[0].State.Waiting == nil ||
				p.Status.ContainerStatuses[0].State.Waiting.Reason != "CreateContainerConfigError" {
				return fmt.Errorf("phase %s %+v", p.Status.Phase, p.Status.ContainerStatuses)
			}
			return nil
		})
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "later"}, Data: map[string][]byte{"password": []byte("s3cret")}}
		if _, err := c.kube.CoreV1().Secrets(ns).Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		c.waitPod(t, ns, "needs-secret", "Running", 60*time.Second, running)
		poll.Eventually(t, 20*time.Second, "the secret's file in the container", func() error {
			raw, err := c.kube.CoreV1().Pods(ns).GetLogs("needs-secret", &corev1.PodLogOptions{}).Do(ctx).Raw()
			if err != nil || strings.TrimSpace(string(raw)) != "s3cret" {
				return fmt.Errorf("log %q (%v)", raw, err)
			}
			return nil
		})
	})

	t.Run("Service links in the env, and no machine resolver without cluster DNS", func(t *testing.T) { testServiceLinks(t, c, ns) })
	t.Run("ClusterIP Services and kubernetes.default from an instance", func(t *testing.T) { testClusterIP(t, c, ns) })
}

// podEventsLike checks that pod name has an Event of each reason whose
// message begins with the one given (or one of those between '|'), from the kubelet of the virtual node,
// on the container main, and that no reason is recorded as two Events
// (the recorder counts a series).
func podEventsLike(ctx context.Context, c *cluster, ns, name string, want map[string]string) error {
	evs, err := c.kube.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + name})
	if err != nil {
		return err
	}
	seen := map[string]int{}
	for _, ev := range evs.Items {
		prefixes, ok := want[ev.Reason]
		if !ok || !slices.ContainsFunc(strings.Split(prefixes, "|"), func(p string) bool { return strings.HasPrefix(ev.Message, p) }) {
			continue
		}
		if ev.Source.Component != "kubelet" || ev.Source.Host != nodeName || ev.InvolvedObject.FieldPath != "spec.containers{main}" {
			return fmt.Errorf("event %s %q from %+v on %q", ev.Reason, ev.Message, ev.Source, ev.InvolvedObject.FieldPath)
		}
		seen[ev.Reason]++
	}
	for reason := range want {
		if seen[reason] == 0 {
			return fmt.Errorf("no %s event (%d events)", reason, len(evs.Items))
		}
	}
	if seen["BackOff"] > 1 {
		return fmt.Errorf("%d BackOff events: one series each container, counted", seen["BackOff"])
	}
	return nil
}
