package control

import (
	"strings"
	"testing"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/auth"
	"github.com/eci-dev/eci/internal/errdefs"
)

// UpdateContainerGroup changes labels, tags and files payloads, checks the
// version it was given, and validates the result; RestartContainerGroup moves
// a running group to Restarting until its agent reports it Running again.
func TestUpdateAndRestart(t *testing.T) {
	e := newEnv(t, true)
	e.vswitch(t, "vsw-a", "zone-a", "198.19.128.0/24")
	e.host(t, "h1", "zone-a", 16000, 65536, 100)
	spec := groupSpec("cfg", 1, 2)
	spec.Spec.Volumes = []apiv1.Volume{{Name: "config", Files: &apiv1.FilesVolume{Files: []apiv1.File{{Path: "a.conf", Content: []byte("v1")}}}}}
	g, _, err := e.svc.CreateGroup(e.ctx, auth.Admin, spec)
	if err != nil {
		t.Fatal(err)
	}
	e.waitState(t, g.Metadata.ID, apiv1.StatePending)
	cur, _ := e.svc.GetGroup(e.ctx, auth.Admin, g.Metadata.ID)

	up, err := e.svc.UpdateGroup(e.ctx, auth.Admin, g.Metadata.ID, apiv1.GroupUpdate{
		Tags:            map[string]string{"team": "red"},
		Files:           map[string]apiv1.FilesVolume{"config": {Files: []apiv1.File{{Path: "a.conf", Content: []byte("v2")}}}},
		ResourceVersion: cur.Metadata.ResourceVersion,
	})
	if err != nil {
		t.Fatal(err)
	}
	if up.Spec.Tags["team"] != "red" || string(up.Spec.Volumes[0].Files.Files[0].Content) != "v2" || up.Status.Host != "h1" {
		t.Fatalf("update gave %+v", up)
	}
	if _, err := e.svc.UpdateGroup(e.ctx, auth.Admin, g.Metadata.ID, apiv1.GroupUpdate{Tags: map[string]string{}, ResourceVersion: cur.Metadata.ResourceVersion}); !errdefs.IsConflict(err) {
		t.Fatalf("update from a stale version: want Conflict, got %v", err)
	}
	if _, err := e.svc.UpdateGroup(e.ctx, auth.Admin, g.Metadata.ID, apiv1.GroupUpdate{Files: map[string]apiv1.FilesVolume{"nope": {}}}); !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), `files["nope"]`) {
		t.Fatalf("files for a missing volume: %v", err)
	}
	if _, err := e.svc.UpdateGroup(e.ctx, auth.Admin, g.Metadata.ID, apiv1.GroupUpdate{
		Files: map[string]apiv1.FilesVolume{"config": {Files: []apiv1.File{{Path: "../escape"}}}}}); !errdefs.IsInvalid(err) {
		t.Fatalf("an invalid payload was stored: %v", err)
	}

	if _, err := e.svc.RestartGroup(e.ctx, auth.Admin, g.Metadata.ID); err != nil {
		t.Fatal(err)
	}
	r := e.waitState(t, g.Metadata.ID, apiv1.StateRestarting)
	if r.Status.RestartRequestedAt == nil {
		t.Fatal("restart time not recorded for the agent")
	}
	if _, err := e.svc.ReportStatus(e.ctx, hostPrincipal("h1"), g.Metadata.ID, apiv1.StatusReport{State: apiv1.StateRunning}); err != nil {
		t.Fatal(err)
	}
	e.waitState(t, g.Metadata.ID, apiv1.StateRunning)
	if _, err := e.svc.ReportStatus(e.ctx, hostPrincipal("h1"), g.Metadata.ID, apiv1.StatusReport{State: apiv1.StateFailed}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.RestartGroup(e.ctx, auth.Admin, g.Metadata.ID); !errdefs.IsConflict(err) {
		t.Fatalf("restart of a Failed group: want Conflict, got %v", err)
	}
}

