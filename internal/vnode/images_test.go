package vnode

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/poll"
)

// A pod's changed image reaches its group even when the first update
// fails (it is sent again until the group has it); an image the service
// refuses is said once, as an Event on the container, and not sent again;
// UpdatePod never fails.
func TestImagesReachTheGroup(t *testing.T) {
	var mu sync.Mutex
	var sent []string
	fail := 1 // the first update: a 503
	eci := updateService(t, func(w http.ResponseWriter, u apiv1.GroupUpdate) {
		mu.Lock()
		defer mu.Unlock()
		sent = append(sent, u.Images["app"])
		switch {
		case fail > 0:
			fail--
			http.Error(w, "busy", http.StatusServiceUnavailable)
		case u.Images["app"] == "bad image":
			w.WriteHeader(http.StatusUnprocessableEntity)
			_ = json.NewEncoder(w).Encode(apiv1.Status{Code: http.StatusUnprocessableEntity, Reason: "Invalid", Message: "spec.containers[0].image: not a reference"})
		default:
			g := apiv1.ContainerGroup{Metadata: apiv1.ObjectMeta{ID: "eci-1", ResourceVersion: "9",
				Labels: podLabels("web", "uid-1")},
				Spec: apiv1.ContainerGroupSpec{Containers: []apiv1.Container{{Name: "app", Image: u.Images["app"]}}}}
			_ = json.NewEncoder(w).Encode(g)
		}
	})
	rec := &testRecorder{}
	p := newProvider(Config{ECI: eci, Recorder: rec})
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web", UID: types.UID("uid-1")},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "busybox:1"}}}}
	p.pods["default/web"] = pod
	p.groups["uid-1"] = &apiv1.ContainerGroup{Metadata: apiv1.ObjectMeta{ID: "eci-1", ResourceVersion: "5",
		Labels: podLabels("web", "uid-1")},
		Spec: apiv1.ContainerGroupSpec{Containers: []apiv1.Container{{Name: "app", Image: "busybox:1"}}}}
	ctx := context.Background()

	update := func(image string) {
		t.Helper()
		next := pod.DeepCopy()
		next.Spec.Containers[0].Image = image
		if err := p.UpdatePod(ctx, next); err != nil {
			t.Fatalf("UpdatePod: %v", err)
		}
	}
	update("busybox:2")
	poll.Eventually(t, 10*time.Second, "the group has busybox:2", func() error {
		if _, _, left := p.updateToSend("default/web"); len(left) != 0 {
			return errLeft(left)
		}
		return nil
	})
	mu.Lock()
	if len(sent) != 2 || sent[0] != "busybox:2" || sent[1] != "busybox:2" {
		t.Errorf("sent %v, want busybox:2 twice (the first failed)", sent)
	}
	mu.Unlock()

	update("bad image")
	poll.Eventually(t, 10*time.Second, "the refusal said", func() error {
		if len(rec.got) != 1 || rec.got[0].reason != "InspectFailed" || rec.got[0].ref.FieldPath != "spec.containers{app}" {
			return errLeft(map[string]string{"events": "not yet"})
		}
		return nil
	})
	p.syncUpdates(ctx, "default/web") // as the next change of the group would
	time.Sleep(200 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if len(sent) != 3 || len(rec.got) != 1 {
		t.Errorf("sent %v and %d events: a refused image was sent again", sent, len(rec.got))
	}
}

type errLeft map[string]string

func (e errLeft) Error() string { return "left: " + mapString(e) }

func mapString(m map[string]string) string {
	b, _ := json.Marshal(m)
	return string(b)
}

// A pod's activeDeadlineSeconds, set or lowered after it was created,
// reaches its group; an equal one is not sent.
func TestDeadlineReachesTheGroup(t *testing.T) {
	var mu sync.Mutex
	var sent []apiv1.GroupUpdate
	eci := updateService(t, func(w http.ResponseWriter, u apiv1.GroupUpdate) {
		mu.Lock()
		defer mu.Unlock()
		sent = append(sent, u)
		g := apiv1.ContainerGroup{Metadata: apiv1.ObjectMeta{ID: "eci-1", ResourceVersion: "9", Labels: podLabels("web", "uid-1")},
			Spec: apiv1.ContainerGroupSpec{ActiveDeadlineSeconds: u.ActiveDeadlineSeconds, Containers: []apiv1.Container{{Name: "app", Image: "busybox:1"}}}}
		_ = json.NewEncoder(w).Encode(g)
	})
	p := newProvider(Config{ECI: eci, Recorder: &testRecorder{}})
	d := int64(30)
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web", UID: types.UID("uid-1")},
		Spec: corev1.PodSpec{ActiveDeadlineSeconds: &d, Containers: []corev1.Container{{Name: "app", Image: "busybox:1"}}}}
	p.pods["default/web"] = pod
	p.groups["uid-1"] = &apiv1.ContainerGroup{Metadata: apiv1.ObjectMeta{ID: "eci-1", ResourceVersion: "5", Labels: podLabels("web", "uid-1")},
		Spec: apiv1.ContainerGroupSpec{Containers: []apiv1.Container{{Name: "app", Image: "busybox:1"}}}}
	p.syncUpdates(context.Background(), "default/web")
	poll.Eventually(t, 10*time.Second, "the deadline sent", func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(sent) != 1 || sent[0].ActiveDeadlineSeconds == nil || *sent[0].ActiveDeadlineSeconds != 30 || len(sent[0].Images) != 0 {
			return errLeft(map[string]string{"sent": "not yet"})
		}
		return nil
	})
	if pod, _, _ := p.updateToSend("default/web"); pod != nil {
		t.Fatal("the group has the deadline; something is still to send")
	}
}

// updateService is an instance service that answers UpdateContainerGroup
// (PATCH) with answer, and a client of it.
func updateService(t *testing.T, answer func(http.ResponseWriter, apiv1.GroupUpdate)) *client.Client {
	t.Helper()
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var u apiv1.GroupUpdate
		if r.Method != http.MethodPatch || json.NewDecoder(r.Body).Decode(&u) != nil {
			http.Error(w, "not in this test", http.StatusBadRequest)
			return
		}
		answer(w, u)
	}))
	t.Cleanup(svc.Close)
	eci, err := client.New(client.Config{Server: svc.URL, Token: "t", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return eci
}
