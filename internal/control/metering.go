package control

import (
	"context"
	"fmt"
	"maps"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/auth"
	"github.com/eci-dev/eci/internal/billing"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/log"
	"github.com/eci-dev/eci/internal/store"
)

// Metering (docs/billing.md). A group is metered from its own record while
// it is stored (apiv1.UsageOf: its billing timestamps and size); the
// transaction that removes the record writes its usage record
// (removalOps), so that each group's usage is in exactly one of the two at
// every revision: a crash, a restart or a new leader neither loses nor
// counts it twice, and nothing runs on a timer to meter.

// DefaultUsageRetention keeps usage records 400 days after their group
// ended (a year's invoices and their disputes).
const DefaultUsageRetention = 400 * 24 * time.Hour

// usageKey is a usage record's id: a tenant's records share a prefix.
func usageKey(tenant, group string) string { return tenant + "/" + group }

// usageOps write g's usage record, if it was ever billed.
func (s *Service) usageOps(g *apiv1.ContainerGroup) ([]store.Op, error) {
	u, ok := apiv1.UsageOf(g, s.now())
	if !ok || u.End.Unix() == u.Start.Unix() {
		return nil, nil // never billed, or not for a whole second
	}
	u.Open = false
	u.Metadata.ID = usageKey(g.Metadata.Tenant, g.Metadata.ID)
	op, err := s.records.PutOp(&u)
	if err != nil {
		return nil, fmt.Errorf("usage record of %s: %w", g.Metadata.ID, err)
	}
	return []store.Op{op}, nil
}

// A group's usage is split at a tag change only when the part so far has
// lasted MinSplit, and at most MaxSplits times (each split is a record
// kept for the retention): a shorter part follows the new tags.
const (
	MinSplit  = time.Hour
	MaxSplits = 100
)

// splitUsage: when an update changes what allocates g's cost (its tags,
// its virtual node), the usage so far is written as a record with the
// old ones, in the update's transaction, and next is billed from now
// (status.billingFrom): a tag change moves only what follows it.
func (s *Service) splitUsage(ctx context.Context, g, next *apiv1.ContainerGroup) ([]store.Op, error) {
	if maps.Equal(g.Spec.Tags, next.Spec.Tags) && g.Metadata.Labels[apiv1.LabelVirtualNode] == next.Metadata.Labels[apiv1.LabelVirtualNode] {
		return nil, nil
	}
	u, ok := apiv1.UsageOf(g, s.now())
	if !ok || u.End.Sub(u.Start) < MinSplit {
		return nil, nil // nothing billed yet, or a part too short to keep apart
	}
	if n, err := s.records.Count(ctx, usageKey(g.Metadata.Tenant, g.Metadata.ID+"@")); err != nil || n >= MaxSplits {
		return nil, err
	}
	u.Open = false
	u.Metadata.ID = usageKey(g.Metadata.Tenant, g.Metadata.ID+"@"+strconv.FormatInt(u.Start.Unix(), 10))
	op, err := s.records.PutOp(&u)
	if err != nil {
		return nil, fmt.Errorf("usage record of %s: %w", g.Metadata.ID, err)
	}
	from := u.End
	next.Status.BillingFrom = &from
	return []store.Op{op}, nil
}

// Usage is what the groups p may see were billed for in [from, to): the
// usage records of groups gone, and the groups stored, each once.
func (s *Service) Usage(ctx context.Context, p auth.Principal, from, to time.Time) ([]apiv1.UsageRecord, error) {
	if err := p.Require("read usage", apiv1.TokenAdmin, apiv1.TokenTenant); err != nil {
		return nil, err
	}
	now := s.now()
	// The groups and the virtual nodes' open intervals first, then the
	// records: one removed or closed in between is found in both, and its
	// record (final) wins; never in neither.
	groups, _, _, err := s.groups.List(ctx, storeOpts(0, 0, ""))
	if err != nil {
		return nil, err
	}
	vnodes, err := s.vnodeUsage(ctx, p)
	if err != nil {
		return nil, err
	}
	prefix := ""
	if !p.IsAdmin() {
		prefix = p.Tenant + "/"
	}
	recs, _, _, err := s.records.List(ctx, store.ListOptions{Prefix: prefix})
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	split := map[string]time.Time{} // tenant/group: where its split records end
	var out []apiv1.UsageRecord
	keep := func(u *apiv1.UsageRecord) bool { return u.End.After(from) && u.Start.Before(to) }
	for _, r := range recs {
		seen[r.Metadata.ID] = true // tenant/id
		if r.IsPart() {
			// A part before a tag change: the group, read before it was
			// written, is billed only after it.
			k := usageKey(r.Metadata.Tenant, r.Group)
			if r.End.After(split[k]) {
				split[k] = r.End
			}
		}
		r.Metadata.ID = strings.TrimPrefix(r.Metadata.ID, r.Metadata.Tenant+"/")
		if keep(r) {
			out = append(out, *r)
		}
	}
	for _, g := range groups {
		if seen[usageKey(g.Metadata.Tenant, g.Metadata.ID)] || !p.CanSeeGroup(g.Metadata.Tenant, "") {
			continue
		}
		u, ok := apiv1.UsageOf(g, now)
		if end := split[usageKey(g.Metadata.Tenant, g.Metadata.ID)]; ok && end.After(u.Start) {
			u.Start = end
			if u.Start.After(u.End) {
				u.Start = u.End
			}
		}
		if ok && keep(&u) {
			out = append(out, u)
		}
	}
	for i := range vnodes {
		if u := &vnodes[i]; !seen[usageKey(u.Metadata.Tenant, u.Metadata.ID)] && keep(u) {
			out = append(out, *u)
		}
	}
	return out, nil
}

