package server

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/poll"
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
	deadline := time.Now().Add(30 * time.Second) // for the take-over and the placement together
	poll.Eventually(t, time.Until(deadline), "the follower takes over", func() error {
		if !follower.srv.Leading() {
			return errors.New("not leading")
		}
		return nil
	})
	g, _, err := follower.admin.CreateGroup(ctx, group("after-failover"))
	if err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, time.Until(deadline), "the new leader places the group", func() error {
		cur, err := follower.admin.GetGroup(ctx, g.Metadata.ID)
		if err != nil {
			return err
		}
		if cur.Status.State != apiv1.StatePending {
			return fmt.Errorf("status %+v", cur.Status)
		}
		return nil
	})
}

func waitLeader(t *testing.T, a, b *running) (leader, follower *running) {
	t.Helper()
	poll.Eventually(t, 30*time.Second, "a server leads", func() error {
		la, lb := a.srv.Leading(), b.srv.Leading()
		if la && lb {
			t.Fatal("both servers lead")
		}
		switch {
		case la:
			leader, follower = a, b
		case lb:
			leader, follower = b, a
		default:
			return errors.New("neither leads")
		}
		return nil
	})
	return leader, follower
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
