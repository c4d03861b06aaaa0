package e2e

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/eci-dev/eci/internal/poll"
)

// ClusterIP Services from an instance, as from a pod on a kubelet node with
// kube-proxy: spread over the ready endpoints through a named targetPort,
// a pod that goes leaves the Service, a Service with no endpoints refuses
// at once, and kubernetes.default reaches the apiserver. The client finds
// the addresses in its Service variables and writes what it got to its log,
// a line per try.
func testClusterIP(t *testing.T, c *cluster, ns string) {
	ctx := context.Background()
	busybox := c.bed.Registry.Busybox
	mk := func(name string, selector map[string]string) {
		if _, err := c.kube.CoreV1().Services(ns).Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.ServiceSpec{
			Selector: selector,
			Ports:    []corev1.ServicePort{{Name: "web", Port: 80, TargetPort: intstr.FromString("http")}},
		}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.kube.CoreV1().Services(ns).Delete(context.Background(), name, metav1.DeleteOptions{}) })
	}
	mk("svc-web", map[string]string{"app": "svc-web"})
	mk("svc-nothing", map[string]string{"app": "none"})
	for _, name := range []string{"svc-web-1", "svc-web-2"} {
		c.createPod(t, ns, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "svc-web"}}, Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "web", Image: busybox,
				Command: []string{"sh", "-c", "mkdir -p /srv && echo " + name + " > /srv/index.html && exec httpd -f -p 8080 -h /srv"},
				Ports:   []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}}}})
	}
	for _, name := range []string{"svc-web-1", "svc-web-2"} {
		c.waitPod(t, ns, name, "Running", 90*time.Second, running)
	}
	// (This busybox's wget crashes with -T; nc's -w bounds the apiserver's.)
	const try = `while :; do
  echo "web $(wget -q -O- http://$SVC_WEB_SERVICE_HOST/ 2>&1 | tr '\n' ' ')"
  s=$(cut -d' ' -f1 /proc/uptime); out=$(wget -q -O- http://$SVC_NOTHING_SERVICE_HOST/ 2>&1 | tr '\n' ' '); echo "nothing $s $(cut -d' ' -f1 /proc/uptime) $out"
  nc -w 3 $KUBERNETES_SERVICE_HOST $KUBERNETES_SERVICE_PORT </dev/null && echo "apiserver reached"
  sleep 0.3
done`
	c.createPod(t, ns, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "svc-client"}, Spec: corev1.PodSpec{
		Containers: []corev1.Container{{Name: "main", Image: busybox, Command: []string{"sh", "-c", try}}}}})
	defer func() {
		for _, name := range []string{"svc-web-1", "svc-web-2", "svc-client"} {
			_ = c.kube.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{})
		}
	}()
	c.waitPod(t, ns, "svc-client", "Running", 90*time.Second, running)
	lines := func(tail int64) ([]string, error) {
		raw, err := c.kube.CoreV1().Pods(ns).GetLogs("svc-client", &corev1.PodLogOptions{TailLines: &tail}).DoRaw(ctx)
		return strings.Split(strings.TrimSpace(string(raw)), "\n"), err
	}
	slowest := 0.0
	poll.Eventually(t, 60*time.Second, "both endpoints, the refusal and the apiserver in the client's log", func() error {
		got, err := lines(200)
		if err != nil {
			return err
		}
		log := strings.Join(got, "\n")
		for _, want := range []string{"web svc-web-1", "web svc-web-2", "apiserver reached"} {
			if !strings.Contains(log, want) {
				return fmt.Errorf("no %q in\n%s", want, log)
			}
		}
		for _, l := range got {
			// A bad answer fails the test at once: waiting on could let it
			// scroll out of the tail.
			// At once: a connection that got no answer would try again
			// for minutes; 3 s leave room for a loaded machine's
			// process starts.
			if f := strings.Fields(l); len(f) >= 3 && f[0] == "nothing" {
				from, _ := strconv.ParseFloat(f[1], 64)
				to, _ := strconv.ParseFloat(f[2], 64)
				if !strings.Contains(l, "refused") || to-from > 3 {
					t.Fatalf("a Service without endpoints: %q (%.2f s); want refused at once", l, to-from)
				}
				slowest = max(slowest, to-from)
			}
		}
		return nil
	})

	t.Logf("a Service without endpoints was refused within %.2f s (the try's own process starts included)", slowest)
	if err := c.kube.CoreV1().Pods(ns).Delete(ctx, "svc-web-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 60*time.Second, "svc-web-1 gone from the Service", func() error {
		got, err := lines(30)
		if err != nil {
			return err
		}
		n := 0
		for _, l := range got {
			if strings.HasPrefix(l, "web ") {
				if strings.TrimSpace(l) != "web svc-web-2" {
					return fmt.Errorf("the last tries: %q", got)
				}
				n++
			}
		}
		if n < 5 {
			return fmt.Errorf("only %d tries in %q", n, got)
		}
		return nil
	})
}
