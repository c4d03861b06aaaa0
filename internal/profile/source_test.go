package profile

import (
	"io"
	"log/slog"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"
)

func TestSourceKeepsTheLastGoodProfile(t *testing.T) {
	rec := record.NewFakeRecorder(10)
	s := &Source{Recorder: rec, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	cm := func(rv, selectors string) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: ConfigMapName, Namespace: ConfigMapNamespace, ResourceVersion: rv},
			Data: map[string]string{KeySelectors: selectors, "unknownKey": "x"}}
	}
	if s.Current() != nil {
		t.Fatal("a profile before any ConfigMap")
	}
	s.Set(cm("1", `[{"name":"a"}]`))
	if p := s.Current(); p == nil || p.Selectors[0].Name != "a" {
		t.Fatalf("profile %+v", p)
	}
	if ev := <-rec.Events; !strings.Contains(ev, "Normal ProfileLoaded") || !strings.Contains(ev, "keys ignored: unknownKey") {
		t.Errorf("event %q", ev)
	}
	s.Set(cm("2", `[{"name":"b",}]`))
	if p := s.Current(); p.Selectors[0].Name != "a" {
		t.Fatalf("a broken edit replaced the profile: %+v", p)
	}
	if ev := <-rec.Events; !strings.Contains(ev, "Warning InvalidProfile") || !strings.Contains(ev, "line 1, column 14") {
		t.Errorf("event %q", ev)
	}
	s.Set(cm("2", `[{"name":"b",}]`)) // a resync of the same version: no second Event
	select {
	case ev := <-rec.Events:
		t.Errorf("event on a resync: %q", ev)
	default:
	}
	s.Deleted()
	if s.Current() != nil {
		t.Fatal("a profile after the ConfigMap was deleted")
	}
}
