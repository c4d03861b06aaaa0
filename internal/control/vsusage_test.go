package control

import (
	"testing"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// Virtual IPs stored before the tenant's usage record (by an older server)
// are counted from the first write on, and deletes never drive the count
// below what is stored.
func TestVirtualServiceUsageCountsWhatIsStored(t *testing.T) {
	e := newEnv(t, false)
	p := tenantPrincipal("a")
	vip := func(ip string, backends int) *apiv1.VirtualService {
		v := &apiv1.VirtualService{Spec: apiv1.VirtualServiceSpec{Table: "c1", IP: ip, Ports: []apiv1.VirtualPort{{Protocol: apiv1.ProtocolTCP, Port: 80}}}}
		for i := range backends {
			v.Spec.Ports[0].Backends = append(v.Spec.Ports[0].Backends, apiv1.Backend{IP: "198.18.1.1", Port: int32(8000 + i)})
		}
		return v
	}
	for _, ip := range []string{"198.18.0.10", "198.18.0.11"} {
		if _, err := e.svc.PutVirtualService(e.ctx, p, vip(ip, 3)); err != nil {
			t.Fatal(err)
		}
	}
	// As an older server left it: the records, no usage.
	u, err := e.svc.vsusage.Get(e.ctx, "a")
	if err != nil || u.Services != 2 || u.Backends != 6 {
		t.Fatalf("usage %+v (%v)", u, err)
	}
	if err := e.svc.vsusage.Delete(e.ctx, u); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.DeleteVirtualService(e.ctx, p, "", "c1", "198.18.0.10"); err != nil {
		t.Fatal(err)
	}
	if u, err = e.svc.vsusage.Get(e.ctx, "a"); err != nil || u.Services != 1 || u.Backends != 3 {
		t.Fatalf("after a delete with no usage record: %+v (%v); want the one left counted", u, err)
	}
	if _, err := e.svc.PutVirtualService(e.ctx, p, vip("198.18.0.11", 1)); err != nil {
		t.Fatal(err)
	}
	if u, err = e.svc.vsusage.Get(e.ctx, "a"); err != nil || u.Services != 1 || u.Backends != 1 {
		t.Fatalf("after a replace: %+v (%v)", u, err)
	}
}
