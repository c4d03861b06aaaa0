package console

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/auth"
	"github.com/eci-dev/eci/internal/billing"
	"github.com/eci-dev/eci/internal/control"
	"github.com/eci-dev/eci/internal/errdefs"
)

// fakeSessions trade the tokens admin and acme for sessions.
type fakeSessions struct {
	n    int
	live map[string]auth.Principal
}

func (f *fakeSessions) Login(_ *http.Request, token string) (string, error) {
	p, ok := map[string]auth.Principal{"admin": auth.Admin, "acme": {Kind: apiv1.TokenTenant, Tenant: "acme"}}[token]
	if !ok {
		return "", errors.New("this token is not valid: " + errdefs.ErrUnauthenticated.Error())
	}
	f.n++
	sess := fmt.Sprintf("session-%d", f.n)
	f.live[sess] = p
	return sess, nil
}

func (f *fakeSessions) Principal(_ *http.Request, sess string) (auth.Principal, error) {
	p, ok := f.live[sess]
	if !ok {
		return p, errdefs.ErrUnauthenticated
	}
	return p, nil
}

func (f *fakeSessions) Logout(_ *http.Request, sess string) { delete(f.live, sess) }

// fakeService answers as the real one would for two tenants' groups; the
// real one is tested through a browser (e2e TestConsoleInABrowser).
type fakeService struct{ groups []apiv1.ContainerGroup }

func (f *fakeService) ListGroups(_ context.Context, p auth.Principal, _ control.GroupFilter, _ int64, _ string) (*apiv1.List[apiv1.ContainerGroup], error) {
	out := &apiv1.List[apiv1.ContainerGroup]{}
	for _, g := range f.groups {
		if p.CanSeeGroup(g.Metadata.Tenant, "") {
			out.Items = append(out.Items, g)
		}
	}
	return out, nil
}
func (f *fakeService) ListHosts(context.Context, auth.Principal) ([]apiv1.Host, error) {
	return []apiv1.Host{{Metadata: apiv1.ObjectMeta{Name: "h1"}}}, nil
}
func (f *fakeService) Capacity(context.Context, auth.Principal) (*apiv1.Capacity, error) {
	return &apiv1.Capacity{}, nil
}
func (f *fakeService) ListEvents(context.Context, auth.Principal, string) ([]apiv1.Event, error) {
	return []apiv1.Event{{Reason: "Started", Message: `<script>alert(1)</script>`, LastTime: time.Now()}}, nil
}
func (f *fakeService) Bill(_ context.Context, p auth.Principal, q billing.Query) (*apiv1.Bill, error) {
	book, _ := billing.Parse([]byte(billing.DefaultBook))
	var recs []apiv1.UsageRecord
	for i := range f.groups {
		if u, ok := apiv1.UsageOf(&f.groups[i], time.Now()); ok && p.CanSeeGroup(u.Metadata.Tenant, "") {
			recs = append(recs, u)
		}
	}
	return book.Bill(context.Background(), recs, q)
}

