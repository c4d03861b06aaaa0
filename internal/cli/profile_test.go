package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestProfileCheck(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yaml", `apiVersion: v1
kind: ConfigMap
metadata: {name: eci-profile, namespace: kube-system}
data:
  vSwitchIds: vsw-a
  selectors: |
    [{"name": "web", "objectSelector": {"matchLabels": {"app": "web"}}, "effect": {"labels": {"tier": "front"}}},
     {"name": "api", "objectSelector": {"matchLabels": {"app": "api"}}, "policy": "normalNodePrefer", "unschedulableSeconds": 9}]
`)
	bad := write("bad.yaml", strings.Replace(readFile(t, good), `"policy"`, `"polcy"`, 1))
	web := write("web.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: w, labels: {app: web}}\nspec: {containers: [{name: c, image: busybox}]}\n")
	api := write("api.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: a, labels: {app: api}}\nspec: {containers: [{name: c, image: busybox}]}\n")
	other := write("other.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: o}\nspec: {containers: [{name: c, image: busybox}]}\n")

	out, err := eci(t, "profile", "check", "-f", good)
	if err != nil || !strings.Contains(out, "valid: 2 selectors") {
		t.Fatalf("good profile: %q (%v)", out, err)
	}
	_, err = eci(t, "profile", "check", "-f", bad)
	if err == nil || !strings.Contains(err.Error(), `selectors[1]: unknown field "polcy"`) || !strings.Contains(err.Error(), "last good profile") {
		t.Fatalf("bad profile: %v", err)
	}
	out, err = eci(t, "profile", "check", "-f", good, "--pod", web)
	if err != nil || !strings.Contains(out, "by web; policy virtualNodeOnly") || !strings.Contains(out, "+ label tier=front") ||
		!strings.Contains(out, "+ nodeSelector type=virtual-kubelet") || !strings.Contains(out, `"path": "/spec/tolerations"`) {
		t.Fatalf("web pod: %q (%v)", out, err)
	}
	out, err = eci(t, "profile", "check", "-f", good, "--pod", api)
	if err != nil || !strings.Contains(out, "policy normalNodePrefer") || !strings.Contains(out, "after 9s unschedulable") || strings.Contains(out, "+ toleration") {
		t.Fatalf("api pod: %q (%v)", out, err)
	}
	out, err = eci(t, "profile", "check", "-f", good, "--pod", other, "--namespace-label", "alibabacloud.com/eci=true")
	if err != nil || !strings.Contains(out, "by label alibabacloud.com/eci on the namespace") {
		t.Fatalf("labelled namespace: %q (%v)", out, err)
	}
	out, err = eci(t, "profile", "check", "-f", good, "--pod", other)
	if err != nil || !strings.Contains(out, "left alone") {
		t.Fatalf("other pod: %q (%v)", out, err)
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
