package billing

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"sort"
	"strings"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// Query asks for a bill.
type Query struct {
	From, To time.Time
	// Granularity splits the lines by hour, day or month (UTC); "": none.
	Granularity string
	// By is the lines' key: group, tenant, vnode, size or tag:KEY.
	By string
	// Tags keep the groups that have every one of them.
	Tags map[string]string
}

// SummedKey is a bill's key by group for short groups' usage summed by
// hour (apiv1.UsageRecord.Groups).
const SummedKey = "(summed)"

// MaxPeriods bounds a bill's periods (hours of a bit over a year).
const MaxPeriods = 10_000

// Validate says what is wrong with q, naming the field.
func (q *Query) Validate() error {
	switch {
	case q.From.IsZero() || q.To.IsZero():
		return fmt.Errorf("from and to: both are needed (RFC 3339 times or dates)")
	case !q.From.Before(q.To):
		return fmt.Errorf("to %s: must be after from %s", q.To.Format(time.RFC3339), q.From.Format(time.RFC3339))
	}
	switch q.Granularity {
	case "", apiv1.GranularityHour, apiv1.GranularityDay, apiv1.GranularityMonth:
	default:
		return fmt.Errorf("granularity %q: allowed: hour, day, month (or none)", q.Granularity)
	}
	if n := len(q.Periods()); n > MaxPeriods {
		return fmt.Errorf("granularity %s: %d periods from %s to %s; at most %d", q.Granularity, n, q.From.Format(time.RFC3339), q.To.Format(time.RFC3339), MaxPeriods)
	}
	switch {
	case q.By == "group", q.By == "tenant", q.By == "vnode", q.By == "size":
	case strings.HasPrefix(q.By, "tag:") && len(q.By) > len("tag:"):
	default:
		return fmt.Errorf("by %q: allowed: group, tenant, vnode, size, tag:KEY", q.By)
	}
	return nil
}

// Periods are the starts of q's periods (From, then each hour, day or
// month after it), and To last.
func (q *Query) Periods() []time.Time {
	out := []time.Time{q.From}
	if q.Granularity == "" {
		return append(out, q.To)
	}
	t := q.From.UTC()
	switch q.Granularity {
	case apiv1.GranularityHour:
		t = t.Truncate(time.Hour)
	case apiv1.GranularityDay:
		t = time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	case apiv1.GranularityMonth:
		t = time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
	}
	for len(out) <= MaxPeriods {
		switch q.Granularity {
		case apiv1.GranularityHour:
			t = t.Add(time.Hour)
		case apiv1.GranularityDay:
			t = t.AddDate(0, 0, 1)
		default:
			t = t.AddDate(0, 1, 0)
		}
		if !t.Before(q.To) {
			break
		}
		out = append(out, t)
	}
	return append(out, q.To)
}

func (q *Query) key(u *apiv1.UsageRecord) string {
	var k string
	switch q.By {
	case "group":
		k = u.Group
		if u.IsSum() {
			k = SummedKey
		} else if k == "" {
			k = u.Metadata.ID
		}
	case "tenant":
		k = u.Metadata.Tenant
	case "vnode": // (two tenants' nodes may share a name)
		if u.VirtualNode != "" {
			k = u.Metadata.Tenant + "/" + u.VirtualNode
		}
	case "size":
		k = u.InstanceSpec
		if u.InstanceType != "" {
			k = u.InstanceType
		}
	default:
		k = u.Tags[strings.TrimPrefix(q.By, "tag:")]
	}
	if k == "" {
		return "-"
	}
	return k
}

func (q *Query) keeps(u *apiv1.UsageRecord) bool {
	for k, v := range q.Tags {
		if u.Tags[k] != v {
			return false
		}
	}
	return true
}

type lineSum struct {
	line   apiv1.BillLine
	amount *big.Rat
	groups map[string]bool // the groups counted (a group may have several records)
}