// An update of images changes the named containers' (app or init) alone,
// with the tags of the same update; a name of no container, or an image
// the spec's validation refuses, is refused naming it, and changes
// nothing.
func TestUpdateImages(t *testing.T) {
	e := newEnv(t, false)
	spec := groupSpec("img", 1, 2)
	spec.Spec.InitContainers = []apiv1.Container{{Name: "setup", Image: "busybox"}}
	g, _, err := e.svc.CreateGroup(e.ctx, auth.Admin, spec)
	if err != nil {
		t.Fatal(err)
	}
	app := g.Spec.Containers[0].Name
	up, err := e.svc.UpdateGroup(e.ctx, auth.Admin, g.Metadata.ID, apiv1.GroupUpdate{Images: map[string]string{app: "busybox:2", "setup": "busybox:3"}, Tags: map[string]string{"team": "red"}})
	if err != nil || up.Spec.Containers[0].Image != "busybox:2" || up.Spec.InitContainers[0].Image != "busybox:3" || up.Spec.Tags["team"] != "red" {
		t.Fatalf("update: %v, %+v", err, up)
	}
	for name, image := range map[string]string{"nope": "busybox", app: "Not An Image!"} {
		_, err := e.svc.UpdateGroup(e.ctx, auth.Admin, g.Metadata.ID, apiv1.GroupUpdate{Images: map[string]string{name: image}})
		if !errdefs.IsInvalid(err) || (name == "nope" && !strings.Contains(err.Error(), `images["nope"]`)) {
			t.Errorf("images[%q] = %q: %v, want InvalidArgument naming it", name, image, err)
		}
	}
	if cur, _ := e.svc.GetGroup(e.ctx, auth.Admin, g.Metadata.ID); cur.Spec.Containers[0].Image != "busybox:2" {
		t.Errorf("a refused update changed the image: %q", cur.Spec.Containers[0].Image)
	}
}

// activeDeadlineSeconds is set or lowered by an update, as a pod's; a
// higher one or zero is refused and changes nothing.
func TestUpdateDeadline(t *testing.T) {
	e := newEnv(t, false)
	g, _, err := e.svc.CreateGroup(e.ctx, auth.Admin, groupSpec("deadline", 1, 2))
	if err != nil {
		t.Fatal(err)
	}
	set := func(d int64) (*apiv1.ContainerGroup, error) {
		return e.svc.UpdateGroup(e.ctx, auth.Admin, g.Metadata.ID, apiv1.GroupUpdate{ActiveDeadlineSeconds: &d})
	}
	for _, d := range []int64{600, 60} {
		if up, err := set(d); err != nil || *up.Spec.ActiveDeadlineSeconds != d {
			t.Fatalf("set %d: %v %+v", d, err, up)
		}
	}
	if _, err := set(120); !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), "activeDeadlineSeconds: 120 is more than the group's 60") {
		t.Fatalf("raised: %v", err)
	}
	if _, err := set(0); !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), "activeDeadlineSeconds") {
		t.Fatalf("zero: %v", err)
	}
	if cur, _ := e.svc.GetGroup(e.ctx, auth.Admin, g.Metadata.ID); *cur.Spec.ActiveDeadlineSeconds != 60 {
		t.Fatalf("a refused update changed it: %d", *cur.Spec.ActiveDeadlineSeconds)
	}
}

