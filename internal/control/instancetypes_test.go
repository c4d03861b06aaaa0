package control

import (
	"strings"
	"testing"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/auth"
	"github.com/eci-dev/eci/internal/errdefs"
)

// Named instance types: --instance-type's form, a group sized (and given
// GPUs) by its instanceType or by names among its specs, and a name no
// type has refused, naming the configured ones.
func TestInstanceTypes(t *testing.T) {
	for _, bad := range []string{"x", "x=2", "x=a,4", "x=2,4,1,1", "x=0,4", "x=2,4,-1", "=2,4", "x=128,1024", "2-4Gi=2,4"} {
		if _, _, err := ParseInstanceType(bad); err == nil {
			t.Errorf("--instance-type %q was taken", bad)
		}
	}
	name, gpu, err := ParseInstanceType("ecs.gn6i-c4g1.xlarge=4,16,1")
	if err != nil || name != "ecs.gn6i-c4g1.xlarge" || gpu != (InstanceType{CPU: 4, Memory: 16, GPU: 1}) {
		t.Fatalf("%q %+v %v", name, gpu, err)
	}
	e := newEnv(t, false, func(o *Options) {
		o.InstanceTypes = map[string]InstanceType{name: gpu, "ecs.c6.large": {CPU: 2, Memory: 4}}
	})
	create := func(mutate func(*apiv1.ContainerGroupSpec)) (*apiv1.ContainerGroup, error) {
		g := groupSpec("typed", 0, 0)
		mutate(&g.Spec)
		out, _, err := e.svc.CreateGroup(e.ctx, auth.Admin, g)
		return out, err
	}
	g, err := create(func(s *apiv1.ContainerGroupSpec) { s.InstanceType = name })
	if err != nil || g.Spec.CPU != 4 || g.Spec.Memory != 16 || g.Spec.GPU != 1 || g.Spec.InstanceType != name {
		t.Fatalf("by instanceType: %v %+v", err, g)
	}
	g, err = create(func(s *apiv1.ContainerGroupSpec) { s.Specs = []string{"ecs.c6.large", "1-2Gi"} })
	if err != nil || strings.Join(g.Spec.Specs, ",") != "2.0-4.0Gi,1-2Gi" {
		t.Fatalf("by specs: %v %+v", err, g)
	}
	for _, c := range []struct {
		mutate func(*apiv1.ContainerGroupSpec)
		says   string
	}{
		{func(s *apiv1.ContainerGroupSpec) { s.InstanceType = "ecs.nope" }, `spec.instanceType: "ecs.nope" is not a configured instance type (configured: ecs.c6.large, ecs.gn6i-c4g1.xlarge)`},
		{func(s *apiv1.ContainerGroupSpec) { s.Specs = []string{"1-2Gi", "ecs.nope"} }, `spec.specs[1]: "ecs.nope" is not a configured instance type`},
		{func(s *apiv1.ContainerGroupSpec) { s.InstanceType, s.CPU, s.Memory = "ecs.c6.large", 1, 2 }, "give one of them"},
		{func(s *apiv1.ContainerGroupSpec) { s.Specs = []string{name, "2-4Gi"} }, "different GPU counts"},
		{func(s *apiv1.ContainerGroupSpec) {
			s.EphemeralContainers = []apiv1.EphemeralContainer{{Container: apiv1.Container{Name: "dbg", Image: "busybox"}}}
		}, "spec.ephemeralContainers: added to a running group only"},
	} {
		if _, err := create(c.mutate); !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%v, want InvalidArgument saying %q", err, c.says)
		}
	}
}

// With --tenant-runtime-handlers a tenant's group may ask only for those,
// and one asking for none gets the first (the admin any, or none).
func TestTenantRuntimeHandlers(t *testing.T) {
	e := newEnv(t, false, func(o *Options) { o.TenantRuntimeHandlers = []string{"kata"} })
	for _, c := range []struct {
		p             auth.Principal
		handler, gets string
		ok            bool
	}{
		{tenantPrincipal("acme"), "kata", "kata", true},
		{tenantPrincipal("acme"), "", "kata", true},
		{tenantPrincipal("acme"), "runc", "", false},
		{auth.Admin, "runc", "runc", true},
		{auth.Admin, "", "", true},
	} {
		g := groupSpec("rh", 1, 2)
		g.Spec.RuntimeHandler = c.handler
		out, _, err := e.svc.CreateGroup(e.ctx, c.p, g)
		if (err == nil) != c.ok || (!c.ok && (!errdefs.IsPermissionDenied(err) || !strings.Contains(err.Error(), `spec.runtimeHandler: "runc" is not one tenants may ask for; allowed: kata`))) {
			t.Errorf("%v asking for %q: %v", c.p, c.handler, err)
		}
		if err == nil && out.Spec.RuntimeHandler != c.gets {
			t.Errorf("%v asking for %q got %q, want %q", c.p, c.handler, out.Spec.RuntimeHandler, c.gets)
		}
	}
}
