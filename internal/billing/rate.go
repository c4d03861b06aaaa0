package billing

import (
	"math/big"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// Cost is the exact cost of u's billed seconds in [from, to): each second
// at the prices of the period it falls in; none before the book's first
// period.
//
// A sum's cost was reckoned when it was folded (past prices never
// change): all of it in the period that holds its start.
func (b *Book) Cost(u *apiv1.UsageRecord, from, to time.Time) *big.Rat {
	total := new(big.Rat)
	if u.IsSum() {
		if u.SumIn(from, to) {
			if _, ok := total.SetString(u.Amount); ok {
				return total
			}
		}
		return new(big.Rat)
	}
	for i := range b.Periods {
		p := &b.Periods[i]
		start, end := p.From, to
		if i+1 < len(b.Periods) {
			end = b.Periods[i+1].From
		}
		start, end = later(start, from), earlier(end, to)
		if !start.Before(end) {
			continue
		}
		pend, run := u.Seconds(start, end)
		if secs := pend + run; secs > 0 {
			total.Add(total, new(big.Rat).Mul(p.perSecond(u), big.NewRat(secs, 1)))
		}
	}
	return total
}

// perSecond is what one second of u costs in period p.
func (p *Period) perSecond(u *apiv1.UsageRecord) *big.Rat {
	r := p.Rates
	if z, ok := p.Zones[u.Zone]; ok {
		r = r.over(z)
	}
	inst := new(big.Rat)
	if t, ok := p.InstanceTypes[u.InstanceType]; ok && u.InstanceType != "" {
		inst.Set(t)
	} else {
		inst.Add(inst, mul(r.VCPU, big.NewRat(u.MilliCPU, 1000)))
		inst.Add(inst, mul(r.Memory, big.NewRat(u.MemoryMiB, 1024)))
		gpu := r.GPU
		if m, ok := p.GPUModels[u.GPUModel]; ok && u.GPUModel != "" {
			gpu = m
		}
		inst.Add(inst, mul(gpu, big.NewRat(int64(u.GPU), 1)))
	}
	if u.Spot && p.SpotDiscount != nil {
		inst.Mul(inst, new(big.Rat).Sub(big.NewRat(1, 1), p.SpotDiscount))
	}
	return inst.Add(inst, mul(r.Storage, big.NewRat(int64(u.ExtraStorageGiB), 1)))
}

// over is r with the rates o sets.
func (r Rates) over(o Rates) Rates {
	pick := func(a, b *big.Rat) *big.Rat {
		if b != nil {
			return b
		}
		return a
	}
	return Rates{pick(r.VCPU, o.VCPU), pick(r.Memory, o.Memory), pick(r.GPU, o.GPU), pick(r.Storage, o.Storage)}
}

func mul(price, qty *big.Rat) *big.Rat {
	if price == nil {
		return new(big.Rat)
	}
	return new(big.Rat).Mul(price, qty)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
