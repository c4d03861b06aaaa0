package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/poll"
)

func TestMain(m *testing.M) {
	quietLogs()
	m.Run()
}

func rawRequest(t *testing.T, r *running, method, path, token, body string) (int, apiv1.Status) {
	t.Helper()
	req, _ := http.NewRequest(method, r.srv.URL()+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st apiv1.Status
	_ = json.NewDecoder(resp.Body).Decode(&st)
	return resp.StatusCode, st
}

// Bad requests get 401/422 with the field and what is allowed, and store nothing.
func TestErrorsAtTheEdge(t *testing.T) {
	r := start(t, t.TempDir())
	ctx := context.Background()
	if code, _ := rawRequest(t, r, "GET", "/v1/containergroups", "", ""); code != http.StatusUnauthorized {
		t.Fatalf("no token: %d", code)
	}
	if code, st := rawRequest(t, r, "GET", "/v1/containergroups", "not-a-token", ""); code != http.StatusUnauthorized || st.Reason != "Unauthorized" {
		t.Fatalf("unknown token: %d %+v", code, st)
	}
	cases := []struct{ body, field, says string }{
		{`{"metadata":{"name":"a"},"spec":{"containers":[{"name":"app","image":"x"}],"hostNetwork":true}}`, "hostNetwork", "LoadBalancer"},
		{`{"metadata":{"name":"a"},"spec":{"containers":[{"name":"app","image":"x","securityContext":{"privileged":true}}]}}`, "spec.containers[0].securityContext.privileged", "capabilities"},
		{`{"metadata":{"name":"a"},"spec":{"cpu":2,"containers":[{"name":"app","image":"x"}]}}`, "spec.memory", "required"},
		{`{"metadata":{"name":"a"},"spec":{"containers":[]}}`, "spec.containers", "at least one"},
		{`not json`, "body", "JSON"},
		// Tried as an attacker would: each was accepted with 201 before.
		{`{"metadata":{"name":"a"},"spec":{"containers":[{"name":"app","image":"x","securityContext":{"capabilities":{"add":["ALL"]}}}]}}`,
			"spec.containers[0].securityContext.capabilities.add[0]", "allowed: AUDIT_WRITE, CHOWN"},
		{`{"metadata":{"name":"a"},"spec":{"containers":[{"name":"app","image":"x","securityContext":{"capabilities":{"add":["NET_ADMIN","SYS_MODULE"]}}}]}}`,
			"spec.containers[0].securityContext.capabilities.add[1]", "SYS_MODULE may not be added"},
		{`{"metadata":{"name":"a"},"spec":{"initContainers":[{"name":"i","image":"x","securityContext":{"capabilities":{"add":["CAP_SYS_ADMIN"]}}}],"containers":[{"name":"app","image":"x"}]}}`,
			"spec.initContainers[0].securityContext.capabilities.add[0]", "SYS_ADMIN may not be added"},
		{`{"metadata":{"name":"a"},"spec":{"containers":[{"name":"app","image":"x","securityContext":{"seccompProfile":"Unconfined"}}]}}`,
			"spec.containers[0].securityContext.seccompProfile", "allowed: RuntimeDefault"},
	}
	for _, c := range cases {
		code, st := rawRequest(t, r, "POST", "/v1/containergroups", r.srv.AdminToken(), c.body)
		if code != http.StatusUnprocessableEntity || st.Reason != "Invalid" {
			t.Fatalf("%s: %d %+v", c.body, code, st)
		}
		found := false
		for _, f := range st.Fields {
			found = found || (f.Field == c.field && strings.Contains(f.Message, c.says))
		}
		if !found {
			t.Errorf("%s: fields %v do not name %s saying %q", c.body, st.Fields, c.field, c.says)
		}
	}
	// A body over the limit is 413 naming it (a 3 MiB body was a 503 from
	// etcd), and so are files past what a group may hold.
	big := `{"metadata":{"name":"a"},"spec":{"containers":[{"name":"app","image":"x","env":[{"name":"A","value":"` + strings.Repeat("x", 3<<20) + `"}]}]}}`
	if code, st := rawRequest(t, r, "POST", "/v1/containergroups", r.srv.AdminToken(), big); code != http.StatusRequestEntityTooLarge ||
		st.Reason != "RequestEntityTooLarge" || !strings.Contains(st.Message, "at most 1 MiB") {
		t.Fatalf("a 3 MiB body: %d %+v", code, st)
	}
	files := func(n int) string {
		return `{"files":[{"path":"f","content":"` + base64.StdEncoding.EncodeToString(make([]byte, n)) + `"}]}`
	}
	code, st := rawRequest(t, r, "POST", "/v1/containergroups", r.srv.AdminToken(),
		`{"metadata":{"name":"files"},"spec":{"containers":[{"name":"app","image":"x"}],"volumes":[{"name":"a","files":`+files(500<<10)+`},{"name":"b","files":`+files(1)+`}]}}`)
	if code != http.StatusCreated {
		t.Fatalf("a group with 500 KiB of files: %d %+v", code, st)
	}
	list, err := r.admin.ListGroups(ctx, client.ListOptions{})
	if err != nil || len(list.Items) != 1 {
		t.Fatalf("%v %v", list, err)
	}
	filesID := list.Items[0].Metadata.ID
	if code, st := rawRequest(t, r, "PATCH", "/v1/containergroups/"+filesID, r.srv.AdminToken(), `{"files":{"b":`+files(400<<10)+`}}`); code != 422 ||
		len(st.Fields) != 1 || st.Fields[0].Field != "spec.volumes" || !strings.Contains(st.Fields[0].Message, "768 KiB") {
		t.Fatalf("an update to 900 KiB of files: %d %+v", code, st)
	}
	if _, err := r.admin.DeleteGroup(ctx, filesID, client.DeleteOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	if code, st := rawRequest(t, r, "GET", "/v1/containergroups?limit=-1", r.srv.AdminToken(), ""); code != 422 || st.Fields[0].Field != "limit" {
		t.Fatalf("bad limit: %d %+v", code, st)
	}
	if code, _ := rawRequest(t, r, "GET", "/v1/containergroups/eci-nope", r.srv.AdminToken(), ""); code != http.StatusNotFound {
		t.Fatalf("missing group: %d", code)
	}
	list, err = r.admin.ListGroups(ctx, client.ListOptions{})
	if err != nil || len(list.Items) != 0 {
		t.Fatalf("refused requests stored %d groups (%v)", len(list.Items), err)
	}
	tenant := r.token(t, apiv1.TokenSpec{Kind: apiv1.TokenTenant, Tenant: "acme"})
	if _, err := tenant.ListHosts(ctx); !errdefs.IsPermissionDenied(err) {
		t.Fatalf("a tenant listed hosts: %v", err)
	}
	var apiErr *client.APIError
	if _, _, err := tenant.CreateGroup(ctx, &apiv1.ContainerGroup{}); !errors.As(err, &apiErr) || apiErr.Status.Code != 422 || !errdefs.IsInvalid(err) {
		t.Fatalf("client error of an invalid create: %v", err)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, _ := rawRequest(t, r, "GET", path, "", ""); code != 200 {
			t.Errorf("%s: %d", path, code)
		}
	}
	req, _ := http.NewRequest("GET", r.srv.URL()+"/metrics", nil)
	resp, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	resp.Body.Close()
	if !strings.Contains(buf.String(), `eci_api_requests_total{code="422",route="POST /v1/containergroups"}`) {
		t.Fatalf("/metrics lacks the request counter:\n%.2000s", buf.String())
	}
}

// The whole path over HTTP with a fake agent: create -> Running, tenant
// isolation, graceful delete confirmed by the agent.
func TestGroupLifecycleOverHTTP(t *testing.T) {
	r := start(t, t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r.fakeHost(ctx, t, "h1")

	acme := r.token(t, apiv1.TokenSpec{Kind: apiv1.TokenTenant, Tenant: "acme"})
	bolt := r.token(t, apiv1.TokenSpec{Kind: apiv1.TokenTenant, Tenant: "bolt"})
	g, created, err := acme.CreateGroup(ctx, group("web"))
	if err != nil || !created {
		t.Fatal(err)
	}
	var cur *apiv1.ContainerGroup
	poll.Eventually(t, 20*time.Second, "group Running", func() error {
		cur, err = acme.GetGroup(ctx, g.Metadata.ID)
		if err != nil {
			return err
		}
		if cur.Status.State != apiv1.StateRunning {
			return fmt.Errorf("status %+v", cur.Status)
		}
		return nil
	})
	if cur.Status.InstanceSpec != "2.0-4.0Gi" || cur.Status.IP == "" || len(cur.Status.Containers) != 1 {
		t.Fatalf("running group %+v", cur.Status)
	}
	if _, err := bolt.GetGroup(ctx, g.Metadata.ID); !errdefs.IsNotFound(err) {
		t.Fatalf("bolt read acme's group: %v", err)
	}
	if l, _ := bolt.ListGroups(ctx, client.ListOptions{}); len(l.Items) != 0 {
		t.Fatalf("bolt lists %d groups", len(l.Items))
	}
	if _, err := acme.DeleteGroup(ctx, g.Metadata.ID, client.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 20*time.Second, "group gone after a graceful delete", func() error {
		if _, err := acme.GetGroup(ctx, g.Metadata.ID); !errdefs.IsNotFound(err) {
			return fmt.Errorf("get: %v", err)
		}
		return nil
	})
	evs, err := r.admin.ListEvents(ctx, g.Metadata.ID)
	if err != nil || len(evs) < 3 {
		t.Fatalf("events of the group: %v %v", err, evs)
	}
}

// A watch resumed from a resourceVersion gets every change after it, across a
// restart of the server; a compacted version gets 410 Gone.
func TestWatchResumesAcrossServerRestart(t *testing.T) {
	dir := t.TempDir()
	r := start(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	first, _, err := r.admin.CreateGroup(ctx, group("one"))
	if err != nil {
		t.Fatal(err)
	}
	events, err := r.admin.WatchGroups(ctx, client.ListOptions{}, "")
	if err != nil {
		t.Fatal(err)
	}
	lastRV := ""
	for ev := range events {
		if ev.Err != nil {
			t.Fatal(ev.Err)
		}
		lastRV = ev.Object.Metadata.ResourceVersion
		if ev.Type == apiv1.Bookmark {
			break
		}
	}
	token := r.srv.AdminToken()
	r.stop()

	r = start(t, dir)
	if r.srv.AdminToken() != token {
		t.Fatal("the admin token changed across a restart")
	}
	second, _, err := r.admin.CreateGroup(ctx, group("two"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.admin.DeleteGroup(ctx, first.Metadata.ID, client.DeleteOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	events, err = r.admin.WatchGroups(ctx, client.ListOptions{}, lastRV)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for ev := range events {
		if ev.Err != nil {
			t.Fatal(ev.Err)
		}
		if ev.Type == apiv1.Bookmark {
			continue
		}
		got = append(got, string(ev.Type)+" "+ev.Object.Metadata.Name)
		if ev.Type == apiv1.Deleted {
			break
		}
	}
	// The placer may also have updated the groups (no vSwitch: Unschedulable);
	// what must be there: the create after the restart, then the delete.
	seen := strings.Join(got, ",")
	if !strings.Contains(seen, "ADDED two") || got[len(got)-1] != "DELETED one" {
		t.Fatalf("resumed watch saw %v, want ADDED two and then DELETED one", got)
	}
	if _, err := r.admin.GetGroup(ctx, second.Metadata.ID); err != nil {
		t.Fatalf("group created before the restart lost: %v", err)
	}
	if _, err := r.srv.st.Client.Compact(ctx, mustRev(t, r)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.admin.WatchGroups(ctx, client.ListOptions{}, lastRV); !errdefs.IsGone(err) {
		t.Fatalf("watch from a compacted version: want Gone, got %v", err)
	}
}

func mustRev(t *testing.T, r *running) int64 {
	t.Helper()
	resp, err := r.srv.st.Client.Get(context.Background(), "x")
	if err != nil {
		t.Fatal(err)
	}
	return resp.Header.Revision
}
