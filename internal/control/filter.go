package control

import (
	"fmt"
	"strings"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/store"
)

// GroupFilter selects groups in a list or watch.
type GroupFilter struct {
	State  apiv1.State
	Host   string
	Tenant string
	// Tags must all be on the group (spec.tags).
	Tags map[string]string
	// Selector is a label selector: "k=v", "k!=v", "k", "!k", comma-separated.
	Selector []Requirement
}

// Requirement is one term of a label selector.
type Requirement struct {
	Key, Value string
	Op         string // "=", "!=", "exists", "!exists"
}

// ParseSelector reads a label selector of equality and existence terms.
func ParseSelector(s string) ([]Requirement, error) {
	var out []Requirement
	for _, term := range strings.Split(s, ",") {
		term = strings.TrimSpace(term)
		var r Requirement
		switch {
		case term == "":
			continue
		case strings.Contains(term, "!="):
			k, v, _ := strings.Cut(term, "!=")
			r = Requirement{Key: strings.TrimSpace(k), Value: strings.TrimSpace(v), Op: "!="}
		case strings.Contains(term, "="):
			k, v, _ := strings.Cut(strings.Replace(term, "==", "=", 1), "=")
			r = Requirement{Key: strings.TrimSpace(k), Value: strings.TrimSpace(v), Op: "="}
		case strings.HasPrefix(term, "!"):
			r = Requirement{Key: strings.TrimSpace(term[1:]), Op: "!exists"}
		default:
			r = Requirement{Key: term, Op: "exists"}
		}
		if r.Key == "" || strings.ContainsAny(r.Key, " !=") {
			return nil, fmt.Errorf("labelSelector: %q is not a term; allowed: k=v, k!=v, k, !k separated by commas: %w", term, errdefs.ErrInvalidArgument)
		}
		out = append(out, r)
	}
	return out, nil
}

// ParseTags reads "k=v,k2=v2".
func ParseTags(s string) (map[string]string, error) {
	if s == "" {
		return nil, nil
	}
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("tag: %q is not allowed; allowed: key=value pairs separated by commas: %w", kv, errdefs.ErrInvalidArgument)
		}
		out[k] = v
	}
	return out, nil
}

// Match tells whether g passes the filter.
func (f GroupFilter) Match(g *apiv1.ContainerGroup) bool {
	if f.State != "" && g.Status.State != f.State {
		return false
	}
	if f.Host != "" && g.Status.Host != f.Host {
		return false
	}
	if f.Tenant != "" && g.Metadata.Tenant != f.Tenant {
		return false
	}
	for k, v := range f.Tags {
		if got, ok := g.Spec.Tags[k]; !ok || got != v {
			return false
		}
	}
	for _, r := range f.Selector {
		v, ok := g.Metadata.Labels[r.Key]
		switch r.Op {
		case "=":
			if !ok || v != r.Value {
				return false
			}
		case "!=":
			if ok && v == r.Value {
				return false
			}
		case "exists":
			if !ok {
				return false
			}
		case "!exists":
			if ok {
				return false
			}
		}
	}
	return true
}

func storeOpts(limit, have int64, cont string) store.ListOptions {
	if limit <= 0 {
		return store.ListOptions{Continue: cont}
	}
	return store.ListOptions{Limit: limit - have, Continue: cont}
}
