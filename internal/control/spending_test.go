package control

import (
	"strings"
	"testing"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/auth"
	"github.com/eci-dev/eci/internal/billing"
	"github.com/eci-dev/eci/internal/errdefs"
)

func TestSpendingLimit(t *testing.T) {
	e := newEnv(t, false)
	e.vswitch(t, "vsw-a", "zone-a", "198.19.128.0/20")
	e.host(t, "h1", "zone-a", 64000, 1<<20, 100)
	book, err := billing.Parse([]byte(billing.DefaultBook))
	if err != nil {
		t.Fatal(err)
	}
	e.svc.SetPriceBook(book)
	for _, bad := range []struct {
		limit apiv1.SpendingLimit
		says  string
	}{
		{apiv1.SpendingLimit{Amount: "-1"}, "spec.spendingLimit.amount"},
		{apiv1.SpendingLimit{Amount: "1e3"}, "spec.spendingLimit.amount"},
		{apiv1.SpendingLimit{Amount: "10", Period: "week"}, "spec.spendingLimit.period"},
	} {
		l := bad.limit
		if _, err := e.svc.PutTenant(e.ctx, auth.Admin, &apiv1.Tenant{Metadata: apiv1.ObjectMeta{Name: "ta"}, Spec: apiv1.TenantSpec{SpendingLimit: &l}}); !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), bad.says) {
			t.Errorf("limit %+v: %v, want an error naming %s", l, err, bad.says)
		}
	}
	// 0.001 a month: 1 vCPU and 2 GiB cost 0.00000962 a second, so 104 s.
	limit := &apiv1.SpendingLimit{Amount: "0.001"}
	if _, err := e.svc.PutTenant(e.ctx, auth.Admin, &apiv1.Tenant{Metadata: apiv1.ObjectMeta{Name: "ta"}, Spec: apiv1.TenantSpec{SpendingLimit: limit}}); err != nil {
		t.Fatal(err)
	}
	create := func(tenant, name string) (*apiv1.ContainerGroup, error) {
		spec := groupSpec(name, 1, 2)
		spec.Metadata.Tenant = tenant
		g, _, err := e.svc.CreateGroup(e.ctx, auth.Admin, spec)
		return g, err
	}
	g, err := create("ta", "first")
	if err != nil {
		t.Fatal(err)
	}
	st, err := e.svc.loadPlacementState(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.svc.placeOne(e.ctx, st, g, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.ReportStatus(e.ctx, hostPrincipal("h1"), g.Metadata.ID, apiv1.StatusReport{State: apiv1.StateRunning}); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(60 * time.Second)
	if _, err := create("ta", "under"); err != nil {
		t.Fatalf("under the limit (60 s): %v", err)
	}
	e.clock.Add(60 * time.Second) // 120 s: 0.0011544, past the limit
	_, err = create("ta", "over")
	if !errdefs.IsPaymentRequired(err) || !strings.Contains(err.Error(), "was billed 0.0012 USD this month, its spending limit is 0.001 USD (spec.spendingLimit)") ||
		!strings.Contains(err.Error(), "running groups go on") {
		t.Fatalf("past the limit: %v, want 402 naming the limit", err)
	}
	// The running group goes on; another tenant is not held; an Event says why.
	if cur, err := e.svc.groups.Get(e.ctx, g.Metadata.ID); err != nil || cur.Status.State != apiv1.StateRunning {
		t.Fatalf("the running group: %+v (%v)", cur, err)
	}
	if _, err := create("tb", "free"); err != nil {
		t.Fatalf("a tenant without a limit: %v", err)
	}
	evs, err := e.svc.ListEvents(e.ctx, auth.Admin, "ta")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, ev := range evs {
		found = found || ev.Reason == "SpendingLimitReached" && ev.Type == apiv1.EventWarning && ev.Object.Kind == "Tenant"
	}
	if !found {
		t.Fatalf("no SpendingLimitReached event: %+v", evs)
	}
	// Raised: taken at once.
	limit.Amount = "5"
	if _, err := e.svc.PutTenant(e.ctx, auth.Admin, &apiv1.Tenant{Metadata: apiv1.ObjectMeta{Name: "ta"}, Spec: apiv1.TenantSpec{SpendingLimit: limit}}); err != nil {
		t.Fatal(err)
	}
	if _, err := create("ta", "raised"); err != nil {
		t.Fatalf("after the limit was raised: %v", err)
	}
}
