package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/poll"
)

func virtualIP(table, ip string, backends ...apiv1.Backend) *apiv1.VirtualService {
	return &apiv1.VirtualService{Spec: apiv1.VirtualServiceSpec{Table: table, IP: ip,
		Ports: []apiv1.VirtualPort{{Name: "http", Protocol: apiv1.ProtocolTCP, Port: 80, Backends: backends}}}}
}

// Two tenants' tables of one name and the same virtual IP are two objects:
// each tenant reads and writes its own, hosts read both, and a watch sees
// every change.
func TestVirtualServicesPerTenant(t *testing.T) {
	r := start(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a := r.token(t, apiv1.TokenSpec{Kind: apiv1.TokenTenant, Tenant: "a"})
	b := r.token(t, apiv1.TokenSpec{Kind: apiv1.TokenTenant, Tenant: "b"})
	host := r.token(t, apiv1.TokenSpec{Kind: apiv1.TokenHost, Host: "h1"})
	if _, err := r.admin.CreateVSwitch(ctx, &apiv1.VSwitch{Metadata: apiv1.ObjectMeta{Name: "vsw-b", Tenant: "b"}, Spec: apiv1.VSwitchSpec{Zone: "z", CIDR: "198.19.1.0/24"}}); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	seen := map[string]string{} // id -> last event type
	go host.InformVirtualServices(ctx, "", client.Handler[apiv1.VirtualService]{Event: func(ev client.VirtualServiceEvent) {
		mu.Lock()
		defer mu.Unlock()
		seen[ev.Object.Metadata.ID] = string(ev.Type)
	}})

	va, err := a.PutVirtualService(ctx, virtualIP("c1", "198.18.100.10", apiv1.Backend{IP: "198.18.200.5", Port: 8080}))
	if err != nil {
		t.Fatal(err)
	}
	if va.Metadata.Tenant != "a" || va.Metadata.ID != "a/c1_198.18.100.10" || va.Metadata.ResourceVersion == "" {
		t.Fatalf("stored as %+v", va.Metadata)
	}
	if _, err := b.PutVirtualService(ctx, virtualIP("c1", "198.18.100.10", apiv1.Backend{IP: "198.19.1.7", Port: 80})); err != nil {
		t.Fatal(err)
	}
	// A backend in b's vSwitch is not a's to lead to.
	_, err = a.PutVirtualService(ctx, virtualIP("c1", "198.18.100.11", apiv1.Backend{IP: "198.19.1.7", Port: 80}))
	var ae *client.APIError
	if !errors.As(err, &ae) || !errdefs.IsInvalid(err) || len(ae.Status.Fields) != 1 || ae.Status.Fields[0].Field != "spec.ports[0].backends[0].ip" {
		t.Fatalf("backend in another tenant's vSwitch: %v", err)
	}
	// Bad input names the field and changes nothing.
	bad := virtualIP("c1", "198.18.100.12")
	bad.Spec.Ports[0].Protocol = "SCTP"
	if _, err := a.PutVirtualService(ctx, bad); !errors.As(err, &ae) || ae.Status.Fields[0].Field != "spec.ports[0].protocol" {
		t.Fatalf("SCTP: %v", err)
	}
	// A tenant can't write for another.
	other := virtualIP("c1", "198.18.100.13")
	other.Metadata.Tenant = "b"
	if _, err := a.PutVirtualService(ctx, other); !errdefs.IsInvalid(err) {
		t.Fatalf("tenant a writing for b: %v", err)
	}
	// The admin writes for a tenant it names, never for none.
	if _, err := r.admin.PutVirtualService(ctx, virtualIP("c2", "198.18.100.10")); !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), "metadata.tenant") {
		t.Fatalf("admin without a tenant: %v", err)
	}
	if _, err := host.PutVirtualService(ctx, virtualIP("c1", "198.18.100.14")); !errdefs.IsPermissionDenied(err) {
		t.Fatalf("a host writing: %v", err)
	}

	listA, err := a.ListVirtualServices(ctx, "c1")
	if err != nil || len(listA) != 1 || listA[0].Spec.Ports[0].Backends[0].IP != "198.18.200.5" {
		t.Fatalf("tenant a's table: %+v, %v", listA, err)
	}
	if all, err := host.ListVirtualServices(ctx, "c1"); err != nil || len(all) != 2 {
		t.Fatalf("a host reads every tenant's: %+v, %v", all, err)
	}

	// Replaced whole; deleted by its tenant only.
	if _, err := a.PutVirtualService(ctx, virtualIP("c1", "198.18.100.10")); err != nil {
		t.Fatal(err)
	}
	if got, _ := a.ListVirtualServices(ctx, "c1"); len(got) != 1 || len(got[0].Spec.Ports[0].Backends) != 0 {
		t.Fatalf("after the replace: %+v", got)
	}
	if err := a.DeleteVirtualService(ctx, "c1", "198.18.100.10"); err != nil {
		t.Fatal(err)
	}
	if err := a.DeleteVirtualService(ctx, "c1", "198.18.100.10"); !errdefs.IsNotFound(err) {
		t.Fatalf("second delete: %v", err)
	}
	if got, _ := b.ListVirtualServices(ctx, ""); len(got) != 1 {
		t.Fatalf("tenant b's table after a's delete: %+v", got)
	}
	poll.Eventually(t, 10*time.Second, "the host's watch saw a's delete and b's add", func() error {
		mu.Lock()
		defer mu.Unlock()
		if seen["a/c1_198.18.100.10"] != string(apiv1.Deleted) || seen["b/c1_198.18.100.10"] != string(apiv1.Added) {
			return fmt.Errorf("seen %v", seen)
		}
		return nil
	})
}

// A tenant's virtual IPs are bounded together: their backends (100,000)
// are counted across writes, deletes give them back, and the refusal names
// the bound and is not one a client resends.
func TestVirtualServicesBoundedPerTenant(t *testing.T) {
	r := start(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	a := r.token(t, apiv1.TokenSpec{Kind: apiv1.TokenTenant, Tenant: "a"})
	full := func(i int) *apiv1.VirtualService {
		v := virtualIP("c1", fmt.Sprintf("198.18.100.%d", 10+i))
		for j := range apiv1.MaxBackends {
			v.Spec.Ports[0].Backends = append(v.Spec.Ports[0].Backends, apiv1.Backend{IP: fmt.Sprintf("198.18.%d.%d", 120+j/250, 1+j%250), Port: 8080})
		}
		return v
	}
	n := apiv1.MaxTenantBackends / apiv1.MaxBackends
	for i := range n {
		if _, err := a.PutVirtualService(ctx, full(i)); err != nil {
			t.Fatalf("virtual IP %d of %d: %v", i+1, n, err)
		}
	}
	// Replacing one whole keeps the count.
	if _, err := a.PutVirtualService(ctx, full(0)); err != nil {
		t.Fatalf("replacing one: %v", err)
	}
	_, err := a.PutVirtualService(ctx, full(n))
	if !errdefs.IsPermissionDenied(err) || !strings.Contains(err.Error(), "100000") {
		t.Fatalf("one more: %v; want refused, naming the bound", err)
	}
	if err := a.DeleteVirtualService(ctx, "c1", "198.18.100.10"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.PutVirtualService(ctx, full(n)); err != nil {
		t.Fatalf("after a delete gave its backends back: %v", err)
	}
}
