package e2e

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"

	"github.com/eci-dev/eci/internal/agent/agenttest"
	"github.com/eci-dev/eci/internal/poll"
	"github.com/eci-dev/eci/internal/profile"
	"github.com/eci-dev/eci/internal/server/servertest"
	"github.com/eci-dev/eci/internal/testbed"
	"github.com/eci-dev/eci/internal/vnode"
)

// hybrid is a cluster with one real node (the bed's kubelet, room for
// realPods pods) and the virtual node serving eci-profile. The instance
// host runs on a second bed's containerd: a kubelet kills every sandbox it
// did not create, so the two can't share one.
func hybrid(t *testing.T, realPods int32) (*cluster, *testbed.Bed) {
	t.Helper()
	real := testbed.New(t, testbed.Options{Kube: true, Containerd: true, Kubelet: true, KubeletMaxPods: realPods})
	host := testbed.New(t, testbed.Options{Containerd: true, SharedRegistry: real.Registry})
	srv := servertest.Start(t)
	agenttest.Start(t, srv, host, "host-1")
	c := &cluster{bed: real, srv: srv, eci: srv.TenantClient(t, "cluster-a"), kube: fastClient(t, real)}
	c.stopVNode = c.startVNodeAs(t, nodeName, "cluster-a", c.eci, withProfile(real))
	return c, real
}

func withProfile(bed *testbed.Bed) func(*vnode.Config) {
	return func(cfg *vnode.Config) {
		cfg.Profile = vnode.ProfileConfig{ListenAddr: net.JoinHostPort(bed.Network.NodeIP.String(), "0")}
	}
}