func TestConsole(t *testing.T) {
	began := time.Now().Add(-2 * time.Hour)
	svc := &fakeService{}
	for _, tenant := range []string{"acme", "other"} {
		svc.groups = append(svc.groups, apiv1.ContainerGroup{
			Metadata: apiv1.ObjectMeta{ID: "eci-" + tenant, Name: tenant + "-web", Tenant: tenant, CreatedAt: began},
			Spec:     apiv1.ContainerGroupSpec{Tags: map[string]string{"team": `<b>` + tenant}},
			Status:   apiv1.ContainerGroupStatus{State: apiv1.StateRunning, MilliCPU: 2000, MemoryMiB: 4096, InstanceSpec: "2.0-4.0Gi", PendingAt: &began},
		})
	}
	sessions := &fakeSessions{live: map[string]auth.Principal{}}
	srv := httptest.NewTLSServer(New(svc, sessions).Handler())
	defer srv.Close()
	jar, _ := cookiejar.New(nil)
	c := srv.Client()
	c.Jar = jar
	get := func(path string) (*http.Response, string) {
		t.Helper()
		resp, err := c.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}
	post := func(path string, form url.Values, origin string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}

	// No session: the login page, with headers that allow no script.
	resp, body := get("/console/")
	if resp.Request.URL.Path != "/console/login" || !strings.Contains(body, `name="token"`) {
		t.Fatalf("without a session: %s %q", resp.Request.URL, body)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "script-src") {
		t.Fatalf("CSP %q", csp)
	}
	// Refused: another origin, a wrong token, a host's token.
	if resp, _ := post("/console/login", url.Values{"token": {"acme"}}, "https://evil.example"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a login from another origin: %d", resp.StatusCode)
	}
	for _, tok := range []string{"nope", ""} {
		if resp, body := post("/console/login", url.Values{"token": {tok}}, srv.URL); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "problem") {
			t.Fatalf("login with %q: %d %q", tok, resp.StatusCode, body)
		}
	}
	// A tenant: its group with its cost, not the other's; no hosts.
	resp, body = post("/console/login", url.Values{"token": {"acme"}}, srv.URL)
	if resp.Request.URL.Path != "/console/" || !strings.Contains(body, "eci-acme") || strings.Contains(body, "eci-other") || strings.Contains(body, `id="hosts">`+"\n<h2>Hosts") {
		t.Fatalf("acme's overview: %d %s", resp.StatusCode, body)
	}
	if !strings.Contains(body, "USD</td>") || strings.Contains(body, "<script>") || !strings.Contains(body, "&lt;script&gt;") {
		t.Fatalf("acme's overview: cost shown, event message escaped? %s", body)
	}
	resp, body = get("/console/cost.svg?range=24h&by=tag:team")
	if resp.Header.Get("Content-Type") != "image/svg+xml" || !strings.HasPrefix(strings.TrimSpace(body), "<svg") || !strings.Contains(body, `width="900" height="340"`) ||
		!strings.Contains(body, "&lt;b&gt;acme") || strings.Contains(body, "other") || strings.Contains(body, "<b>") {
		t.Fatalf("acme's chart by tag: %s %.600s", resp.Header.Get("Content-Type"), body)
	}
	// A tenant can't pick the lines by tenant: it gets its default.
	if _, body = get("/console/?by=tenant"); strings.Contains(body, `value="tenant"`) {
		t.Fatal("a tenant was offered lines by tenant")
	}
	// The cookie holds a session, never the token.
	u, _ := url.Parse(srv.URL + "/console/")
	if ck := jar.Cookies(u); len(ck) != 1 || ck[0].Value == "acme" || sessions.live[ck[0].Value].Tenant != "acme" {
		t.Fatalf("cookies %+v", ck)
	}
	// Signed out: the session is gone at the server too.
	post("/console/logout", nil, srv.URL)
	if resp, _ = get("/console/"); resp.Request.URL.Path != "/console/login" || len(sessions.live) != 0 {
		t.Fatalf("after sign-out: %s, sessions %v", resp.Request.URL, sessions.live)
	}
	// A link can't put words on the login page; a known reason shows fixed ones.
	if _, body = get("/console/login?why=Your+token+expired,+paste+it+at+evil"); strings.Contains(body, "evil") {
		t.Fatal("the login page shows a link's words")
	}
	if _, body = get("/console/login?why=ended"); !strings.Contains(body, "Your session ended") {
		t.Fatal("the login page does not say the session ended")
	}
	// The admin: both groups and the hosts.
	if _, body = post("/console/login", url.Values{"token": {"admin"}}, srv.URL); !strings.Contains(body, "eci-acme") || !strings.Contains(body, "eci-other") || !strings.Contains(body, "<td>h1</td>") {
		t.Fatalf("the admin's overview: %s", body)
	}
}
