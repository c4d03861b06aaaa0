package agent

import (
	"fmt"
	"strings"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// resolveContainer is c as it starts in g: env fields only the host knows
// (status.podIP, status.podIPs) filled from the group's addresses, and,
// with ExpandEnv, $(NAME) references expanded as the kubelet expands them
// (pkg/kubelet/kubelet_pods.go, third_party/forked/golang/expansion): each
// env value from the variables before it, then command, args and
// subPathExpr from them all. A subPathExpr that expands to an absolute path
// or one with ".." is refused, as the kubelet refuses it.
func resolveContainer(g *apiv1.ContainerGroup, c apiv1.Container) (apiv1.Container, error) {
	env := make([]apiv1.EnvVar, 0, len(c.Env))
	vars := map[string]string{}
	for _, e := range c.Env {
		v := e.Value
		switch {
		case e.FieldRef != nil: // a field's value is taken as it is
			v = podIPs(g, e.FieldRef.FieldPath)
		case c.ExpandEnv:
			v = expand(v, vars)
		}
		vars[e.Name] = v
		env = append(env, apiv1.EnvVar{Name: e.Name, Value: v})
	}
	// One value per name, the last (as the kubelet's map of them): a
	// runtime given two would keep one or the other.
	last := make(map[string]int, len(env))
	for i, e := range env {
		last[e.Name] = i
	}
	c.Env = make([]apiv1.EnvVar, 0, len(last))
	for i, e := range env {
		if last[e.Name] == i {
			c.Env = append(c.Env, e)
		}
	}
	mounts := make([]apiv1.VolumeMount, len(c.VolumeMounts))
	for i, m := range c.VolumeMounts {
		if m.SubPathExpr != "" {
			m.SubPath = m.SubPathExpr
			if c.ExpandEnv {
				m.SubPath = expand(m.SubPathExpr, vars)
			}
			m.SubPathExpr = ""
			if !apiv1.RelativeSubPath(m.SubPath) {
				return c, fmt.Errorf("subPathExpr %q of volume %q expands to %q: it must be a relative path without ..", c.VolumeMounts[i].SubPathExpr, m.Name, m.SubPath)
			}
		}
		mounts[i] = m
	}
	c.VolumeMounts = mounts
	if c.ExpandEnv {
		c.Command, c.Args = expandAll(c.Command, vars), expandAll(c.Args, vars)
	}
	return c, nil
}

// podIPs is the value of a downward API field of the group's addresses.
func podIPs(g *apiv1.ContainerGroup, fieldPath string) string {
	if fieldPath == "status.podIPs" && g.Status.IPv6Address != "" {
		return g.Status.IP + "," + g.Status.IPv6Address
	}
	return g.Status.IP
}

func expandAll(in []string, vars map[string]string) []string {
	if in == nil {
		return nil
	}
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = expand(s, vars)
	}
	return out
}

// expand replaces $(NAME) with vars' NAME; a name vars lacks stays as
// written, $$ is $, and any other $ is itself.
func expand(in string, vars map[string]string) string {
	var b strings.Builder
	checkpoint := 0
	// A "$(" past the last ")" is never closed: no scan for it (a value
	// of many unclosed "$(" would take quadratic time).
	lastClose := strings.LastIndexByte(in, ')')
	for i := 0; i < len(in); i++ {
		if in[i] != '$' || i+1 >= len(in) {
			continue
		}
		b.WriteString(in[checkpoint:i])
		switch next := in[i+1]; {
		case next == '$':
			b.WriteByte('$')
			i++
		case next == '(':
			end := -1
			if i+2 <= lastClose {
				end = strings.IndexByte(in[i+2:], ')')
			}
			if end < 0 {
				b.WriteString("$(")
				i++
				break
			}
			name := in[i+2 : i+2+end]
			if v, ok := vars[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString("$(" + name + ")")
			}
			i += 2 + end
		default:
			b.WriteByte('$')
			b.WriteByte(next)
			i++
		}
		checkpoint = i + 1
	}
	return b.String() + in[checkpoint:]
}
