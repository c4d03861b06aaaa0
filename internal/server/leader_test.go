package server

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/store"
)

// Two servers on one external etcd: both serve the API, one leads (places);
// when the leader stops, the other takes over and places new groups.
func TestLeaderFailover(t *testing.T) {
	ctx := context.Background()
	a, b := twoServers(t)
	leader, follower := waitLeader(t, a, b)

	// The follower serves the API too, with either server's admin token.
	if _, err := follower.admin.CreateVSwitch(ctx, &apiv1.VSwitch{Metadata: apiv1.ObjectMeta{Name: "vsw-a"}, Spec: apiv1.VSwitchSpec{Zone: "zone-a", CIDR: "198.19.128.0/24"}}); err != nil {
		t.Fatal(err)
	}
	res := apiv1.Resources{MilliCPU: 8000, MemoryMiB: 32768, Pods: 10}
	if _, err := clientFor(t, follower.srv, leader.srv.AdminToken()).RegisterHost(ctx, &apiv1.Host{
		Metadata: apiv1.ObjectMeta{Name: "h1"}, Spec: apiv1.HostSpec{Zone: "zone-a", Capacity: res, Allocatable: res}}); err != nil {
		t.Fatal(err)
	}
	leader.stop()
	deadline := time.Now().Add(30 * time.Second)
	for !follower.srv.Leading() {
		if time.Now().After(deadline) {
			t.Fatal("the follower did not take over within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	g, _, err := follower.admin.CreateGroup(ctx, group("after-failover"))
	if err != nil {
		t.Fatal(err)
	}
	for {
		cur, err := follower.admin.GetGroup(ctx, g.Metadata.ID)
		if err == nil && cur.Status.State == apiv1.StatePending {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the new leader did not place the group: %v %+v", err, cur.Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func waitLeader(t *testing.T, a, b *running) (leader, follower *running) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		la, lb := a.srv.Leading(), b.srv.Leading()
		if la && lb {
			t.Fatal("both servers lead")
		}
		if la {
			return a, b
		}
		if lb {
			return b, a
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("no server leads after 30s")
	return nil, nil
}

// twoServers runs two servers on one external etcd (a store's embedded one,
// on its unix socket), with one key file.
func twoServers(t *testing.T) (a, b *running) {
	t.Helper()
	etcd, err := store.Open(context.Background(), store.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(etcd.Close)
	keys := filepath.Join(t.TempDir(), "keys")
	if err := store.WriteKeyFile(keys); err != nil {
		t.Fatal(err)
	}
	external := func(name string) func(*Config) {
		return func(c *Config) {
			c.EtcdEndpoints, c.Name, c.EncryptionKeyFile = etcd.Endpoints(), name, keys
			c.AdminToken = "shared-admin-token-of-both-servers" // servers of one etcd share it
		}
	}
	return start(t, t.TempDir(), external("a")), start(t, t.TempDir(), external("b"))
}