// priceBook is the book bills are rated with (SetPriceBook).
type priceBook struct {
	p    atomic.Pointer[billing.Book]
	text atomic.Pointer[string] // as stored (pricebook.go)
}

// SetPriceBook makes b the book of the bills from now on.
func (s *Service) SetPriceBook(b *billing.Book) { s.prices.p.Store(b) }

// Bill rates the usage p may see over q.
func (s *Service) Bill(ctx context.Context, p auth.Principal, q billing.Query) (*apiv1.Bill, error) {
	book := s.prices.p.Load()
	if book == nil {
		return nil, fmt.Errorf("this service has no price book (eci server --price-book FILE): %w", errdefs.ErrUnavailable)
	}
	if err := q.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, err)
	}
	if err := p.Require("read bills", apiv1.TokenAdmin, apiv1.TokenTenant); err != nil {
		return nil, err
	}
	release, err := s.bills.enter(ctx, p.String())
	if err != nil {
		return nil, err
	}
	defer release()
	recs, err := s.Usage(ctx, p, q.From, q.To)
	if err != nil {
		return nil, err
	}
	bill, err := book.Bill(ctx, recs, q)
	if billing.IsTooLarge(err) {
		return nil, fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, err)
	}
	return bill, err
}

// billGate bounds the bills rated at once: billsAtOnce on this server, and
// one at a time for each caller; a caller waits for its turn as long as
// its request lasts, at most billWait.
type billGate struct {
	all  chan struct{}
	mu   sync.Mutex
	busy map[string]chan struct{}
}

const (
	billsAtOnce = 2
	billWait    = 20 * time.Second
)

func newBillGate() *billGate {
	return &billGate{all: make(chan struct{}, billsAtOnce), busy: map[string]chan struct{}{}}
}

// enter waits for the caller's turn and a free slot.
func (g *billGate) enter(ctx context.Context, who string) (release func(), err error) {
	ctx, cancel := context.WithTimeout(ctx, billWait)
	defer cancel()
	g.mu.Lock()
	mine := g.busy[who]
	if mine == nil {
		mine = make(chan struct{}, 1)
		g.busy[who] = mine
	}
	g.mu.Unlock()
	select {
	case mine <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("another bill of %s is being rated: try again: %w", who, errdefs.ErrExhausted)
	}
	select {
	case g.all <- struct{}{}:
	case <-ctx.Done():
		<-mine
		return nil, fmt.Errorf("the server is rating other bills: try again: %w", errdefs.ErrExhausted)
	}
	return func() { <-g.all; <-mine }, nil
}

// usagePass is the state of the hourly usage pass: retention's removals
// and folds (usagefold.go).
type usagePass struct {
	last    atomic.Int64   // when the last began, Unix seconds (0: go at the next chance)
	on      atomic.Bool    // one runs
	running sync.WaitGroup // the passes started (RunMonitor waits)
	cursor  string         // the sums a stopped pass reached (the pass's goroutine only)
	budget  time.Duration  // usagePassBudget unless set (tests)
}

func (p *usagePass) deadline() time.Time {
	if p.budget > 0 {
		return time.Now().Add(p.budget)
	}
	return time.Now().Add(usagePassBudget)
}

// startUsagePass runs collectUsage in a goroutine of its own, one at a
// time: a pass over many records must not hold up the monitor.
func (s *Service) startUsagePass(ctx context.Context) {
	if !s.pass.on.CompareAndSwap(false, true) {
		return
	}
	s.pass.running.Add(1)
	go func() {
		defer s.pass.running.Done()
		defer s.pass.on.Store(false)
		s.collectUsage(ctx)
	}()
}

