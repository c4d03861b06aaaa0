package control

import (
	"context"
	"fmt"
	"math/big"
	"sync"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/auth"
	"github.com/eci-dev/eci/internal/errdefs"
)

// Spending limits (docs/billing.md): a tenant's new groups are refused once
// what its groups were billed for in the period (a UTC day or month) has
// reached its limit; running groups go on. What a tenant spent is read
// again at most every spentFresh, so a burst of creates costs one rating.

const spentFresh = 10 * time.Second

type spentCache struct {
	mu   sync.Mutex
	m    map[string]spent     // by tenant and period start
	told map[string]time.Time // the tenant's last SpendingLimitReached
}

// tell tells whether tenant's refusal may be told again (once a minute).
func (c *spentCache) tell(tenant string, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.told == nil {
		c.told = map[string]time.Time{}
	}
	if last, ok := c.told[tenant]; ok && now.Sub(last) < time.Minute {
		return false
	}
	c.told[tenant] = now
	return true
}

type spent struct {
	at       time.Time
	amount   *big.Rat
	currency string
}

// periodStart is when the limit's current period began.
func periodStart(l *apiv1.SpendingLimit, now time.Time) (time.Time, string) {
	now = now.UTC()
	if l.Period == "day" {
		return time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC), "day"
	}
	return time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC), "month"
}

// checkTenantBounds refuses a new group of tenant past what it may store
// (membership.go) or spend.
func (s *Service) checkTenantBounds(ctx context.Context, tenant string) error {
	if err := s.checkRoom(ctx, tenant); err != nil {
		return err
	}
	return s.checkSpending(ctx, tenant)
}

// checkSpending refuses a group of tenant when its spending limit is reached.
func (s *Service) checkSpending(ctx context.Context, tenant string) error {
	t, err := s.tenants.Get(ctx, tenant)
	if errdefs.IsNotFound(err) || err == nil && t.Spec.SpendingLimit == nil {
		return nil
	}
	if err != nil {
		return err
	}
	l := t.Spec.SpendingLimit
	limit, ok := new(big.Rat).SetString(l.Amount)
	if !ok {
		return nil // (refused when the tenant was written)
	}
	now := s.now()
	from, period := periodStart(l, now)
	sp, err := s.spentSince(ctx, tenant, from, now)
	if err != nil {
		return err
	}
	if sp.amount.Cmp(limit) < 0 {
		return nil
	}
	msg := fmt.Sprintf("tenant %s was billed %s %s this %s, its spending limit is %s %s (spec.spendingLimit): new groups are refused until the %s ends or the limit is raised; running groups go on",
		tenant, sp.amount.FloatString(4), sp.currency, period, l.Amount, sp.currency, period)
	// The Event's words stay the same through the period (one series),
	// told at most once a minute.
	if s.spent.tell(tenant, now) {
		s.recordEvent(ctx, "Tenant", tenant, tenant, apiv1.EventWarning, "SpendingLimitReached",
			fmt.Sprintf("spending limit %s %s a %s reached (spec.spendingLimit): new groups are refused until the %s ends or the limit is raised", l.Amount, sp.currency, period, period), "server")
	}
	return fmt.Errorf("%s: %w", msg, errdefs.ErrPaymentRequired)
}

// spentSince is what tenant's groups were billed for from from to now,
// from the cache when fresh.
func (s *Service) spentSince(ctx context.Context, tenant string, from, now time.Time) (spent, error) {
	key := tenant + "@" + from.Format(time.RFC3339)
	s.spent.mu.Lock()
	if sp, ok := s.spent.m[key]; ok && now.Sub(sp.at) < spentFresh {
		s.spent.mu.Unlock()
		return sp, nil
	}
	s.spent.mu.Unlock()
	book := s.prices.p.Load()
	if book == nil {
		return spent{}, fmt.Errorf("a spending limit needs a price book: %w", errdefs.ErrUnavailable)
	}
	recs, err := s.Usage(ctx, auth.Principal{Kind: apiv1.TokenTenant, Tenant: tenant}, from, now)
	if err != nil {
		return spent{}, err
	}
	sp := spent{at: now, amount: new(big.Rat), currency: book.Currency}
	for i := range recs {
		sp.amount.Add(sp.amount, book.Cost(&recs[i], from, now))
	}
	s.spent.mu.Lock()
	if s.spent.m == nil {
		s.spent.m = map[string]spent{}
	}
	for k, old := range s.spent.m { // (periods and tenants gone)
		if now.Sub(old.at) > time.Hour {
			delete(s.spent.m, k)
		}
	}
	s.spent.m[key] = sp
	s.spent.mu.Unlock()
	return sp, nil
}
