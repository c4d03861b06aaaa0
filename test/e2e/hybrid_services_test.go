package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/eci-dev/eci/internal/poll"
)

// In a hybrid cluster an instance reaches a Service whose endpoints are
// pods of the real kubelet node, and one whose endpoint is an instance, by
// ClusterIP. (Both networks are on one machine here: the route between a
// real node's pod network and the instances' across machines is #16's.)
func TestHybridServiceFromAnInstance(t *testing.T) {
	c, bed := hybrid(t, 4)
	ctx := context.Background()
	ns := "default"
	busybox := bed.Registry.Busybox
	web := func(name string) corev1.PodSpec {
		return corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: busybox,
			Command: []string{"sh", "-c", "mkdir -p /srv && echo " + name + " > /srv/index.html && exec httpd -f -p 8080 -h /srv"}}}}
	}
	real := web("on-the-real-node")
	real.NodeSelector = map[string]string{"kubernetes.io/hostname": bed.Kubelet.NodeName}
	if _, err := c.kube.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "real-web", Labels: map[string]string{"app": "real-web"}}, Spec: real}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.createPod(t, ns, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "eci-web", Labels: map[string]string{"app": "eci-web"}}, Spec: web("on-an-instance")})
	for _, name := range []string{"real-web", "eci-web"} {
		if _, err := c.kube.CoreV1().Services(ns).Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": name}, Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		c.waitPod(t, ns, name, "Running", 90*time.Second, running)
	}
	const try = `while :; do
  echo "real $(wget -q -O- http://$REAL_WEB_SERVICE_HOST/ 2>&1)"
  echo "eci $(wget -q -O- http://$ECI_WEB_SERVICE_HOST/ 2>&1)"
  sleep 0.5
done`
	c.createPod(t, ns, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "client"}, Spec: corev1.PodSpec{
		Containers: []corev1.Container{{Name: "main", Image: busybox, Command: []string{"sh", "-c", try}}}}})
	c.waitPod(t, ns, "client", "Running", 90*time.Second, running)
	poll.Eventually(t, 60*time.Second, "the instance answered through both Services", func() error {
		tail := int64(20)
		raw, err := c.kube.CoreV1().Pods(ns).GetLogs("client", &corev1.PodLogOptions{TailLines: &tail}).DoRaw(ctx)
		if err != nil {
			return err
		}
		log := string(raw)
		for _, want := range []string{"real on-the-real-node", "eci on-an-instance"} {
			if !strings.Contains(log, want) {
				return fmt.Errorf("no %q in\n%s", want, log)
			}
		}
		return nil
	})
}
