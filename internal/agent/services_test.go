package agent

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/poll"
	"github.com/eci-dev/eci/internal/server/servertest"
	"github.com/eci-dev/eci/internal/testbed"
)

// testServices: instances reach the virtual IPs of their own tenant's table
// (two tenants use the same virtual IP for different backends), from their
// first command on; a port without backends refuses at once; a change of
// backends reaches a running instance.
func testServices(t *testing.T, bed *testbed.Bed, srv *servertest.Server, rt Runtime) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	a, b := srv.TenantClient(t, "svc-a"), srv.TenantClient(t, "svc-b")
	web := func(c *client.Client, name string) string {
		t.Helper()
		g := &apiv1.ContainerGroup{Metadata: apiv1.ObjectMeta{Name: name}, Spec: apiv1.ContainerGroupSpec{Containers: []apiv1.Container{
			{Name: "web", Image: bed.Registry.Busybox, Command: []string{"sh", "-c", "mkdir -p /srv && echo " + name + " > /srv/index.html && exec httpd -f -p 8080 -h /srv"}}}}}
		out, _, err := c.CreateGroup(ctx, quickStop(g))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.DeleteGroup(t, out.Metadata.ID, 30*time.Second, name+" gone") })
		return srv.WaitGroup(t, out.Metadata.ID, name+" running", inState(apiv1.StateRunning)).Status.IP
	}
	put := func(c *client.Client, ip string, backends ...string) {
		t.Helper()
		port := apiv1.VirtualPort{Name: "http", Protocol: apiv1.ProtocolTCP, Port: 80}
		for _, be := range backends {
			port.Backends = append(port.Backends, apiv1.Backend{IP: be, Port: 8080})
		}
		if _, err := c.PutVirtualService(ctx, &apiv1.VirtualService{Spec: apiv1.VirtualServiceSpec{Table: "c1", IP: ip, Ports: []apiv1.VirtualPort{port}}}); err != nil {
			t.Fatal(err)
		}
	}
	const vip, empty = "198.19.250.10", "198.19.250.11"
	backendA, backendB := web(a, "backend-a"), web(b, "backend-b")
	put(a, vip, backendA)
	put(a, empty)
	put(b, vip, backendB)

	// The client's first command reaches the virtual IP: the rules are in
	// place before its containers start.
	clientOf := func(c *client.Client, name string) string {
		t.Helper()
		g := &apiv1.ContainerGroup{Metadata: apiv1.ObjectMeta{Name: name}, Spec: apiv1.ContainerGroupSpec{ServiceTable: "c1", Containers: []apiv1.Container{
			{Name: "main", Image: bed.Registry.Busybox, Command: []string{"sh", "-c", "wget -q -O /tmp/first http://" + vip + "/; sleep 3600"}}}}}
		out, _, err := c.CreateGroup(ctx, quickStop(g))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.DeleteGroup(t, out.Metadata.ID, 30*time.Second, name+" gone") })
		return srv.WaitGroup(t, out.Metadata.ID, name+" running", inState(apiv1.StateRunning)).Status.Containers[0].ContainerID
	}
	execOut := func(ctr string, cmd ...string) (string, error) {
		stdout, stderr, err := rt.ExecSync(ctx, ctr, cmd, 15*time.Second)
		if err == nil && len(stderr) > 0 {
			err = fmt.Errorf("%s", stderr)
		}
		return strings.TrimSpace(string(stdout)), err
	}
	// (This busybox's wget crashes with -T: its timeout is the exec's.)
	fetch := func(ctr, ip string) (string, error) {
		return execOut(ctr, "sh", "-c", "wget -q -O- http://"+ip+"/ 2>&1")
	}
	clientA, clientB := clientOf(a, "client-a"), clientOf(b, "client-b")
	for ctr, want := range map[string]string{clientA: "backend-a", clientB: "backend-b"} {
		poll.Eventually(t, 10*time.Second, "the first command's answer", func() error {
			got, err := execOut(ctr, "cat", "/tmp/first")
			if err != nil || got != want {
				return fmt.Errorf("%q, %v; want %s", got, err, want)
			}
			return nil
		})
		if got, err := fetch(ctr, vip); err != nil || got != want {
			t.Fatalf("%s: %q, %v; want %s", vip, got, err, want)
		}
	}

	start := time.Now()
	got, _ := fetch(clientA, empty)
	if !strings.Contains(got, "refused") || time.Since(start) > 3*time.Second {
		t.Errorf("a port without backends: %q after %s; want refused at once", got, time.Since(start))
	}

	// A new backend replaces the old: the running client follows.
	backendA2 := web(a, "backend-a2")
	put(a, vip, backendA2)
	poll.Eventually(t, 10*time.Second, "tenant a's virtual IP leads to backend-a2", func() error {
		if got, err := fetch(clientA, vip); err != nil || got != "backend-a2" {
			return fmt.Errorf("%q, %v", got, err)
		}
		return nil
	})
	if got, err := fetch(clientB, vip); err != nil || got != "backend-b" {
		t.Fatalf("tenant b after a's change: %q, %v; want backend-b", got, err)
	}
}
