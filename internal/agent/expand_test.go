package agent

import (
	"slices"
	"strings"
	"testing"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// The kubelet's expansion cases (third_party/forked/golang/expansion's
// tests), and the order rule: a value sees only the variables before it.
func TestExpand(t *testing.T) {
	vars := map[string]string{"VAR_A": "A", "VAR_B": "B", "VAR_C": "C", "VAR_REF": "$(VAR_A)", "VAR_EMPTY": ""}
	for in, want := range map[string]string{
		"$(VAR_A)":                 "A",
		"___$(VAR_B)___":           "___B___",
		"$(VAR_A)-$(VAR_A)":        "A-A",
		"$(VAR_A)$(VAR_B)":         "AB",
		"$(VAR_REF)":               "$(VAR_A)", // no recursion
		"$(VAR_EMPTY)":             "",
		"$(UNKNOWN)":               "$(UNKNOWN)",
		"$$(VAR_A)":                "$(VAR_A)",
		"$$$(VAR_A)":               "$A",
		"$$$$(VAR_A)":              "$$(VAR_A)",
		"f000-$$VAR_A":             "f000-$VAR_A",
		"$(VAR_A":                  "$(VAR_A",
		"$VAR_A":                   "$VAR_A",
		"${VAR_A}":                 "${VAR_A}",
		"$":                        "$",
		"x$":                       "x$",
		"$()":                      "$()",
		"$(VAR_A)$(VAR_B)$(VAR_C)": "ABC",
	} {
		if got := expand(in, vars); got != want {
			t.Errorf("expand(%q) = %q, want %q", in, got, want)
		}
	}
}

// Many unclosed "$(" take linear time, not quadratic (a tenant's 1 MiB
// value must not hold the agent's worker for seconds).
func TestExpandUnclosed(t *testing.T) {
	in := strings.Repeat("$(", 512<<10)
	start := time.Now()
	if got := expand(in, map[string]string{"A": "x"}); got != in {
		t.Fatal("unclosed references changed")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("1 MiB of unclosed references took %s", d)
	}
}

func TestResolveContainer(t *testing.T) {
	g := &apiv1.ContainerGroup{Status: apiv1.ContainerGroupStatus{IP: "198.18.0.7", IPv6Address: "2001:2::7"}}
	c := apiv1.Container{
		ExpandEnv: true,
		Env: []apiv1.EnvVar{
			{Name: "LATER_REF", Value: "$(POD_IP)"}, // defined after: stays as written
			{Name: "POD_IP", FieldRef: &apiv1.EnvFieldRef{FieldPath: "status.podIP"}},
			{Name: "POD_IPS", FieldRef: &apiv1.EnvFieldRef{FieldPath: "status.podIPs"}},
			{Name: "URL", Value: "http://$(POD_IP):8080/$$(POD_IP)"},
			{Name: "SECRET", Value: "pa$$(POD_IP)ss"}, // a resolved secret, escaped by the vnode
			{Name: "TWICE", Value: "first"},
			{Name: "SEES_FIRST", Value: "$(TWICE)"},
			{Name: "TWICE", Value: "second"},
		},
		Command:      []string{"echo", "$(URL)", "$(MISSING)"},
		Args:         []string{"$(POD_IPS)"},
		VolumeMounts: []apiv1.VolumeMount{{Name: "data", MountPath: "/data", SubPathExpr: "logs/$(POD_IP)"}},
	}
	got, err := resolveContainer(g, c)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, e := range got.Env {
		if _, dup := env[e.Name]; dup {
			t.Errorf("%s is set twice", e.Name)
		}
		env[e.Name] = e.Value
		if e.FieldRef != nil {
			t.Errorf("%s still has a fieldRef", e.Name)
		}
	}
	for name, want := range map[string]string{"LATER_REF": "$(POD_IP)", "POD_IP": "198.18.0.7", "POD_IPS": "198.18.0.7,2001:2::7",
		"URL": "http://198.18.0.7:8080/$(POD_IP)", "SECRET": "pa$(POD_IP)ss", "SEES_FIRST": "first", "TWICE": "second"} {
		if env[name] != want {
			t.Errorf("%s = %q, want %q", name, env[name], want)
		}
	}
	if !slices.Equal(got.Command, []string{"echo", "http://198.18.0.7:8080/$(POD_IP)", "$(MISSING)"}) || !slices.Equal(got.Args, []string{"198.18.0.7,2001:2::7"}) {
		t.Errorf("command %q args %q", got.Command, got.Args)
	}
	if m := got.VolumeMounts[0]; m.SubPath != "logs/198.18.0.7" || m.SubPathExpr != "" {
		t.Errorf("mount %+v", m)
	}
	if c.VolumeMounts[0].SubPath != "" {
		t.Error("the group's spec was changed")
	}

	// Without ExpandEnv (an API user's container) nothing is expanded.
	c.ExpandEnv = false
	got, _ = resolveContainer(g, c)
	if got.Command[1] != "$(URL)" || got.Env[3].Value != "http://$(POD_IP):8080/$$(POD_IP)" || got.Env[1].Value != "198.18.0.7" || got.Env[5].Value != "$(TWICE)" {
		t.Errorf("expanded without ExpandEnv: %q %+v", got.Command, got.Env)
	}

	// A subPathExpr that expands out of its volume is refused.
	c.ExpandEnv = true
	c.Env = []apiv1.EnvVar{{Name: "UP", Value: ".."}}
	c.VolumeMounts = []apiv1.VolumeMount{{Name: "data", MountPath: "/data", SubPathExpr: "$(UP)/etc"}}
	if _, err := resolveContainer(g, c); err == nil || !strings.Contains(err.Error(), "relative path without ..") {
		t.Fatalf("escaping subPathExpr: %v", err)
	}
}