// collectUsage removes the usage records past the retention and sums
// short groups' records past the usage detail period, once an hour (the
// monitor's garbage collection).
func (s *Service) collectUsage(ctx context.Context) {
	now := s.now()
	if last := s.pass.last.Load(); last != 0 && now.Sub(time.Unix(last, 0)) < time.Hour {
		return
	}
	s.pass.last.Store(now.Unix())
	recs, _, _, err := s.records.List(ctx, store.ListOptions{})
	if err != nil {
		log.G(ctx).Warn("list usage records", "err", err)
		return
	}
	// A pass starts no transaction after usagePassBudget but its first;
	// one that stops there lets the next minute's go on.
	deadline := s.pass.deadline()
	var kept, old []*apiv1.UsageRecord
	for _, r := range recs {
		end := r.End
		if r.IsSum() {
			end = end.Add(time.Hour) // as long as the records across its end would be kept
		}
		if now.Sub(end) <= s.opts.UsageRetention {
			kept = append(kept, r)
		} else {
			old = append(old, r)
		}
	}
	removed, tried, done := 0, 0, true
	for ; len(old) > 0; old = old[min(len(old), foldBatchSize):] {
		if tried > 0 && time.Now().After(deadline) {
			done = false
			break
		}
		tried++
		batch := old[:min(len(old), foldBatchSize)]
		if err := s.removeRecords(ctx, batch); err != nil {
			// A batch with a record changed since read waits for the
			// next pass; a store unavailable ends this one.
			log.G(ctx).Warn("remove usage records past their retention", "err", err)
			if errdefs.IsUnavailable(err) || ctx.Err() != nil {
				return
			}
			continue
		}
		removed += len(batch)
	}
	if removed > 0 {
		log.G(ctx).Info("removed usage records past their retention", "count", removed)
	}
	if !done || !s.foldUsage(ctx, kept, splitGroups(recs), now) { // usagefold.go
		s.pass.last.Store(0) // the next minute's pass goes on
	}
}

// removeRecords removes recs in one transaction, if none changed since
// read.
func (s *Service) removeRecords(ctx context.Context, recs []*apiv1.UsageRecord) error {
	conds := make([]store.Cond, 0, len(recs))
	ops := make([]store.Op, 0, len(recs))
	for _, r := range recs {
		c, err := s.records.Unchanged(r)
		if err != nil {
			return err
		}
		conds = append(conds, c)
		ops = append(ops, s.records.DeleteOp(r.Metadata.ID))
	}
	if _, err := s.st.Commit(ctx, conds, ops); err != nil {
		return fmt.Errorf("remove %d usage records from %s: %w", len(recs), recs[0].Metadata.ID, err)
	}
	return nil
}

// CostTotal is what one tenant's groups with one value of a tag were
// billed for, since the oldest usage kept (the cost metrics).
type CostTotal struct {
	Tenant, Tag      string
	Amount           float64
	Pending, Running int64 // billed seconds
}

// MaxTagValues bounds the tag values the cost metrics show per tenant; the
// others are summed as "other".
const MaxTagValues = 50

// CostTotals sums every group's cost and billed seconds by tenant and by
// the value of tag tagKey ("-": none), as of now.
func (s *Service) CostTotals(ctx context.Context, tagKey string) ([]CostTotal, string, error) {
	book := s.prices.p.Load()
	if book == nil {
		return nil, "", fmt.Errorf("this service has no price book: %w", errdefs.ErrUnavailable)
	}
	now := s.now()
	recs, err := s.Usage(ctx, auth.Admin, time.Unix(0, 0), now)
	if err != nil {
		return nil, "", err
	}
	type key struct{ tenant, tag string }
	sums := map[key]*CostTotal{}
	for i := range recs {
		u := &recs[i]
		k := key{u.Metadata.Tenant, u.Tags[tagKey]}
		if k.tag == "" {
			k.tag = "-"
		}
		t := sums[k]
		if t == nil {
			t = &CostTotal{Tenant: k.tenant, Tag: k.tag}
			sums[k] = t
		}
		amount, _ := book.Cost(u, u.Start, now).Float64()
		pend, run := u.Seconds(u.Start, now)
		t.Amount += amount
		t.Pending += pend
		t.Running += run
	}
	// Each tenant's MaxTagValues costliest values by name; the others
	// summed as "other" (the same values while their costs keep order).
	byTenant := map[string][]*CostTotal{}
	for _, t := range sums {
		byTenant[t.Tenant] = append(byTenant[t.Tenant], t)
	}
	var out []CostTotal
	for tenant, ts := range byTenant {
		sort.Slice(ts, func(i, j int) bool {
			return ts[i].Amount > ts[j].Amount || ts[i].Amount == ts[j].Amount && ts[i].Tag < ts[j].Tag
		})
		// A tag value "other" among the first is the same series as the rest.
		kept := map[string]*CostTotal{}
		var order []string
		for i, t := range ts {
			tag := t.Tag
			if i >= MaxTagValues {
				tag = "other"
			}
			k := kept[tag]
			if k == nil {
				k = &CostTotal{Tenant: tenant, Tag: tag}
				kept[tag] = k
				order = append(order, tag)
			}
			k.Amount, k.Pending, k.Running = k.Amount+t.Amount, k.Pending+t.Pending, k.Running+t.Running
		}
		for _, tag := range order {
			out = append(out, *kept[tag])
		}
	}
	return out, book.Currency, nil
}
