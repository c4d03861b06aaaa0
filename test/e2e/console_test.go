package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/agent/agenttest"
	"github.com/eci-dev/eci/internal/poll"
	"github.com/eci-dev/eci/internal/server"
	"github.com/eci-dev/eci/internal/server/servertest"
	"github.com/eci-dev/eci/internal/testbed"
)

// browser starts Debian's Chromium, headless, for the test: no network of
// its own (the flags keep it from calling home), a new profile. The
// server's certificate is the test's own CA's, which it does not know.
func browser(t *testing.T) context.Context {
	t.Helper()
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed: run hack/install-deps.sh (make deps)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("ignore-certificate-errors", true))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelB(); cancelA() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// The console in a real browser: a tenant signs in with its token, sees its
// started instance with its cost and the cost chart, and not another
// tenant's; the admin sees both and the hosts.
func TestConsoleInABrowser(t *testing.T) {
	book := filepath.Join(t.TempDir(), "prices.yaml")
	if err := os.WriteFile(book, []byte("currency: EUR\nperiods:\n  - from: 2026-01-01\n    vcpu: 0.01\n    memory: 0.001\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bed := testbed.New(t, testbed.Options{Containerd: true})
	srv := servertest.Start(t, func(c *server.Config) { c.PriceBookFile = book })
	agenttest.Start(t, srv, bed, "host-1")
	ctx := context.Background()
	ids := map[string]string{}
	for _, tenant := range []string{"acme", "other"} {
		g := &apiv1.ContainerGroup{Metadata: apiv1.ObjectMeta{Name: tenant + "-web"}, Spec: apiv1.ContainerGroupSpec{
			Tags:       map[string]string{"team": "t-" + tenant},
			Containers: []apiv1.Container{{Name: "main", Image: bed.Registry.Busybox, Command: []string{"sleep", "3600"}}}}}
		out, _, err := srv.TenantClient(t, tenant).CreateGroup(ctx, g)
		if err != nil {
			t.Fatal(err)
		}
		ids[tenant] = out.Metadata.ID
		poll.Eventually(t, 60*time.Second, tenant+"'s group Running", func() error {
			cur, err := srv.Admin.GetGroup(ctx, out.Metadata.ID)
			if err != nil || cur.Status.State != apiv1.StateRunning {
				return fmt.Errorf("%+v (%v)", cur.Status, err)
			}
			return nil
		})
	}
	time.Sleep(2 * time.Second) // a few billed seconds

	b := browser(t)
	// step runs a browser action of the test, bounded.
	step := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		tctx, cancel := context.WithTimeout(b, 30*time.Second)
		defer cancel()
		if err := chromedp.Do(tctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	read := func(what string, a chromedp.Action[string]) string {
		t.Helper()
		tctx, cancel := context.WithTimeout(b, 30*time.Second)
		defer cancel()
		v, err := chromedp.Run(tctx, a)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }
	base := srv.URL() + "/console/"
	// Without a session: the login page. A wrong token is refused there.
	step("open the console", chromedp.Navigate(base), chromedp.WaitVisible(css("#token")),
		chromedp.SendKeys(css("#token"), "not-a-token"), chromedp.Click(css("#signin")), chromedp.WaitVisible(css("#failed")))
	if failed := read("the refusal", chromedp.Text(css("#failed"))); !strings.Contains(failed, "not valid") {
		t.Fatalf("a wrong token says %q", failed)
	}
	step("sign in as acme", chromedp.SendKeys(css("#token"), srv.TenantToken(t, "acme")), chromedp.Click(css("#signin")), chromedp.WaitVisible(css("#instances")))
	who, page := read("who", chromedp.Text(css("#who"))), read("the page", chromedp.OuterHTML(css("main")))
	if who != "tenant/acme" || !strings.Contains(page, ids["acme"]) || strings.Contains(page, ids["other"]) {
		t.Fatalf("acme's console (%s) shows %s and not %s? %s", who, ids["acme"], ids["other"], page)
	}
	row := fmt.Sprintf(`tr[data-id=%q]`, ids["acme"])
	state, cost := read("state", chromedp.Text(css(row+" .state"))), read("cost", chromedp.Text(css(row+" .cost")))
	if state != "Running" || !strings.HasSuffix(cost, " EUR") || strings.HasPrefix(cost, "0.0000") {
		t.Fatalf("acme's instance shows state %q, cost %q; want Running with a cost in EUR", state, cost)
	}
	// The chart: an SVG image the browser loaded and laid out.
	step("the chart shown", chromedp.WaitVisible(css("#chart")))
	tctx, cancel := context.WithTimeout(b, 30*time.Second)
	natural, err := chromedp.Run(tctx, chromedp.Evaluate[int](`(() => { const i = document.getElementById("chart"); return i.complete ? i.naturalWidth : -1 })()`))
	cancel()
	if err != nil || natural != 900 {
		t.Fatalf("the chart's image: natural width %d (%v); want the 900-wide SVG loaded", natural, err)
	}
	// The period picker: by tag, the last 24 hours; the chart follows.
	step("pick a period", chromedp.SetValue(css("#range"), "24h"), chromedp.SetValue(css("#by"), "tag:team"), chromedp.Click(css("#show")))
	poll.Eventually(t, 20*time.Second, "the page of the picked period", func() error {
		if loc := read("location", chromedp.Location()); !strings.Contains(loc, "range=24h") {
			return fmt.Errorf("at %s", loc)
		}
		return nil
	})
	step("the new chart", chromedp.WaitVisible(css("#chart")))
	tctx, cancel = context.WithTimeout(b, 30*time.Second)
	src, err := chromedp.Run(tctx, chromedp.AttributeValue(css("#chart"), "src"))
	cancel()
	if err != nil || !strings.Contains(src.Value, "range=24h") || !strings.Contains(src.Value, "by=tag%3Ateam") {
		t.Fatalf("the chart after picking the last 24 hours by tag: %+v (%v)", src, err)
	}
	step("the chart by tag", chromedp.Navigate(srv.URL()+src.Value))
	if svg := read("the svg", chromedp.OuterHTML(css("svg"))); !strings.Contains(svg, "t-acme") || strings.Contains(svg, "t-other") {
		t.Fatalf("acme's chart by tag does not name t-acme alone: %.400s", svg)
	}
	// The cookie is the server's, for the console only, kept from scripts.
	tctx, cancel = context.WithTimeout(b, 30*time.Second)
	cookies, err := chromedp.Call(tctx, network.GetCookies, network.GetCookiesParams{URLs: []string{base}})
	cancel()
	if err != nil || len(cookies.Cookies) != 1 {
		t.Fatalf("cookies %+v (%v)", cookies, err)
	}
	if c := cookies.Cookies[0]; !c.HTTPOnly || !c.Secure || c.Path != "/console/" || c.SameSite != network.CookieSameSiteStrict {
		t.Fatalf("the session cookie %+v", c)
	}
	// Signed out, then in as the admin: both tenants and the host.
	step("sign out and in as the admin", chromedp.Navigate(base), chromedp.Click(css(".logout button")),
		chromedp.WaitVisible(css("#token")), chromedp.SendKeys(css("#token"), srv.AdminToken()),
		chromedp.Click(css("#signin")), chromedp.WaitVisible(css("#hosts")))
	if page = read("the admin's page", chromedp.OuterHTML(css("main"))); !strings.Contains(page, ids["acme"]) || !strings.Contains(page, ids["other"]) || !strings.Contains(page, "host-1") {
		t.Fatalf("the admin's console: %s", page)
	}
}
