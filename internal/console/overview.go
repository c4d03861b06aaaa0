package console

import (
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/auth"
	"github.com/eci-dev/eci/internal/billing"
	"github.com/eci-dev/eci/internal/control"
)

// The overview's bounds: the newest groups and events it lists.
const (
	maxGroups = 200
	maxEvents = 50
)

// span is a period the picker offers: how far back, by what granularity.
type span struct {
	Name, Label, Granularity string
	Back                     func(time.Time) time.Time
}

var spans = []span{
	{"24h", "last 24 hours, by hour", apiv1.GranularityHour, func(t time.Time) time.Time { return t.Add(-24 * time.Hour).Truncate(time.Hour) }},
	{"7d", "last 7 days, by day", apiv1.GranularityDay, func(t time.Time) time.Time { return day(t.AddDate(0, 0, -6)) }},
	{"30d", "last 30 days, by day", apiv1.GranularityDay, func(t time.Time) time.Time { return day(t.AddDate(0, 0, -29)) }},
	{"12m", "last 12 months, by month", apiv1.GranularityMonth, func(t time.Time) time.Time {
		return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(0, -11, 0)
	}},
}

func day(t time.Time) time.Time { return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC) }

// view is what the picker chose: a span and what the chart's lines are of.
type view struct {
	Span span
	By   string // tenant, size or tag:KEY
}

// viewOf reads the picker's choice; what it does not know falls back to the
// defaults (the last 7 days, by tenant for the admin, by size for a tenant).
func viewOf(r *http.Request, p auth.Principal) view {
	v := view{Span: spans[1], By: "size"}
	if p.IsAdmin() {
		v.By = "tenant"
	}
	for _, s := range spans {
		if s.Name == r.URL.Query().Get("range") {
			v.Span = s
		}
	}
	switch by := r.URL.Query().Get("by"); {
	case by == "size", by == "tenant" && p.IsAdmin():
		v.By = by
	case strings.HasPrefix(by, "tag:") && len(by) > 4 && len(by) <= 4+63:
		v.By = by
	}
	return v
}

func (v view) query(now time.Time) billing.Query {
	return billing.Query{From: v.Span.Back(now.UTC()), To: now.UTC(), Granularity: v.Span.Granularity, By: v.By}
}

// groupRow is one instance of the table.
type groupRow struct {
	Name, ID, Tenant, State, Host, IP, Size, Cost string
}

type hostRow struct {
	Name, Zone, Ready, CPU, Memory string
	Groups                         int
}

type overviewData struct {
	Who             string
	Admin           bool
	Spans           []span
	View            view
	TagKey          string
	ChartURL        string
	Total, Currency string
	Groups          []groupRow
	Hosts           []hostRow
	Capacity        *apiv1.Capacity
	Events          []apiv1.Event
	Problems        []string
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	p, _ := auth.FromContext(ctx)
	v := viewOf(r, p)
	d := overviewData{Who: p.String(), Admin: p.IsAdmin(), Spans: spans, View: v, TagKey: "team"}
	if k, ok := strings.CutPrefix(v.By, "tag:"); ok {
		d.TagKey = k
	}
	d.ChartURL = "/console/cost.svg?" + url.Values{"range": {v.Span.Name}, "by": {v.By}}.Encode()
	problem := func(what string, err error) { d.Problems = append(d.Problems, fmt.Sprintf("%s: %v", what, err)) }
	if bill, err := c.svc.Bill(ctx, p, v.query(c.now())); err != nil {
		problem("cost", err)
	} else {
		d.Total, d.Currency = bill.Total, bill.Currency
	}
	if err := c.groups(r, p, &d); err != nil {
		problem("instances", err)
	}
	if p.IsAdmin() {
		hosts, err := c.svc.ListHosts(ctx, p)
		if err != nil {
			problem("hosts", err)
		}
		for _, h := range hosts {
			ready := "NotReady"
			if h.Status.Ready {
				ready = "Ready"
			}
			d.Hosts = append(d.Hosts, hostRow{Name: h.Metadata.Name, Zone: h.Spec.Zone, Ready: ready, Groups: h.Status.Groups,
				CPU:    fmt.Sprintf("%g / %g", float64(h.Status.Allocated.MilliCPU)/1000, float64(h.Spec.Allocatable.MilliCPU)/1000),
				Memory: fmt.Sprintf("%.1f / %.1f GiB", float64(h.Status.Allocated.MemoryMiB)/1024, float64(h.Spec.Allocatable.MemoryMiB)/1024)})
		}
	} else if cp, err := c.svc.Capacity(ctx, p); err != nil {
		problem("capacity", err)
	} else {
		d.Capacity = cp
	}
	if evs, err := c.svc.ListEvents(ctx, p, ""); err != nil {
		problem("events", err)
	} else {
		sort.Slice(evs, func(i, j int) bool { return evs[i].LastTime.After(evs[j].LastTime) })
		d.Events = evs[:min(len(evs), maxEvents)]
	}
	render(w, r, http.StatusOK, "overview.html", d)
}

// groups fills the newest groups the caller may see, each with its cost so
// far (one bill by group since the oldest of them began).
func (c *Console) groups(r *http.Request, p auth.Principal, d *overviewData) error {
	list, err := c.svc.ListGroups(r.Context(), p, control.GroupFilter{}, 0, "")
	if err != nil {
		return err
	}
	gs := list.Items
	sort.Slice(gs, func(i, j int) bool { return gs[i].Metadata.CreatedAt.After(gs[j].Metadata.CreatedAt) })
	gs = gs[:min(len(gs), maxGroups)]
	now := c.now().UTC()
	from := now
	for _, g := range gs {
		if g.Status.PendingAt != nil && g.Status.PendingAt.Before(from) {
			from = *g.Status.PendingAt
		}
	}
	costs := map[string]string{}
	if from.Before(now) {
		bill, err := c.svc.Bill(r.Context(), p, billing.Query{From: from.Truncate(time.Second), To: now.Add(time.Second), By: "group"})
		if err != nil {
			return err
		}
		for _, l := range bill.Lines {
			if a, ok := new(big.Rat).SetString(l.Amount); ok {
				costs[l.Key] = a.FloatString(4) + " " + bill.Currency
			}
		}
	}
	for _, g := range gs {
		cost := costs[g.Metadata.ID]
		if cost == "" {
			cost = "-"
		}
		d.Groups = append(d.Groups, groupRow{Name: g.Metadata.Name, ID: g.Metadata.ID, Tenant: g.Metadata.Tenant, State: string(g.Status.State),
			Host: g.Status.Host, IP: g.Status.IP, Size: g.Status.InstanceSpec, Cost: cost})
	}
	return nil
}
