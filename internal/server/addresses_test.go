package server

import (
	"context"
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

// Every host reads where every group's address is routed (another host's
// groups too), and nothing else of the groups, and where the other hosts'
// tunnels reach them; a group that goes is a DELETED event; tenants may
// not read it.
func TestAddressesForHosts(t *testing.T) {
	r := start(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r.fakeHost(ctx, t, "h1")
	tenant := r.token(t, apiv1.TokenSpec{Kind: apiv1.TokenTenant, Tenant: "a"})
	other := r.token(t, apiv1.TokenSpec{Kind: apiv1.TokenHost, Host: "h2"})

	var mu sync.Mutex
	seen := map[string]*apiv1.InstanceAddress{}
	go other.InformAddresses(ctx, client.Handler[apiv1.InstanceAddress]{Event: func(ev client.WatchEvent[apiv1.InstanceAddress]) {
		mu.Lock()
		defer mu.Unlock()
		if ev.Type == apiv1.Deleted {
			delete(seen, ev.Object.Metadata.ID)
			return
		}
		seen[ev.Object.Metadata.ID] = ev.Object
	}})
	g, _, err := tenant.CreateGroup(ctx, group("web"))
	if err != nil {
		t.Fatal(err)
	}
	var running *apiv1.ContainerGroup
	poll.Eventually(t, 20*time.Second, "group Running", func() error {
		running, err = tenant.GetGroup(ctx, g.Metadata.ID)
		if err != nil || running.Status.State != apiv1.StateRunning {
			return fmt.Errorf("%v (%v)", running, err)
		}
		return nil
	})
	poll.Eventually(t, 10*time.Second, "host h2 sees the group's address on h1", func() error {
		mu.Lock()
		defer mu.Unlock()
		a := seen[g.Metadata.ID]
		if a == nil || a.Spec.IP != running.Status.IP || a.Spec.VSwitchID != "vsw-a" || a.Spec.Host != "h1" || len(a.Spec.SecurityGroups) != 0 {
			return fmt.Errorf("seen %+v", a)
		}
		if a.Metadata.Name != "" || a.Metadata.Tenant != "" || a.Metadata.Labels != nil {
			return fmt.Errorf("more than the address: %+v", a.Metadata)
		}
		return nil
	})
	list, err := other.ListAddresses(ctx)
	if err != nil || len(list) != 1 || list[0].Spec.IP != running.Status.IP {
		t.Fatalf("list: %+v, %v", list, err)
	}
	// Where the others' tunnels reach them, and nothing more of them.
	hosts, err := other.ListHosts(ctx)
	if err != nil || len(hosts) != 1 || hosts[0].Metadata.Name != "h1" || hosts[0].Spec.Capacity.MilliCPU != 0 || hosts[0].Spec.StreamCA != "" || !hosts[0].Status.Ready {
		t.Fatalf("hosts as a host reads them: %+v, %v", hosts, err)
	}
	// A second host may not take h1's tunnel IP.
	res := apiv1.Resources{MilliCPU: 1000, MemoryMiB: 1024, Pods: 10}
	spec := apiv1.HostSpec{Zone: "zone-a", Capacity: res, Allocatable: res, TunnelIP: "198.18.192.11"}
	h1 := r.token(t, apiv1.TokenSpec{Kind: apiv1.TokenHost, Host: "h1"})
	if _, err := h1.RegisterHost(ctx, &apiv1.Host{Metadata: apiv1.ObjectMeta{Name: "h1"}, Spec: spec}); err != nil {
		t.Fatal(err)
	}
	if _, err := other.RegisterHost(ctx, &apiv1.Host{Metadata: apiv1.ObjectMeta{Name: "h2"}, Spec: spec}); !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), "tunnelIP") {
		t.Fatalf("h2 registers h1's tunnel IP: %v", err)
	}
	if _, err := tenant.ListAddresses(ctx); !errdefs.IsPermissionDenied(err) {
		t.Fatalf("a tenant lists the addresses: %v", err)
	}
	if _, err := tenant.DeleteGroup(ctx, g.Metadata.ID, client.DeleteOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 10*time.Second, "the address goes with its group", func() error {
		mu.Lock()
		defer mu.Unlock()
		if a := seen[g.Metadata.ID]; a != nil {
			return fmt.Errorf("still %+v", a)
		}
		return nil
	})
}
