package vnode

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/client"
)

// A StatefulSet's pod deleted with a short grace period is removed from the
// apiserver (virtual-kubelet force-deletes it) while its instance still
// ends, and made again under its name: virtual-kubelet, which finds the
// old pod by that name, calls UpdatePod with the new one. The new pod gets
// its own instance, the old pod's instance is deleted (virtual-kubelet may
// never call DeletePod for it), and the old one's end leaves the new alone.
func TestPodMadeAgainUnderItsName(t *testing.T) {
	var mu sync.Mutex
	var created []string // the pod UIDs of the groups created
	var deleted []string // the paths of the groups deleted
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodDelete {
			mu.Lock()
			deleted = append(deleted, r.URL.Path)
			mu.Unlock()
			_ = json.NewEncoder(w).Encode(apiv1.ContainerGroup{Metadata: apiv1.ObjectMeta{ID: path.Base(r.URL.Path)}})
			return
		}
		var g apiv1.ContainerGroup
		if r.Method != http.MethodPost || json.NewDecoder(r.Body).Decode(&g) != nil {
			http.Error(w, "not in this test", http.StatusBadRequest)
			return
		}
		mu.Lock()
		created = append(created, g.Metadata.Labels[LabelPodUID])
		g.Metadata.ID, g.Metadata.ResourceVersion = "eci-"+g.Metadata.Labels[LabelPodUID], "1"
		mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(g)
	}))
	t.Cleanup(svc.Close)
	eci, err := client.New(client.Config{Server: svc.URL, Token: "t", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	podOf := func(uid string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "fixed-0", UID: types.UID(uid)},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "busybox"}}}}
	}
	old, made := podOf("uid-1"), podOf("uid-2")
	p := newProvider(Config{ECI: eci, Kube: fake.NewClientset(made), Recorder: &testRecorder{}})
	ctx := context.Background()
	if err := p.CreatePod(ctx, old); err != nil {
		t.Fatal(err)
	}
	if err := p.UpdatePod(ctx, made); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(created) != 2 || created[0] != "uid-1" || created[1] != "uid-2" {
		t.Fatalf("groups created for pods %v, want uid-1 then uid-2", created)
	}
	// virtual-kubelet may never call DeletePod for the old pod: its
	// instance goes all the same.
	if len(deleted) != 1 || path.Base(deleted[0]) != "eci-uid-1" {
		t.Fatalf("groups deleted: %v, want the old pod's eci-uid-1", deleted)
	}
	mu.Unlock()
	// The old pod's instance ends.
	p.gone(ctx, old)
	got, err := p.GetPod(ctx, "default", "fixed-0")
	if err != nil || got == nil || got.UID != "uid-2" {
		t.Fatalf("the node's pod fixed-0 after the old one's end: %v (%v), want uid-2", got, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if g := p.groups["uid-2"]; g == nil || g.Metadata.ID != "eci-uid-2" {
		t.Errorf("the new pod's group: %+v", g)
	}
	if p.groups["uid-1"] != nil {
		t.Error("the old pod's group is still held")
	}
}
