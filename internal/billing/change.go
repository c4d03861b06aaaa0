package billing

import (
	"fmt"
	"math/big"
	"time"
)

// CheckChange says why next may not replace cur at now: prices apply from
// their date forward, never to usage already past (docs/billing.md). Every
// period of cur that began before now must be in next as it was (its date
// and every price), next may not begin a period before now that cur did
// not have, and the currency stays. A new period from now on changes the
// price of the seconds after its date.
func CheckChange(cur, next *Book, now time.Time) error {
	if cur == nil {
		return nil
	}
	if next.Currency != cur.Currency && len(cur.Periods) > 0 && cur.Periods[0].From.Before(now) {
		return fmt.Errorf("currency: %s to %s would change the currency of usage already billed", cur.Currency, next.Currency)
	}
	nextByDate := map[time.Time]*Period{}
	for i := range next.Periods {
		nextByDate[next.Periods[i].From] = &next.Periods[i]
	}
	curDates := map[time.Time]bool{}
	for i := range cur.Periods {
		p := &cur.Periods[i]
		curDates[p.From] = true
		if !p.From.Before(now) {
			continue // not begun: free to change
		}
		n := nextByDate[p.From]
		if n == nil {
			return fmt.Errorf("the period from %s has begun: it can't be removed or moved (add a new period from a date to come)", p.From.Format(time.RFC3339))
		}
		if !samePeriod(p, n) {
			return fmt.Errorf("line %d: the period from %s has begun: its prices can't change (add a new period from a date to come)", n.Line, p.From.Format(time.RFC3339))
		}
	}
	for i := range next.Periods {
		n := &next.Periods[i]
		if n.From.Before(now) && !curDates[n.From] {
			return fmt.Errorf("line %d: a new period from %s would change the prices of usage already past: its date must be to come", n.Line, n.From.Format(time.RFC3339))
		}
	}
	return nil
}

func samePeriod(a, b *Period) bool {
	if !sameRates(a.Rates, b.Rates) || !sameRat(a.SpotDiscount, b.SpotDiscount) || len(a.Zones) != len(b.Zones) ||
		len(a.InstanceTypes) != len(b.InstanceTypes) || len(a.GPUModels) != len(b.GPUModels) {
		return false
	}
	for m, r := range a.GPUModels {
		if !sameRat(r, b.GPUModels[m]) {
			return false
		}
	}
	for z, r := range a.Zones {
		o, ok := b.Zones[z]
		if !ok || !sameRates(r, o) {
			return false
		}
	}
	for t, r := range a.InstanceTypes {
		if !sameRat(r, b.InstanceTypes[t]) {
			return false
		}
	}
	return true
}

func sameRates(a, b Rates) bool {
	return sameRat(a.VCPU, b.VCPU) && sameRat(a.Memory, b.Memory) && sameRat(a.GPU, b.GPU) && sameRat(a.Storage, b.Storage)
}

func sameRat(a, b *big.Rat) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Cmp(b) == 0
}
