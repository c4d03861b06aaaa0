package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/eci-dev/eci/internal/poll"
	"github.com/eci-dev/eci/internal/testbed"
)

// A container's environment and command line as a kubelet makes them, on
// the virtual node: the downward API's status.podIP, status.hostIP,
// metadata.uid, spec.nodeName and resourceFieldRef (limits without a limit:
// the instance's size) in env; $(VAR) expanded in env, command, args and
// subPathExpr, $$ escaping, undefined names kept; envFrom with a prefix;
// a secret's value taken as it is; the Services' variables; and command and
// args over an image's entrypoint and cmd by the kubelet's rules.
func TestPodEnvironment(t *testing.T) {
	c := start(t)
	ctx := context.Background()
	ns := "default"
	if _, err := c.kube.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "env-cfg"},
		Data: map[string]string{"MODE": "fast"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.kube.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "env-secret"},
		StringData: map[string]string{"token": "s3$(MODE)cr$$et"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	field := func(path string) *corev1.EnvVarSource {
		return &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}
	}
	script := `echo "args: $*"; env; ls -d /data/*; sleep 3600`
	c.createPod(t, ns, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "env-kubelet"}, Spec: corev1.PodSpec{
		Containers: []corev1.Container{{Name: "main", Image: c.bed.Registry.Busybox,
			Command: []string{"sh", "-c", script, "sh"},
			Args:    []string{"ip=$(POD_IP)", "$$(POD_IP)", "$(UNDEFINED)"},
			EnvFrom: []corev1.EnvFromSource{{Prefix: "CFG_", ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "env-cfg"}}}},
			Env: []corev1.EnvVar{
				{Name: "POD_IP", ValueFrom: field("status.podIP")},
				{Name: "HOST_IP", ValueFrom: field("status.hostIP")},
				{Name: "UID", ValueFrom: field("metadata.uid")},
				{Name: "NODE", ValueFrom: field("spec.nodeName")},
				{Name: "URL", Value: "http://$(POD_IP):8080/$(CFG_MODE)"},
				{Name: "LITERAL", Value: "$$(POD_IP)"},
				{Name: "TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "env-secret"}, Key: "token"}}},
				{Name: "MEM_MI", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}}},
				{Name: "CPU_M", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.cpu", Divisor: resource.MustParse("1m")}}},
			},
			VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data/$(POD_IP)", SubPathExpr: "logs/$(UID)"}, {Name: "data", MountPath: "/all"}},
		}},
		Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
	}})
	p := c.waitPod(t, ns, "env-kubelet", "Running", 90*time.Second, running)
	if p.Generation == 0 || p.Status.ObservedGeneration != p.Generation {
		t.Errorf("generation %d, status.observedGeneration %d: want them equal, as a 1.35 kubelet writes it", p.Generation, p.Status.ObservedGeneration)
	}
	k8s, err := c.kube.CoreV1().Services("default").Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	uid := string(p.UID)
	want := []string{
		"args: ip=" + p.Status.PodIP + " $(POD_IP) $(UNDEFINED)",
		"POD_IP=" + p.Status.PodIP,
		"HOST_IP=" + p.Status.HostIP,
		"UID=" + uid,
		"NODE=" + nodeName,
		"URL=http://" + p.Status.PodIP + ":8080/fast",
		"LITERAL=$(POD_IP)",
		"TOKEN=s3$(MODE)cr$$et",
		"CFG_MODE=fast",
		"MEM_MI=4096", // no limits: the instance's size, the default 2 vCPU / 4 GiB
		"CPU_M=2000",
		"KUBERNETES_SERVICE_HOST=" + k8s.Spec.ClusterIP + "\n",
		"/data/$(POD_IP)", // mountPath is not expanded, as on a kubelet
	}
	c.logsUntil(t, ns, "env-kubelet", want)
	// subPathExpr: what is written at the mount is the volume's logs/<uid>.
	if out, err := c.kubectlIn(nil, "exec", "-n", ns, "env-kubelet", "--", "sh", "-c", `touch "$(ls -d /data/*)/proof" && ls /all/logs/`+uid+`/proof`); err != nil || !strings.Contains(string(out), "/all/logs/"+uid+"/proof") {
		t.Fatalf("exec: %v %s", err, out)
	}

	// Command and args over an image's entrypoint and cmd.
	img, err := testbed.BusyboxImage(testbed.ImageConfig{Entrypoint: []string{"echo", "entry"}, Cmd: []string{"cmd"}})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := c.bed.Registry.Push(ctx, "busybox:entry", img)
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		command, args []string
		want          string
	}{
		"image":        {nil, nil, "entry cmd"},
		"command":      {[]string{"echo", "command"}, nil, "command"},
		"args":         {nil, []string{"args"}, "entry args"},
		"command-args": {[]string{"echo", "command"}, []string{"args"}, "command args"},
	} {
		c.createPod(t, ns, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "entry-" + name}, Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{Name: "main", Image: ref, Command: tc.command, Args: tc.args}}}})
		c.waitPod(t, ns, "entry-"+name, "Succeeded", 90*time.Second, func(p *corev1.Pod) error {
			if p.Status.Phase != corev1.PodSucceeded {
				return fmt.Errorf("phase %s", p.Status.Phase)
			}
			return nil
		})
		if logs := c.logsUntil(t, ns, "entry-"+name, []string{tc.want}); strings.TrimSpace(logs) != tc.want {
			t.Errorf("%s: printed %q, want %q", name, logs, tc.want)
		}
	}
}

// logsUntil waits until pod's log has every line of want and returns it.
func (c *cluster) logsUntil(t *testing.T, ns, pod string, want []string) string {
	t.Helper()
	var logs string
	poll.Eventually(t, 60*time.Second, "the log of "+pod, func() error {
		raw, err := c.kube.CoreV1().Pods(ns).GetLogs(pod, &corev1.PodLogOptions{}).Do(context.Background()).Raw()
		if err != nil {
			return err
		}
		logs = string(raw)
		for _, w := range want {
			if !strings.Contains(logs, w) {
				return fmt.Errorf("no %q in\n%s", w, logs)
			}
		}
		return nil
	})
	return logs
}
