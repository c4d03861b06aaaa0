package control

import (
	"strings"
	"testing"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/auth"
	"github.com/eci-dev/eci/internal/errdefs"
)

// Data caches: a tenant's own, checked as written, one per bucket and
// path; a host reads only its own list; the status is made of the hosts'
// reports; a group's data cache volume is filled in from its tenant's
// cache (never another's, never what the group sent), and the group goes
// to a host holding the data.
func TestDataCaches(t *testing.T) {
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
	src := func(url string) apiv1.DataCacheSource {
		return apiv1.DataCacheSource{Type: apiv1.DataSourceURL, Options: map[string]string{"url": url}}
	}
	for _, bad := range []struct {
		spec  apiv1.DataCacheSpec
		field string
	}{
		{apiv1.DataCacheSpec{Path: "m", DataSource: src("http://h/m")}, "spec.path"},
		{apiv1.DataCacheSpec{Path: "/m/../x", DataSource: src("http://h/m")}, "spec.path"},
		{apiv1.DataCacheSpec{Path: "/", DataSource: src("http://h/m")}, "spec.path"},
		{apiv1.DataCacheSpec{Path: "/m", Bucket: "Not_A_Label", DataSource: src("http://h/m")}, "spec.bucket"},
		{apiv1.DataCacheSpec{Path: "/m", DataSource: src("file:///etc/shadow")}, `spec.dataSource.options["url"]`},
		{apiv1.DataCacheSpec{Path: "/m", DataSource: src("http://user:pw@h/m")}, `spec.dataSource.options["url"]`},
		{apiv1.DataCacheSpec{Path: "/m", DataSource: apiv1.DataCacheSource{Type: "NAS"}}, "spec.dataSource.type"},
		{apiv1.DataCacheSpec{Path: "/m", DataSource: apiv1.DataCacheSource{Type: apiv1.DataSourceURL, Options: map[string]string{"url": "http://h/m", "format": "zip"}}}, `spec.dataSource.options["format"]`},
		{apiv1.DataCacheSpec{Path: "/m", DataSource: apiv1.DataCacheSource{Type: apiv1.DataSourceURL, Options: map[string]string{"url": "http://h/m", "sha256": "abc"}}}, `spec.dataSource.options["sha256"]`},
		{apiv1.DataCacheSpec{Path: "/m", DataSource: apiv1.DataCacheSource{Type: apiv1.DataSourceURL, Options: map[string]string{"url": "http://h/m", "name": "../x"}}}, `spec.dataSource.options["name"]`},
		{apiv1.DataCacheSpec{Path: "/m", DataSource: src("http://h/m"), Size: 100000}, "spec.size"},
	} {
		_, err := e.svc.CreateDataCache(e.ctx, acme, &apiv1.DataCache{Metadata: apiv1.ObjectMeta{Name: "bad"}, Spec: bad.spec})
		if !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), bad.field) {
			t.Errorf("%+v: %v, want invalid naming %s", bad.spec, err, bad.field)
		}
	}
	if l, _ := e.svc.ListDataCaches(e.ctx, auth.Admin); len(l.Items) != 0 {
		t.Fatalf("refused creates left %d caches", len(l.Items))
	}
	dc, err := e.svc.CreateDataCache(e.ctx, acme, &apiv1.DataCache{Metadata: apiv1.ObjectMeta{Name: "model"},
		Spec: apiv1.DataCacheSpec{Path: "/models/m1", DataSource: src("https://data.example/m1.tar.gz?sig=secret"), HostsPerZone: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if dc.Spec.Bucket != apiv1.DefaultDataCacheBucket || dc.Spec.Size != apiv1.DefaultDataCacheSize || dc.Spec.DataSource.Options["format"] != apiv1.DataFormatTarGz || dc.Status.Phase != apiv1.DataCacheCreating {
		t.Fatalf("created %+v: want the default bucket and size, format tar.gz from the URL, Creating", dc)
	}
	if _, err := e.svc.CreateDataCache(e.ctx, acme, &apiv1.DataCache{Metadata: apiv1.ObjectMeta{Name: "again"},
		Spec: apiv1.DataCacheSpec{Path: "/models/m1", DataSource: src("http://h/other")}}); !errdefs.IsAlreadyExists(err) || !strings.Contains(err.Error(), "spec.path") {
		t.Fatalf("a second cache at the bucket's path: %v", err)
	}
	if _, err := e.svc.GetDataCache(e.ctx, umbrella, dc.Metadata.ID); !errdefs.IsNotFound(err) {
		t.Fatalf("another tenant read the cache: %v", err)
	}
	if err := e.svc.DeleteDataCache(e.ctx, umbrella, dc.Metadata.ID); !errdefs.IsNotFound(err) {
		t.Fatalf("another tenant deleted the cache: %v", err)
	}

	// One host of the zone fetches it ahead; only its agent reads its list.
	var keeper, other string
	for _, h := range []string{"big", "small"} {
		got, err := e.svc.HostDataCaches(e.ctx, hostPrincipal(h), h)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Items) == 1 {
			keeper = h
		} else {
			other = h
		}
	}
	if keeper == "" || other == "" {
		t.Fatalf("hostsPerZone 1 gave the cache to keeper %q, other %q", keeper, other)
	}
	if _, err := e.svc.HostDataCaches(e.ctx, hostPrincipal(other), keeper); !errdefs.IsPermissionDenied(err) {
		t.Fatalf("another host read the keeper's list: %v", err)
	}
	report := func(host string, rep apiv1.HostData) {
		t.Helper()
		if err := e.svc.ReportHostData(e.ctx, hostPrincipal(host), host, rep); err != nil {
			t.Fatal(err)
		}
		if err := e.svc.SyncDataCaches(e.ctx); err != nil {
			t.Fatal(err)
		}
	}
	report(keeper, apiv1.HostData{Failed: []apiv1.DataFetchFailure{{Cache: dc.Metadata.ID, Message: "GET https://data.example/m1.tar.gz: 503"}}})
	if got, _ := e.svc.GetDataCache(e.ctx, acme, dc.Metadata.ID); got.Status.Phase != apiv1.DataCacheFailed || !strings.Contains(got.Status.Message, "503") {
		t.Fatalf("status %+v: want Failed saying 503", got.Status)
	}
	report(keeper, apiv1.HostData{Caches: []apiv1.HostDataCache{{ID: dc.Metadata.ID, SizeBytes: 3 << 30}}})
	if got, _ := e.svc.GetDataCache(e.ctx, acme, dc.Metadata.ID); got.Status.Phase != apiv1.DataCacheAvailable || got.Status.HostsReady != 1 || got.Status.SizeBytes != 3<<30 {
		t.Fatalf("status %+v: want Available on 1 host, 3 GiB", got.Status)
	}

	mk := func(p auth.Principal, name string, vol apiv1.DataCacheVolume) (*apiv1.ContainerGroup, error) {
		t.Helper()
		g := groupSpec(name, 1, 2)
		g.Spec.Volumes = []apiv1.Volume{{Name: "model", DataCache: &vol}}
		g.Spec.Containers[0].VolumeMounts = []apiv1.VolumeMount{{Name: "model", MountPath: "/model"}}
		out, _, err := e.svc.CreateGroup(e.ctx, p, g)
		if err != nil {
			return nil, err
		}
		return e.waitState(t, out.Metadata.ID, apiv1.StatePending), nil
	}
	// acme's group: filled in from the cache (what it sent of id and
	// source replaced), placed on the keeper (not spread's pick).
	forged := apiv1.DataCacheSource{Type: apiv1.DataSourceURL, Options: map[string]string{"url": "http://evil.example/x"}}
	g, err := mk(acme, "reader", apiv1.DataCacheVolume{Path: "/models/m1", ID: "edc-0000000000000000", Source: &forged})
	if err != nil {
		t.Fatal(err)
	}
	v := g.Spec.Volumes[0].DataCache
	if v.ID != dc.Metadata.ID || v.Source.Options["url"] != dc.Spec.DataSource.Options["url"] || v.Size != dc.Spec.Size || g.Status.Host != keeper {
		t.Fatalf("group's volume %+v on %s; want cache %s's id, source and size, on %s", v, g.Status.Host, dc.Metadata.ID, keeper)
	}
	// umbrella names acme's bucket and path: no such cache of its own.
	if _, err := mk(umbrella, "thief", apiv1.DataCacheVolume{Path: "/models/m1", ID: dc.Metadata.ID}); !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), "spec.volumes[0].dataCache") {
		t.Fatalf("umbrella mounting acme's cache: %v", err)
	}
	if _, err := mk(acme, "typo", apiv1.DataCacheVolume{Bucket: "other", Path: "/models/m1"}); !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), "bucket other") {
		t.Fatalf("a bucket without the cache: %v", err)
	}
	// Removed: new groups can't name it; the keeper keeps its status no more.
	if err := e.svc.DeleteDataCache(e.ctx, acme, dc.Metadata.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := mk(acme, "late", apiv1.DataCacheVolume{Path: "/models/m1"}); !errdefs.IsInvalid(err) {
		t.Fatalf("a group naming a deleted cache: %v", err)
	}
}

// A data cache goes when its retention days end, and no sooner.
func TestDataCacheRetention(t *testing.T) {
	e := newEnv(t, false)
	dc, err := e.svc.CreateDataCache(e.ctx, auth.Admin, &apiv1.DataCache{Metadata: apiv1.ObjectMeta{Name: "old"}, Spec: apiv1.DataCacheSpec{
		Path: "/d", DataSource: apiv1.DataCacheSource{Type: apiv1.DataSourceURL, Options: map[string]string{"url": "http://h/d"}}, RetentionDays: 2}})
	if err != nil {
		t.Fatal(err)
	}
	if dc.Metadata.Tenant != "default" || dc.Status.ExpireDateTime == nil {
		t.Fatalf("created %+v: want the default tenant's, with an expiry", dc)
	}
	for _, step := range []struct {
		after time.Duration
		gone  bool
	}{{47 * time.Hour, false}, {2 * time.Hour, true}} {
		e.clock.Add(step.after)
		if err := e.svc.SyncDataCaches(e.ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.GetDataCache(e.ctx, auth.Admin, dc.Metadata.ID); errdefs.IsNotFound(err) != step.gone {
			t.Fatalf("after %v more: %v (want gone: %v)", step.after, err, step.gone)
		}
	}
}