func TestProfile(t *testing.T) {
	c, bed := hybrid(t, 2)
	ctx := context.Background()
	busybox := bed.Registry.Busybox
	sleeper := corev1.PodSpec{TerminationGracePeriodSeconds: new(int64), Containers: []corev1.Container{{Name: "main", Image: busybox, Command: []string{"sleep", "3600"}}}}
	setProfile := func(t *testing.T, selectors string) {
		t.Helper()
		cms := c.kube.CoreV1().ConfigMaps(profile.ConfigMapNamespace)
		cm, err := cms.Get(ctx, profile.ConfigMapName, metav1.GetOptions{})
		if err != nil {
			cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: profile.ConfigMapName, Namespace: profile.ConfigMapNamespace}}
		}
		cm.Data = map[string]string{profile.KeySelectors: selectors}
		if cm.ResourceVersion == "" {
			_, err = cms.Create(ctx, cm, metav1.CreateOptions{})
		} else {
			_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	// dryRun creates pod in ns without storing it: what the webhook made of it.
	dryRun := func(t *testing.T, ns string, pod *corev1.Pod) *corev1.Pod {
		t.Helper()
		out, err := c.kube.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	namespace := func(t *testing.T, name string, labels map[string]string) {
		t.Helper()
		if _, err := c.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("the vnode keeps its webhook: failurePolicy Ignore, a short timeout, pod CREATE only, kube-system excluded", func(t *testing.T) {
		var hook admissionregistrationv1.MutatingWebhook
		poll.Eventually(t, 10*time.Second, "the MutatingWebhookConfiguration", func() error {
			mwc, err := c.kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "eci-profile."+nodeName, metav1.GetOptions{})
			if err != nil {
				return err
			}
			hook = mwc.Webhooks[0]
			return nil
		})
		r := hook.Rules[0]
		if *hook.FailurePolicy != admissionregistrationv1.Ignore || *hook.TimeoutSeconds > 5 || len(hook.ClientConfig.CABundle) == 0 ||
			len(r.Operations) != 1 || r.Operations[0] != admissionregistrationv1.Create || r.Resources[0] != "pods" ||
			!strings.Contains(fmt.Sprint(hook.NamespaceSelector.MatchExpressions), "kube-system") {
			t.Fatalf("webhook %+v", hook)
		}
	})

	t.Run("a pod in a namespace labelled alibabacloud.com/eci=true lands on the virtual node unchanged", func(t *testing.T) {
		namespace(t, "serverless", map[string]string{profile.LabelECI: "true"})
		if _, err := c.kube.CoreV1().Pods("serverless").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "plain"}, Spec: sleeper}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		p := c.waitPod(t, "serverless", "plain", "Running on the virtual node", 60*time.Second, func(p *corev1.Pod) error {
			if p.Spec.NodeName != nodeName || p.Status.Phase != corev1.PodRunning {
				return fmt.Errorf("node %q phase %s", p.Spec.NodeName, p.Status.Phase)
			}
			return nil
		})
		if p.Annotations[vnode.AnnInstanceID] == "" {
			t.Errorf("no instance id on the pod: %v", p.Annotations)
		}
	})

	t.Run("a selector's annotations appear, one already set is kept; an edit reaches the next pod; a broken edit keeps the old profile and says why", func(t *testing.T) {
		namespace(t, "apps", map[string]string{"team": "web"})
		setProfile(t, `[{"name":"web","namespaceSelector":{"matchLabels":{"team":"web"}},"objectSelector":{"matchExpressions":[{"key":"app","operator":"In","values":["web"]}]},
			"effect":{"annotations":{"owner":"profile","stage":"one"},"labels":{"tier":"front"}}}]`)
		pod := func() *corev1.Pod {
			return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "web-", Labels: map[string]string{"app": "web"}, Annotations: map[string]string{"owner": "me"}}, Spec: sleeper}
		}
		poll.Eventually(t, 10*time.Second, "the selector applies", func() error {
			p := dryRun(t, "apps", pod())
			if p.Annotations["stage"] != "one" {
				return fmt.Errorf("annotations %v", p.Annotations)
			}
			return nil
		})
		web := pod()
		web.GenerateName, web.Name = "", "web"
		if _, err := c.kube.CoreV1().Pods("apps").Create(ctx, web, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		p := c.waitPod(t, "apps", "web", "Running on the virtual node", 60*time.Second, func(p *corev1.Pod) error {
			if p.Spec.NodeName != nodeName || p.Status.Phase != corev1.PodRunning {
				return fmt.Errorf("node %q phase %s", p.Spec.NodeName, p.Status.Phase)
			}
			return nil
		})
		if p.Annotations["owner"] != "me" || p.Annotations["stage"] != "one" || p.Labels["tier"] != "front" || p.Annotations[profile.AnnSelector] != "web" {
			t.Errorf("annotations %v labels %v", p.Annotations, p.Labels)
		}

		edited := time.Now()
		setProfile(t, `[{"name":"web","objectSelector":{"matchLabels":{"app":"web"}},"effect":{"annotations":{"stage":"two"}}}]`)
		poll.Eventually(t, 10*time.Second, "the edit reaches the next pod", func() error {
			if p := dryRun(t, "apps", pod()); p.Annotations["stage"] != "two" {
				return fmt.Errorf("annotations %v", p.Annotations)
			}
			return nil
		})
		t.Logf("ConfigMap edit -> next pod mutated by it: %s", time.Since(edited).Round(time.Millisecond))

		setProfile(t, `[{"name":"web","objectSelector":{"matchLabels":{"app":"web"}},"effect":{"annotations":{"stage":"three"}},"policy":"sometimes"}]`)
		poll.Eventually(t, 10*time.Second, "an Event on the ConfigMap says what is wrong", func() error {
			evs, err := c.kube.CoreV1().Events(profile.ConfigMapNamespace).List(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("involvedObject.name", profile.ConfigMapName).String()})
			if err != nil {
				return err
			}
			for _, ev := range evs.Items {
				if ev.Reason == "InvalidProfile" && strings.Contains(ev.Message, "selectors[0] (web): policy") && strings.Contains(ev.Message, `"sometimes"`) {
					return nil
				}
			}
			return fmt.Errorf("%d events, none InvalidProfile naming the field", len(evs.Items))
		})
		if p := dryRun(t, "apps", pod()); p.Annotations["stage"] != "two" {
			t.Errorf("after a broken edit the last good profile applies: annotations %v", p.Annotations)
		}
	})

	t.Run("normalNodePrefer: a Deployment larger than the real node runs its first pods there and the overflow on the virtual node", func(t *testing.T) {
		setProfile(t, `[{"name":"burst","objectSelector":{"matchLabels":{"app":"burst"}},"policy":"normalNodePrefer","unschedulableSeconds":2}]`)
		namespace(t, "hybrid", nil)
		poll.Eventually(t, 10*time.Second, "the profile applies", func() error {
			p := dryRun(t, "hybrid", &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "probe", Labels: map[string]string{"app": "burst"}}, Spec: sleeper})
			if p.Annotations[profile.AnnOverflowAfter] != "2" || p.Spec.NodeSelector != nil {
				return fmt.Errorf("annotations %v", p.Annotations)
			}
			return nil
		})
		replicas := int32(4)
		labels := map[string]string{"app": "burst"}
		d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "burst"}, Spec: appsv1.DeploymentSpec{
			Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: sleeper},
		}}
		if _, err := c.kube.AppsV1().Deployments("hybrid").Create(ctx, d, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		placement := func() (onReal, onVirtual []corev1.Pod, err error) {
			list, err := c.kube.CoreV1().Pods("hybrid").List(ctx, metav1.ListOptions{LabelSelector: "app=burst"})
			if err != nil {
				return nil, nil, err
			}
			for _, p := range list.Items {
				if p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil {
					continue
				}
				switch p.Spec.NodeName {
				case bed.Kubelet.NodeName:
					onReal = append(onReal, p)
				case nodeName:
					onVirtual = append(onVirtual, p)
				}
			}
			return onReal, onVirtual, nil
		}
		var onReal []corev1.Pod
		poll.Eventually(t, 120*time.Second, "2 pods Running on the real node and 2 on the virtual node", func() error {
			r, v, err := placement()
			if err != nil {
				return err
			}
			if len(r) != 2 || len(v) != 2 {
				return fmt.Errorf("%d on the real node, %d on the virtual node", len(r), len(v))
			}
			onReal = r
			for _, p := range v {
				if p.Annotations[profile.AnnOverflowAfter] != "2" {
					return fmt.Errorf("pod %s on the virtual node without the overflow mark: %v", p.Name, p.Annotations)
				}
			}
			return nil
		})
		_, onVirtual, err := placement()
		if err != nil || len(onVirtual) == 0 {
			t.Fatalf("placement: %v", err)
		}
		podEvent(t, c, "hybrid", &onVirtual[0], "OverflowToVirtualNode", "normalNodePrefer")
		// Real capacity returns: the replacements of the real node's pods go
		// there again, not to the virtual node.
		for _, p := range onReal {
			if err := c.kube.CoreV1().Pods("hybrid").Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
				t.Fatal(err)
			}
		}
		poll.Eventually(t, 120*time.Second, "the replacements on the real node", func() error {
			r, v, err := placement()
			if err != nil {
				return err
			}
			for _, p := range r {
				if p.Name == onReal[0].Name || p.Name == onReal[1].Name {
					return fmt.Errorf("old pod %s still there", p.Name)
				}
			}
			if len(r) != 2 || len(v) != 2 {
				return fmt.Errorf("%d on the real node, %d on the virtual node", len(r), len(v))
			}
			return nil
		})
	})

	t.Run("with the vnode stopped, pods are still created (failurePolicy Ignore)", func(t *testing.T) {
		c.stopVNode()
		start := time.Now()
		p, err := c.kube.CoreV1().Pods("serverless").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "while-down"}, Spec: sleeper}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("pod creation with the webhook down: %v", err)
		}
		if p.Spec.NodeSelector != nil || len(p.Annotations) != 0 {
			t.Errorf("mutated by a stopped vnode? %v %v", p.Spec.NodeSelector, p.Annotations)
		}
		t.Logf("created unmutated in %s with the webhook down", time.Since(start).Round(time.Millisecond))
	})
}