// A resize changes app containers' CPU and memory within the size the
// group was given (rounded up: cpu 0.3 is a 0.5 vCPU instance); a name of
// no app container, an init container, or more than the instance has is
// refused, naming it, and changes nothing.
func TestUpdateResources(t *testing.T) {
	e := newEnv(t, true)
	e.vswitch(t, "vsw-a", "zone-a", "198.19.128.0/24")
	e.host(t, "h1", "zone-a", 16000, 65536, 100)
	spec := groupSpec("resize", 0.3, 1)
	spec.Spec.Containers = []apiv1.Container{{Name: "a", Image: "busybox", CPU: 0.2, Memory: 0.25}, {Name: "b", Image: "busybox", CPU: 0.1}}
	spec.Spec.InitContainers = []apiv1.Container{{Name: "setup", Image: "busybox"}}
	g, _, err := e.svc.CreateGroup(e.ctx, auth.Admin, spec)
	if err != nil {
		t.Fatal(err)
	}
	g = e.waitState(t, g.Metadata.ID, apiv1.StatePending)
	if g.Status.MilliCPU != 500 || g.Status.MemoryMiB != 1024 {
		t.Fatalf("size %d/%d, want 500/1024", g.Status.MilliCPU, g.Status.MemoryMiB)
	}
	resize := func(r map[string]apiv1.ContainerResources) (*apiv1.ContainerGroup, error) {
		return e.svc.UpdateGroup(e.ctx, auth.Admin, g.Metadata.ID, apiv1.GroupUpdate{Resources: r})
	}
	up, err := resize(map[string]apiv1.ContainerResources{"a": {CPU: 0.4, Memory: 0.5}})
	if err != nil || up.Spec.Containers[0].CPU != 0.4 || up.Spec.Containers[0].Memory != 0.5 || up.Spec.Containers[1].CPU != 0.1 {
		t.Fatalf("resize within the size: %v %+v", err, up)
	}
	for _, c := range []struct {
		res  map[string]apiv1.ContainerResources
		says string
	}{
		{map[string]apiv1.ContainerResources{"a": {CPU: 0.5, Memory: 0.5}}, "0.6 vCPU / 0.5 GiB together, more than the instance's size, 0.5 vCPU / 1 GiB"},
		{map[string]apiv1.ContainerResources{"b": {CPU: 0.1, Memory: 2}}, "more than the instance's size"},
		{map[string]apiv1.ContainerResources{"nope": {CPU: 0.1}}, `resources["nope"]: the group has no container of that name`},
		{map[string]apiv1.ContainerResources{"setup": {CPU: 0.1}}, `resources["setup"]: init containers are not resized`},
		{map[string]apiv1.ContainerResources{"a": {CPU: -1}}, "cpu"},
	} {
		if _, err := resize(c.res); !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("resize %v: %v, want InvalidArgument saying %q", c.res, err, c.says)
		}
	}
	if cur, _ := e.svc.GetGroup(e.ctx, auth.Admin, g.Metadata.ID); cur.Spec.Containers[0].CPU != 0.4 || cur.Spec.Containers[1].Memory != 0 {
		t.Errorf("a refused resize changed the spec: %+v", cur.Spec.Containers)
	}
}

// Ephemeral containers are added to a group (kubectl debug): one given
// again as it is changes nothing, one changed is refused, and one with
// ports or resources, or a target that is no app container, is refused
// naming the field.
func TestUpdateEphemeralContainers(t *testing.T) {
	e := newEnv(t, false)
	g, _, err := e.svc.CreateGroup(e.ctx, auth.Admin, groupSpec("debug", 1, 2))
	if err != nil {
		t.Fatal(err)
	}
	dbg := apiv1.EphemeralContainer{Container: apiv1.Container{Name: "debugger", Image: "busybox", Stdin: true, TTY: true}, TargetContainerName: "app"}
	add := func(cs ...apiv1.EphemeralContainer) (*apiv1.ContainerGroup, error) {
		return e.svc.UpdateGroup(e.ctx, auth.Admin, g.Metadata.ID, apiv1.GroupUpdate{EphemeralContainers: cs})
	}
	for range 2 {
		if up, err := add(dbg); err != nil || len(up.Spec.EphemeralContainers) != 1 || up.Spec.EphemeralContainers[0].TargetContainerName != "app" {
			t.Fatalf("add: %v %+v", err, up)
		}
	}
	changed := dbg
	changed.Image = "busybox:2"
	withPort := apiv1.EphemeralContainer{Container: apiv1.Container{Name: "p", Image: "busybox", Ports: []apiv1.Port{{ContainerPort: 80}}}}
	withCPU := apiv1.EphemeralContainer{Container: apiv1.Container{Name: "c", Image: "busybox", CPU: 1}}
	noTarget := apiv1.EphemeralContainer{Container: apiv1.Container{Name: "t", Image: "busybox"}, TargetContainerName: "nope"}
	clash := apiv1.EphemeralContainer{Container: apiv1.Container{Name: "app", Image: "busybox"}}
	for _, c := range []struct {
		add  apiv1.EphemeralContainer
		says string
	}{
		{changed, `ephemeralContainers["debugger"]: the group has it already`},
		{withPort, "ports, probes or lifecycle hooks"},
		{withCPU, "resources of their own"},
		{noTarget, `targetContainerName: "nope" is no app container`},
		{clash, `"app"`},
	} {
		if _, err := add(c.add); !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: %v, want InvalidArgument saying %q", c.add.Name, err, c.says)
		}
	}
}
