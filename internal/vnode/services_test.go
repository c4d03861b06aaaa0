package vnode

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/poll"
)

// fakeTable is the instance service's side in memory: it refuses what the
// API refuses, counts writes by IP, and fails the next failPuts puts and
// failLists lists.
type fakeTable struct {
	mu                  sync.Mutex
	vs                  map[string]apiv1.VirtualService
	puts, deletes       map[string]int
	failPuts, failLists int
}

func newFakeTable(vss ...apiv1.VirtualService) *fakeTable {
	f := &fakeTable{vs: map[string]apiv1.VirtualService{}, puts: map[string]int{}, deletes: map[string]int{}}
	for _, v := range vss {
		f.vs[v.Spec.IP] = v
	}
	return f
}

func (f *fakeTable) PutVirtualService(_ context.Context, v *apiv1.VirtualService) (*apiv1.VirtualService, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.puts[v.Spec.IP]++
	if f.failPuts > 0 {
		f.failPuts--
		return nil, fmt.Errorf("put: %w", errdefs.ErrUnavailable)
	}
	if err := apiv1.ValidateVirtualService(v); err != nil {
		return nil, err
	}
	f.vs[v.Spec.IP] = *v
	return v, nil
}

func (f *fakeTable) DeleteVirtualService(_ context.Context, table, ip string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deletes[ip]++
	if v, ok := f.vs[ip]; !ok || v.Spec.Table != table {
		return fmt.Errorf("virtual IP %s: %w", ip, errdefs.ErrNotFound)
	}
	delete(f.vs, ip)
	return nil
}

func (f *fakeTable) ListVirtualServices(_ context.Context, table string) ([]apiv1.VirtualService, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failLists > 0 {
		f.failLists--
		return nil, fmt.Errorf("list: %w", errdefs.ErrUnavailable)
	}
	var out []apiv1.VirtualService
	for _, v := range f.vs {
		if v.Spec.Table == table {
			out = append(out, v)
		}
	}
	return out, nil
}

// holds is nil when the table holds exactly want (specs by IP).
func (f *fakeTable) holds(want ...apiv1.VirtualServiceSpec) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	got := map[string]apiv1.VirtualServiceSpec{}
	for ip, v := range f.vs {
		got[ip] = v.Spec
	}
	w := map[string]apiv1.VirtualServiceSpec{}
	for _, s := range want {
		w[s.IP] = s
	}
	if !reflect.DeepEqual(got, w) {
		return fmt.Errorf("the table holds %+v; want %+v", got, w)
	}
	return nil
}

func (f *fakeTable) count(m map[string]int, ip string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return m[ip]
}

// runServices runs a Services controller of the table c1 for the node
// vn-test on kube until the test ends, once its informers watch.
func runServices(t *testing.T, kube *fake.Clientset, table serviceTable, rec record.EventRecorder) {
	t.Helper()
	watching := make(chan string, 2)
	kube.PrependWatchReactor("*", func(a k8stesting.Action) (bool, watch.Interface, error) {
		w, err := kube.Tracker().Watch(a.GetResource(), a.GetNamespace())
		watching <- a.GetResource().Resource
		return true, w, err
	})
	objects := informers.NewSharedInformerFactory(kube, 0)
	c := newServicesController(Config{NodeName: "vn-test", ClusterID: "c1", Recorder: rec}, objects, table)
	ctx, cancel := context.WithCancel(context.Background())
	objects.Start(ctx.Done())
	objects.WaitForCacheSync(ctx.Done())
	for range 2 { // the fake's watches miss what happens before they start
		select {
		case <-watching:
		case <-time.After(10 * time.Second):
			t.Fatal("the informers do not watch")
		}
	}
	done := make(chan struct{})
	go func() { defer close(done); c.run(ctx, servicesWorkers) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("the controller did not stop with its ctx")
		}
		objects.Shutdown()
	})
}

