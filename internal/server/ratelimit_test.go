package server

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"crypto/tls"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/client"
)

// A token past its rate gets 429 with Retry-After naming when to come back;
// each token has its own bucket and the admin none; the client waits and
// sends again.
func TestRateLimitPerToken(t *testing.T) {
	r := start(t, t.TempDir(), func(c *Config) { c.TenantRateLimit = RateLimit{QPS: 0.5, Burst: 3} })
	ctx := context.Background()
	if _, err := r.admin.PutTenant(ctx, &apiv1.Tenant{Metadata: apiv1.ObjectMeta{Name: "acme"}}); err != nil {
		t.Fatal(err)
	}
	mk := func() string {
		tok, err := r.admin.CreateToken(ctx, &apiv1.Token{Spec: apiv1.TokenSpec{Kind: apiv1.TokenTenant, Tenant: "acme"}})
		if err != nil {
			t.Fatal(err)
		}
		return tok.Status.Token
	}
	one, two := mk(), mk()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	get := func(token string) *http.Response {
		req, _ := http.NewRequest("GET", r.srv.URL()+"/v1/containergroups", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for i := range 3 {
		if code := get(one).StatusCode; code != 200 {
			t.Fatalf("request %d within the burst: %d", i, code)
		}
	}
	resp := get(one)
	retry, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
	if resp.StatusCode != http.StatusTooManyRequests || retry < 1 || retry > 2 {
		t.Fatalf("past the burst: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	code, st := rawRequest(t, r, "GET", "/v1/containergroups", one, "")
	if code != 429 || st.Reason != "TooManyRequests" || !strings.Contains(st.Message, "more than 0.5 requests a second (bursts of 3)") {
		t.Fatalf("the answer: %d %+v", code, st)
	}
	if code := get(two).StatusCode; code != 200 {
		t.Fatalf("another token of the same tenant has its own bucket: %d", code)
	}
	for range 20 {
		if code := get(r.srv.AdminToken()).StatusCode; code != 200 {
			t.Fatalf("the admin was limited: %d", code)
		}
	}
	// An address that presents unknown tokens is slowed down: the store is
	// not read for each.
	limited := false
	for i := range 40 {
		code, st := rawRequest(t, r, "GET", "/v1/containergroups", fmt.Sprintf("made-up-%d", i), "")
		if code == http.StatusTooManyRequests && strings.Contains(st.Message, "too many unknown tokens") {
			limited = true
			break
		}
	}
	if !limited {
		t.Fatal("40 unknown tokens from one address were each looked up")
	}
	start := time.Now()
	if _, err := clientFor(t, r.srv, one).ListGroups(ctx, client.ListOptions{}); err != nil {
		t.Fatalf("the client after a 429: %v", err)
	}
	if waited := time.Since(start); waited < 500*time.Millisecond {
		t.Fatalf("the client did not wait for Retry-After (%s)", waited)
	}
}

// A host's lease is renewed whatever else its token spent.
func TestLeaseRoutesAreNotLimited(t *testing.T) {
	r := start(t, t.TempDir(), func(c *Config) { c.HostRateLimit = RateLimit{QPS: 0.1, Burst: 2} })
	ctx := context.Background()
	host := r.token(t, apiv1.TokenSpec{Kind: apiv1.TokenHost, Host: "h1"})
	res := apiv1.Resources{MilliCPU: 1000, MemoryMiB: 1024, Pods: 1}
	if _, err := host.RegisterHost(ctx, &apiv1.Host{Metadata: apiv1.ObjectMeta{Name: "h1"}, Spec: apiv1.HostSpec{Zone: "z", Capacity: res, Allocatable: res}}); err != nil {
		t.Fatal(err)
	}
	for range 3 { // spends the bucket (the last one waits for its retry: cut short)
		lctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		_, _ = host.ListGroups(lctx, client.ListOptions{})
		cancel()
	}
	for i := range 5 {
		hctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		_, err := host.Heartbeat(hctx, "h1")
		cancel()
		if err != nil {
			t.Fatalf("heartbeat %d with the host's bucket empty: %v", i, err)
		}
	}
}
