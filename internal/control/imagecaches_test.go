package control

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/auth"
	"github.com/eci-dev/eci/internal/errdefs"
)

// Image caches: a tenant's own, checked as written; a host reads only its
// own caches (with their credentials); the status is made of the hosts'
// reports; a group goes to the host holding its images and names the
// tenant's cache, never another tenant's.
func TestImageCaches(t *testing.T) {
	e := newEnv(t, true)
	e.vswitch(t, "vsw-a", "zone-a", "198.18.7.0/24")
	e.host(t, "big", "zone-a", 64000, 131072, 100) // most free: spread would pick it
	e.host(t, "small", "zone-a", 8000, 16384, 100)
	for _, name := range []string{"acme", "umbrella"} {
		if _, err := e.svc.PutTenant(e.ctx, auth.Admin, &apiv1.Tenant{Metadata: apiv1.ObjectMeta{Name: name}}); err != nil {
			t.Fatal(err)
		}
	}
	acme, umbrella := tenantPrincipal("acme"), tenantPrincipal("umbrella")

	for _, bad := range []struct {
		spec  apiv1.ImageCacheSpec
		field string
	}{
		{apiv1.ImageCacheSpec{}, "spec.images"},
		{apiv1.ImageCacheSpec{Images: []string{"Not An Image"}}, "spec.images[0]"},
		{apiv1.ImageCacheSpec{Images: []string{"a", "a"}}, "spec.images[1]"},
		{apiv1.ImageCacheSpec{Images: []string{"a"}, ImageCacheSize: 100000}, "spec.imageCacheSize"},
		{apiv1.ImageCacheSpec{Images: []string{"a"}, HostsPerZone: -1}, "spec.hostsPerZone"},
	} {
		_, err := e.svc.CreateImageCache(e.ctx, acme, &apiv1.ImageCache{Metadata: apiv1.ObjectMeta{Name: "bad"}, Spec: bad.spec})
		if !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), bad.field) {
			t.Errorf("%+v: %v, want invalid naming %s", bad.spec, err, bad.field)
		}
	}
	ic, err := e.svc.CreateImageCache(e.ctx, acme, &apiv1.ImageCache{Metadata: apiv1.ObjectMeta{Name: "app"}, Spec: apiv1.ImageCacheSpec{
		Images:                   []string{"reg.example:5000/app:v1", "busybox"},
		ImageRegistryCredentials: []apiv1.RegistryCredential{{Server: "reg.example:5000", Username: "u", Password: "secret"}},
		HostsPerZone:             1,
	}})
	if err != nil {
		t.Fatal(err)
	}
	if ic.Spec.ImageRegistryCredentials[0].Password != "" || ic.Spec.Images[1] != "docker.io/library/busybox:latest" || ic.Status.Phase != apiv1.ImageCacheCreating {
		t.Fatalf("created %+v: want no password, images as containerd names them, Creating", ic)
	}
	if _, err := e.svc.GetImageCache(e.ctx, umbrella, ic.Metadata.ID); !errdefs.IsNotFound(err) {
		t.Fatalf("another tenant read the cache: %v", err)
	}
	if l, _ := e.svc.ListImageCaches(e.ctx, umbrella); len(l.Items) != 0 {
		t.Fatalf("another tenant lists %v", l.Items)
	}
	if err := e.svc.DeleteImageCache(e.ctx, umbrella, ic.Metadata.ID); !errdefs.IsNotFound(err) {
		t.Fatalf("another tenant deleted the cache: %v", err)
	}

	// One host of the zone keeps it (hostsPerZone 1); only its agent reads
	// it, with the password.
	var keeper, other string
	for _, h := range []string{"big", "small"} {
		got, err := e.svc.HostImageCaches(e.ctx, hostPrincipal(h), h)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Items) == 1 {
			keeper = h
			if got.Items[0].Spec.ImageRegistryCredentials[0].Password != "secret" {
				t.Fatal("the host's agent did not get the cache's credential")
			}
		} else {
			other = h
		}
	}
	if keeper == "" || other == "" {
		t.Fatalf("hostsPerZone 1 gave the cache to keeper %q, other %q", keeper, other)
	}
	for _, p := range []auth.Principal{auth.Admin, acme, hostPrincipal(other)} {
		if _, err := e.svc.HostImageCaches(e.ctx, p, keeper); !errdefs.IsPermissionDenied(err) {
			t.Fatalf("%s read the host's caches: %v", p, err)
		}
	}

	// The keeper pulled one image and failed the other: Failed, saying why.
	report := func(host string, rep apiv1.HostImages) {
		t.Helper()
		if err := e.svc.ReportHostImages(e.ctx, hostPrincipal(host), host, rep); err != nil {
			t.Fatal(err)
		}
		if err := e.svc.SyncImageCaches(e.ctx); err != nil {
			t.Fatal(err)
		}
	}
	busybox := apiv1.HostImage{Refs: []string{"docker.io/library/busybox:latest"}, SizeBytes: 4 << 20}
	report(keeper, apiv1.HostImages{Images: []apiv1.HostImage{busybox},
		Failed: []apiv1.ImagePullFailure{{Cache: ic.Metadata.ID, Image: "reg.example:5000/app:v1", Message: "unauthorized"}}})
	got, _ := e.svc.GetImageCache(e.ctx, acme, ic.Metadata.ID)
	if got.Status.Phase != apiv1.ImageCacheFailed || !strings.Contains(got.Status.Message, "unauthorized") || got.Status.Progress != "50%" {
		t.Fatalf("status %+v: want Failed, 50%%, saying unauthorized", got.Status)
	}
	app := apiv1.HostImage{Refs: []string{"reg.example:5000/app:v1", "reg.example:5000/app@sha256:" + strings.Repeat("a", 64)}, SizeBytes: 100 << 20, PrivateTo: []string{"acme"}}
	report(keeper, apiv1.HostImages{Images: []apiv1.HostImage{busybox, app}})
	got, _ = e.svc.GetImageCache(e.ctx, acme, ic.Metadata.ID)
	if got.Status.Phase != apiv1.ImageCacheReady || got.Status.HostsReady != 1 || got.Status.SizeBytes != 104<<20 {
		t.Fatalf("status %+v: want Ready on 1 host, 104 MiB", got.Status)
	}

	// acme's group of those images goes to the keeper (not the policy's
	// pick) and names the cache; umbrella's goes there too (the images
	// are there) but matches no cache of its own.
	mk := func(p auth.Principal, name string, edit func(*apiv1.ContainerGroupSpec)) *apiv1.ContainerGroup {
		t.Helper()
		g := groupSpec(name, 1, 2)
		g.Spec.Containers[0].Image = "reg.example:5000/app:v1"
		if edit != nil {
			edit(&g.Spec)
		}
		out, _, err := e.svc.CreateGroup(e.ctx, p, g)
		if err != nil {
			t.Fatal(err)
		}
		return e.waitState(t, out.Metadata.ID, apiv1.StatePending)
	}
	g := mk(acme, "hit", nil)
	if g.Status.Host != keeper || g.Status.MatchedImageCache != ic.Metadata.ID {
		t.Fatalf("acme's group went to %s matching %q; want %s matching %s", g.Status.Host, g.Status.MatchedImageCache, keeper, ic.Metadata.ID)
	}
	evs, err := e.svc.ListEvents(e.ctx, acme, g.Metadata.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !hasEventSaying(evs, "SuccessfulHitImageCache", hitMessage(ic.Metadata.ID)) {
		t.Fatalf("events %+v: want SuccessfulHitImageCache naming the cache", evs)
	}
	// umbrella's group of the same image: the keeper's copy is acme's
	// private one, which counts for nothing; spread decides.
	if g := mk(umbrella, "theirs", nil); g.Status.Host != "big" || g.Status.MatchedImageCache != "" {
		t.Fatalf("umbrella's group went to %s matching %q; want big (spread) matching none", g.Status.Host, g.Status.MatchedImageCache)
	}
	// Nor does it make umbrella's own cache of that image Ready.
	theirs, err := e.svc.CreateImageCache(e.ctx, umbrella, &apiv1.ImageCache{Metadata: apiv1.ObjectMeta{Name: "probe"}, Spec: apiv1.ImageCacheSpec{Images: []string{"reg.example:5000/app:v1"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.svc.SyncImageCaches(e.ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.svc.GetImageCache(e.ctx, umbrella, theirs.Metadata.ID); got.Status.HostsReady != 0 || got.Status.SizeBytes != 0 {
		t.Fatalf("umbrella's cache of acme's private image: %+v; want no host ready", got.Status)
	}
	// A group naming another tenant's cache, or one that does not exist,
	// matches nothing.
	for _, id := range []string{ic.Metadata.ID, "imc-0000000000000000"} {
		if g := mk(umbrella, "pinned", func(s *apiv1.ContainerGroupSpec) { s.ImageCacheID = id }); g.Status.MatchedImageCache != "" {
			t.Fatalf("umbrella's group naming %s matched %q", id, g.Status.MatchedImageCache)
		}
	}
	// A perfect match wants every image of the group in the cache; no
	// match at all when the group says so.
	if g := mk(acme, "perfect", func(s *apiv1.ContainerGroupSpec) {
		s.ImageCachePerfectMatch = true
		s.InitContainers = []apiv1.Container{{Name: "init", Image: "alpine"}}
	}); g.Status.MatchedImageCache != "" {
		t.Fatalf("a perfect match took a cache without alpine: %q", g.Status.MatchedImageCache)
	}
	if g := mk(acme, "perfect-hit", func(s *apiv1.ContainerGroupSpec) {
		s.ImageCachePerfectMatch = true
		s.InitContainers = []apiv1.Container{{Name: "init", Image: "busybox"}}
	}); g.Status.MatchedImageCache != ic.Metadata.ID {
		t.Fatalf("a perfect match of the cache's two images matched %q", g.Status.MatchedImageCache)
	}
	// A second cache of acme holding busybox alone: automatic matching
	// takes the one with more of the group's images; a pin takes its own.
	small, err := e.svc.CreateImageCache(e.ctx, acme, &apiv1.ImageCache{Metadata: apiv1.ObjectMeta{Name: "small"}, Spec: apiv1.ImageCacheSpec{Images: []string{"busybox"}, HostsPerZone: 1}})
	if err != nil {
		t.Fatal(err)
	}
	both := func(s *apiv1.ContainerGroupSpec) {
		s.InitContainers = []apiv1.Container{{Name: "init", Image: "busybox"}}
	}
	if g := mk(acme, "auto", both); g.Status.MatchedImageCache != ic.Metadata.ID || g.Status.Host != keeper {
		t.Fatalf("automatic matching took %q on %s; want %s", g.Status.MatchedImageCache, g.Status.Host, ic.Metadata.ID)
	}
	if g := mk(acme, "pin", func(s *apiv1.ContainerGroupSpec) { both(s); s.ImageCacheID = small.Metadata.ID }); g.Status.MatchedImageCache != small.Metadata.ID {
		t.Fatalf("a pin to %s matched %q", small.Metadata.ID, g.Status.MatchedImageCache)
	}
	if g := mk(acme, "none", func(s *apiv1.ContainerGroupSpec) { s.DisableImageCacheMatch = true }); g.Status.MatchedImageCache != "" || g.Status.Host != keeper {
		t.Fatalf("disableImageCacheMatch: matched %q on %s; want none, on %s (the images are still there)", g.Status.MatchedImageCache, g.Status.Host, keeper)
	}
	if g := mk(acme, "always", func(s *apiv1.ContainerGroupSpec) { s.Containers[0].ImagePullPolicy = apiv1.PullAlways }); g.Status.MatchedImageCache != "" {
		t.Fatalf("a group pulling Always matched %q", g.Status.MatchedImageCache)
	}
	if err := e.svc.SyncImageCaches(e.ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.svc.GetImageCache(e.ctx, acme, ic.Metadata.ID); got.Status.LastMatchedTime == nil {
		t.Fatal("the cache's lastMatchedTime was not kept")
	}
}

// A tenant makes at most maxImageCachesPerTenant caches.
func TestImageCacheLimit(t *testing.T) {
	e := newEnv(t, false)
	for i := 0; i <= maxImageCachesPerTenant; i++ {
		_, err := e.svc.CreateImageCache(e.ctx, auth.Admin, &apiv1.ImageCache{Metadata: apiv1.ObjectMeta{Name: "c"}, Spec: apiv1.ImageCacheSpec{Images: []string{"busybox"}}})
		if i < maxImageCachesPerTenant && err != nil {
			t.Fatal(err)
		}
		if i == maxImageCachesPerTenant && !errdefs.IsPermissionDenied(err) {
			t.Fatalf("cache %d: %v; want refused", i+1, err)
		}
	}
	// A credential for none of the images' registries is refused.
	_, err := e.svc.CreateImageCache(e.ctx, tenantPrincipal("x"), &apiv1.ImageCache{Metadata: apiv1.ObjectMeta{Name: "c"}, Spec: apiv1.ImageCacheSpec{
		Images: []string{"busybox"}, ImageRegistryCredentials: []apiv1.RegistryCredential{{Server: "reg.example", Username: "u", Password: "p"}}}})
	if !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), "spec.imageRegistryCredentials[0].server") {
		t.Fatalf("a credential of no image's registry: %v", err)
	}
}

// A cache with retentionDays goes when they end.
func TestImageCacheRetention(t *testing.T) {
	e := newEnv(t, false)
	ic, err := e.svc.CreateImageCache(e.ctx, auth.Admin, &apiv1.ImageCache{Metadata: apiv1.ObjectMeta{Name: "old"}, Spec: apiv1.ImageCacheSpec{Images: []string{"busybox"}, RetentionDays: 2}})
	if err != nil {
		t.Fatal(err)
	}
	if ic.Metadata.Tenant != "default" || ic.Status.ExpireDateTime == nil {
		t.Fatalf("created %+v: want the default tenant's, with an expiry", ic)
	}
	e.clock.Add(47 * time.Hour)
	if err := e.svc.SyncImageCaches(e.ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.GetImageCache(e.ctx, auth.Admin, ic.Metadata.ID); err != nil {
		t.Fatalf("removed before its retention ended: %v", err)
	}
	e.clock.Add(2 * time.Hour)
	if err := e.svc.SyncImageCaches(e.ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.GetImageCache(e.ctx, auth.Admin, ic.Metadata.ID); !errdefs.IsNotFound(err) {
		t.Fatalf("kept past its retention: %v", err)
	}
}

// A host's report is cut to size, never refused for its failures or
// owners: one long message must not stop the host's whole report.
func TestHostImagesCut(t *testing.T) {
	rep := apiv1.HostImages{Images: []apiv1.HostImage{{Refs: []string{"reg.example/a:1"}, PrivateTo: make([]string, 300)}}}
	for i := 0; i < 300; i++ {
		rep.Failed = append(rep.Failed, apiv1.ImagePullFailure{Cache: "imc-0123456789abcdef", Image: "reg.example/a:1", Message: strings.Repeat("é", 2000)})
	}
	if err := validateHostImages(&rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Failed) != apiv1.MaxHostImageFailures || len(rep.Failed[0].Message) > 256 || !utf8.ValidString(rep.Failed[0].Message) || len(rep.Images[0].PrivateTo) != 256 {
		t.Fatalf("cut to %d failures, a message of %d bytes, %d owners", len(rep.Failed), len(rep.Failed[0].Message), len(rep.Images[0].PrivateTo))
	}
}