func create(t *testing.T, kube *fake.Clientset, objs ...runtime.Object) {
	t.Helper()
	ctx := t.Context()
	for _, o := range objs {
		var err error
		switch o := o.(type) {
		case *corev1.Service:
			_, err = kube.CoreV1().Services(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *discoveryv1.EndpointSlice:
			_, err = kube.DiscoveryV1().EndpointSlices(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// The table follows the cluster: a Service appears with its ready
// backends, readiness flips reach it, a new ClusterIP replaces the old one,
// a deleted Service's virtual IP goes; headless and ExternalName Services
// never appear.
func TestServicesFollowTheCluster(t *testing.T) {
	kube, table, rec := fake.NewClientset(), newFakeTable(), record.NewFakeRecorder(10)
	runServices(t, kube, table, rec)
	ctx := t.Context()
	web := service("web", "198.18.96.10", func(s *corev1.Service) {
		s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Name: "dns", Protocol: corev1.ProtocolUDP, Port: 53},
			corev1.ServicePort{Name: "sig", Protocol: corev1.ProtocolSCTP, Port: 2905})
	})
	slice := endpointSlice("web", "web-a", slicePorts("http/TCP/8080", "dns/UDP/5353"), ep("198.19.0.1", "ready", ""), ep("198.19.0.2", "notready", ""))
	create(t, kube, web, slice, service("headless", "None", nil),
		service("name", "", func(s *corev1.Service) {
			s.Spec.Type, s.Spec.ExternalName, s.Spec.ClusterIPs = corev1.ServiceTypeExternalName, "example.com", nil
		}))
	poll.Eventually(t, 10*time.Second, "the Service in the table, with its ready backend", func() error {
		return table.holds(vspec("198.18.96.10", vport("http", "TCP", 80, "198.19.0.1:8080"), vport("dns", "UDP", 53, "198.19.0.1:5353")))
	})
	table.mu.Lock()
	labels := table.vs["198.18.96.10"].Metadata.Labels
	table.mu.Unlock()
	if labels[LabelServiceNamespace] != "shop" || labels[LabelServiceName] != "web" {
		t.Errorf("labels %v; want the Service's", labels)
	}
	select {
	case ev := <-rec.Events:
		if !strings.Contains(ev, "ServedInPart") || !strings.Contains(ev, "SCTP") {
			t.Errorf("event %q; want the SCTP port's", ev)
		}
	case <-time.After(5 * time.Second):
		t.Error("no event on the Service for its SCTP port")
	}

	slice.Endpoints = []discoveryv1.Endpoint{ep("198.19.0.1", "notready", ""), ep("198.19.0.2", "ready!", "")}
	if _, err := kube.DiscoveryV1().EndpointSlices("shop").Update(ctx, slice, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 10*time.Second, "the readiness flip in the table", func() error {
		return table.holds(vspec("198.18.96.10", vport("http", "TCP", 80, "198.19.0.2:8080"), vport("dns", "UDP", 53, "198.19.0.2:5353")))
	})
	select {
	case ev := <-rec.Events:
		t.Errorf("event %q again; want the SCTP port's once", ev)
	default:
	}

	web.Spec.ClusterIP, web.Spec.ClusterIPs = "198.18.96.11", []string{"198.18.96.11"}
	if _, err := kube.CoreV1().Services("shop").Update(ctx, web, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 10*time.Second, "the new ClusterIP in place of the old", func() error {
		return table.holds(vspec("198.18.96.11", vport("http", "TCP", 80, "198.19.0.2:8080"), vport("dns", "UDP", 53, "198.19.0.2:5353")))
	})

	if err := kube.CoreV1().Services("shop").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 10*time.Second, "the deleted Service's virtual IP gone", func() error { return table.holds() })
	if n := table.count(table.deletes, "198.18.96.11"); n != 1 {
		t.Errorf("%d deletes of the virtual IP; want 1", n)
	}
}

// At start, the table's virtual IPs that no Service gives are deleted, the
// ones a Service gives as they are stay unwritten, the others are written;
// a failing list is retried. A Service that changes in nothing the table
// holds is not written again.
func TestServicesResyncAtStart(t *testing.T) {
	api := service("api", "198.18.96.20", nil)
	apiSlice := endpointSlice("api", "api-a", slicePorts("http/TCP/8080"), ep("198.19.0.5", "ready", ""))
	db := service("db", "198.18.96.30", nil)
	given, _ := virtualServices("c1", "vn-test", api, []*discoveryv1.EndpointSlice{apiSlice})
	stale := apiv1.VirtualService{Spec: vspec("198.18.105.9", vport("http", "TCP", 80, "198.19.0.9:80"))}
	oldDB := apiv1.VirtualService{Metadata: given[0].Metadata, Spec: vspec("198.18.96.30", vport("http", "TCP", 80, "198.19.0.6:8080"))}
	other := apiv1.VirtualService{Spec: apiv1.VirtualServiceSpec{Table: "c2", IP: "198.18.105.8", Ports: []apiv1.VirtualPort{vport("", "TCP", 80)}}}
	table := newFakeTable(given[0], stale, oldDB, other)
	table.failLists = 1
	kube := fake.NewClientset(api, apiSlice, db)
	runServices(t, kube, table, nil)

	poll.Eventually(t, 10*time.Second, "the stale one deleted, db's written, api's and the other table's kept", func() error {
		if err := table.holds(given[0].Spec, vspec("198.18.96.30", vport("http", "TCP", 80)), other.Spec); err != nil {
			return err
		}
		if table.count(table.puts, "198.18.96.30") == 0 {
			return errors.New("db's not written yet")
		}
		return nil
	})
	table.mu.Lock()
	dbLabels := table.vs["198.18.96.30"].Metadata.Labels
	table.mu.Unlock()
	if dbLabels[LabelServiceName] != "db" {
		t.Errorf("db's virtual IP labelled %v; want db's name", dbLabels)
	}

	api.Annotations = map[string]string{"touched": "yes"}
	if _, err := kube.CoreV1().Services("shop").Update(t.Context(), api, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Consistently(t, time.Second, "api's virtual IP never written", func() error {
		if n := table.count(table.puts, "198.18.96.20"); n != 0 {
			return fmt.Errorf("written %d times", n)
		}
		return nil
	})
	if n := table.count(table.deletes, "198.18.105.8"); n != 0 {
		t.Errorf("the other table's virtual IP deleted %d times", n)
	}
}

// A Put that fails is retried with the queue's back-off until it succeeds.
func TestServicesRetryFailedWrites(t *testing.T) {
	kube, table := fake.NewClientset(), newFakeTable()
	table.failPuts = 2
	runServices(t, kube, table, nil)
	create(t, kube, service("web", "198.18.96.10", nil))
	poll.Eventually(t, 10*time.Second, "the Service in the table after two failed puts", func() error {
		return table.holds(vspec("198.18.96.10", vport("http", "TCP", 80)))
	})
	if n := table.count(table.puts, "198.18.96.10"); n != 3 {
		t.Errorf("%d puts; want 3 (two failed)", n)
	}
}

// A Service deleted and another given its ClusterIP: the table ends with
// the new one's, whichever of the two is handled first.
func TestServicesIPChangesHands(t *testing.T) {
	kube, table := fake.NewClientset(), newFakeTable()
	runServices(t, kube, table, nil)
	create(t, kube, service("old", "198.18.96.40", nil))
	poll.Eventually(t, 10*time.Second, "the old Service in the table", func() error {
		return table.holds(vspec("198.18.96.40", vport("http", "TCP", 80)))
	})
	if err := kube.CoreV1().Services("shop").Delete(t.Context(), "old", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	create(t, kube, service("new", "198.18.96.40", func(s *corev1.Service) { s.Spec.Ports[0].Port = 8080 }))
	holdsNew := func() error {
		if err := table.holds(vspec("198.18.96.40", vport("http", "TCP", 8080))); err != nil {
			return err
		}
		table.mu.Lock()
		defer table.mu.Unlock()
		if n := table.vs["198.18.96.40"].Metadata.Labels[LabelServiceName]; n != "new" {
			return fmt.Errorf("labelled %q; want new", n)
		}
		return nil
	}
	poll.Eventually(t, 10*time.Second, "the new Service's", holdsNew)
	poll.Consistently(t, 500*time.Millisecond, "the new Service's, not deleted with the old", holdsNew)
}