// BenchmarkProfileReload: an edit of the eci-profile ConfigMap -> the next
// pod mutated by it (a dry-run create through the apiserver and the
// webhook), 20 edits.
func BenchmarkProfileReload(b *testing.B) {
	bed := testbed.New(b, testbed.Options{Kube: true})
	srv := servertest.Start(b)
	c := &cluster{bed: bed, srv: srv, eci: srv.TenantClient(b, "cluster-a"), kube: fastClient(b, bed)}
	c.startVNodeAs(b, nodeName, "cluster-a", c.eci, withProfile(bed))
	ctx := context.Background()
	cms := c.kube.CoreV1().ConfigMaps(profile.ConfigMapNamespace)
	cm, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: profile.ConfigMapName, Namespace: profile.ConfigMapNamespace}}, metav1.CreateOptions{})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := c.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "bench"}}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "p-", Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "busybox"}}}}
	for i := 0; i < b.N; i++ {
		var took []time.Duration
		for edit := 0; edit < 20; edit++ {
			want := fmt.Sprintf("edit-%d-%d", i, edit)
			cm.Data = map[string]string{profile.KeySelectors: `[{"name":"web","objectSelector":{"matchLabels":{"app":"web"}},"effect":{"annotations":{"edit":"` + want + `"}}}]`}
			start := time.Now()
			if cm, err = cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
				b.Fatal(err)
			}
			for {
				out, err := c.kube.CoreV1().Pods("bench").Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
				if err != nil {
					b.Fatal(err)
				}
				if out.Annotations["edit"] == want {
					break
				}
				if time.Since(start) > 30*time.Second {
					b.Fatalf("edit %s not applied after 30s", want)
				}
			}
			took = append(took, time.Since(start))
		}
		b.ReportMetric(ms(quantile(took, 0.5)), "edit-to-pod-p50-ms")
		b.ReportMetric(ms(quantile(took, 0.99)), "edit-to-pod-p99-ms")
	}
}