// add counts pend and run seconds of u, in the line's window from, on the
// line (parted: u's group has several records, to be counted once).
func (s *lineSum) add(u *apiv1.UsageRecord, from time.Time, pend, run int64, parted bool) {
	l := &s.line
	if u.IsSum() {
		l.Groups += u.Groups
		if from.Unix() > u.Start.Unix()-3600 { // the hour before is not in this line
			l.Groups += u.Continued
		}
	} else if !parted || !s.groups[u.Group] {
		l.Groups++
		if parted {
			if s.groups == nil {
				s.groups = map[string]bool{}
			}
			s.groups[u.Group] = true
		}
	}
	l.PendingSeconds += pend
	l.RunningSeconds += run
	cpu, mem, gpu, storage := u.ResourceSeconds(pend + run)
	l.MilliCPUSeconds += cpu
	l.MemoryMiBSeconds += mem
	l.GPUSeconds += gpu
	l.ExtraStorageGiBSeconds += storage
}

// MaxLines bounds a bill's lines (keys times periods).
const MaxLines = 100_000

// Bill rates records (a group at most once) over q, which Validate took.
// Each record visits only the periods it overlaps; a bill over MaxLines
// lines is refused, and so is one whose ctx ends.
func (b *Book) Bill(ctx context.Context, records []apiv1.UsageRecord, q Query) (*apiv1.Bill, error) {
	bounds := q.Periods()
	sums := map[[2]string]*lineSum{}
	work := 0
	// Groups with records of parts (split at a tag change) are counted once
	// a line through a set; the others have one record each.
	parted := map[string]bool{}
	for i := range records {
		if u := &records[i]; u.IsPart() {
			parted[u.Group] = true
		}
	}
	for i := range records {
		if i%1024 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		u := &records[i]
		if !q.keeps(u) || !u.End.After(q.From) || !u.Start.Before(q.To) {
			continue
		}
		key := q.key(u)
		// The first period that ends after the record starts.
		first := sort.Search(len(bounds)-1, func(j int) bool { return bounds[j+1].After(u.Start) })
		for j := first; j+1 < len(bounds) && bounds[j].Before(u.End); j++ {
			if work++; work%4096 == 0 && ctx.Err() != nil {
				return nil, ctx.Err()
			}
			from, to := bounds[j], bounds[j+1]
			pend, run := u.Seconds(from, to)
			secs := pend + run
			if secs == 0 {
				continue
			}
			id := [2]string{from.Format(time.RFC3339), key}
			s := sums[id]
			if s == nil {
				if len(sums) >= MaxLines {
					return nil, fmt.Errorf("the bill would have over %d lines (keys times periods): choose a coarser granularity, a shorter period or another by: %w", MaxLines, errTooLarge)
				}
				s = &lineSum{line: apiv1.BillLine{Key: key}, amount: new(big.Rat)}
				if q.Granularity != "" {
					start := from
					s.line.Period = &start
				}
				sums[id] = s
			}
			s.add(u, from, pend, run, parted[u.Group])
			s.amount.Add(s.amount, b.Cost(u, from, to))
		}
	}
	out := &apiv1.Bill{From: q.From, To: q.To, Granularity: q.Granularity, By: q.By, Currency: b.Currency, Lines: []apiv1.BillLine{}}
	total := new(big.Rat)
	for _, s := range sums {
		s.line.Amount = s.amount.FloatString(10)
		shown, _ := new(big.Rat).SetString(s.line.Amount)
		total.Add(total, shown)
		out.Lines = append(out.Lines, s.line)
	}
	sort.Slice(out.Lines, func(i, j int) bool {
		a, c := out.Lines[i], out.Lines[j]
		if a.Period != nil && !a.Period.Equal(*c.Period) {
			return a.Period.Before(*c.Period)
		}
		return a.Key < c.Key
	})
	out.Total = total.FloatString(2)
	return out, nil
}

// ErrTooLarge is a bill refused for its size (errors.Is).
var errTooLarge = errors.New("bill too large")

// IsTooLarge tells whether err refused a bill for its size.
func IsTooLarge(err error) bool { return errors.Is(err, errTooLarge) }
