package vnode

import (
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// The spot annotations make a spot instance; malformed ones refuse the
// pod, quoting them.
func TestSpotAnnotations(t *testing.T) {
	var s apiv1.ContainerGroupSpec
	p := pod(func(p *corev1.Pod) {
		p.Annotations = map[string]string{AnnSpotStrategy: "SpotWithPriceLimit", AnnSpotPriceLimit: "0.25", AnnSpotDuration: "0"}
	})
	if err := annotations(p, &s); err != nil || !s.Spot() || s.SpotPriceLimit != 0.25 || s.SpotDurationHours == nil || *s.SpotDurationHours != 0 {
		t.Fatalf("%v: %+v", err, s)
	}
	for key, bad := range map[string]string{AnnSpotPriceLimit: "cheap", AnnSpotDuration: "1h"} {
		p := pod(func(p *corev1.Pod) { p.Annotations = map[string]string{AnnSpotStrategy: "SpotAsPriceGo", key: bad} })
		var r *refusal
		if err := annotations(p, &apiv1.ContainerGroupSpec{}); !errors.As(err, &r) || !strings.Contains(r.Message, key) {
			t.Errorf("%s=%q: %v", key, bad, err)
		}
	}
}

// A spot instance told of its end has the DisruptionTarget condition, and
// keeps it once Expired (a Failed pod).
func TestSpotDisruptionCondition(t *testing.T) {
	p := &Provider{cfg: Config{InternalIP: "198.18.64.1"}, resizes: map[string]*resizeState{}}
	at := time.Date(2026, 11, 29, 12, 3, 0, 0, time.UTC)
	for _, state := range []apiv1.State{apiv1.StateRunning, apiv1.StateExpired} {
		g := &apiv1.ContainerGroup{Status: apiv1.ContainerGroupStatus{State: state, Host: "h1", SpotReleaseAt: &at}}
		st := p.podStatus(pod(nil), g)
		var found bool
		for _, c := range st.Conditions {
			found = found || (c.Type == corev1.DisruptionTarget && c.Status == corev1.ConditionTrue && c.Reason == "SpotToBeReleased" &&
				strings.Contains(c.Message, "released at 2026-11-29T12:03:00Z"))
		}
		if !found {
			t.Errorf("%s: conditions %+v", state, st.Conditions)
		}
	}
}
