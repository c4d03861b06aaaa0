package control

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"math/big"
	"slices"
	"strconv"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/billing"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/log"
	"github.com/eci-dev/eci/internal/store"
)

// Folding short groups' usage (docs/billing.md). A tenant that makes and
// removes groups fast writes a usage record for each; kept one by one for
// the whole retention they would grow the store without bound. Once the
// usage detail period has passed, the records of groups (and virtual
// nodes' intervals) whose life was within one UTC hour, or across one
// hour's end, in one price period, are summed per tenant, hour, price
// period and what a bill groups them by (size, tags, virtual node): one
// record per sum (apiv1.UsageRecord.IsSum), with the records' seconds,
// resource-seconds and exact cost; a record across an hour's end is cut
// there, its group counted in the first hour (Groups) and the second
// knowing it (Continued). A tenant's hour has at most MaxFoldSums sums; its
// further records go to sums of the rest, which keep only the tags, node
// and size that have few values among them (usagerest.go).
//
// A fold deletes its records and adds them to their sum in one
// transaction, under conditions that each is as it was read: a crash, a
// restart or two servers folding at once never count a group twice or
// lose it. Costs do not change: a record's cost is reckoned at the fold
// with the stored price book, whose past prices are fixed before the
// first fold (fixPriceBook) and are refused changes after
// (billing.CheckChange).

// DefaultUsageDetail keeps short groups' usage records one by one for two
// days before they are summed by hour.
const DefaultUsageDetail = 48 * time.Hour

// foldBatchSize records are folded (or removed) per transaction (etcd
// takes 128 operations in one: with their sums, at most 102). The hourly
// pass, in a goroutine of its own, starts no transaction but its first
// after usagePassBudget (for the retention's removals, then again for the
// folds, after their sums are chosen), and the next minute's goes on
// where it stopped.
const (
	foldBatchSize   = 100
	usagePassBudget = 10 * time.Second
)

// sumKey is what the records of one sum share.
type sumKey struct {
	Tenant       string            `json:"t"`
	Hour         int64             `json:"h"`
	Period       string            `json:"p,omitempty"` // its start; "": before the book's first
	Tags         map[string]string `json:"g,omitempty"`
	VirtualNode  string            `json:"n,omitempty"`
	InstanceType string            `json:"it,omitempty"`
	InstanceSpec string            `json:"is,omitempty"`
	Rest         bool              `json:"r,omitempty"`
}

// id is the sum's usage record id: TENANT/~HOUR-HASH, or
// TENANT/~HOUR-rest-HASH for a sum of the rest (no group id starts with
// '~').
func (k *sumKey) id() string {
	data, _ := json.Marshal(k) // maps marshal in key order
	h := sha256.Sum256(data)
	kind := "-"
	if k.Rest {
		kind = restMark
	}
	return usageKey(k.Tenant, "~"+strconv.FormatInt(k.Hour, 10)+kind+hex.EncodeToString(h[:]))
}

const restMark = "-rest-"

// slot is a tenant's hour in one price period.
type slot struct {
	tenant string
	hour   int64
	period string
}

func (k *sumKey) slot() slot { return slot{k.Tenant, k.Hour, k.Period} }

// periodOf names book's period that holds t by its start ("": before the
// first), and gives its bounds (a zero end: none).
func periodOf(book *billing.Book, t time.Time) (name string, start, end time.Time) {
	for i := range book.Periods {
		if book.Periods[i].From.Unix() > t.Unix() {
			return name, start, book.Periods[i].From
		}
		start = book.Periods[i].From
		name = start.UTC().Format(time.RFC3339)
	}
	return name, start, time.Time{}
}

// piece is the part of a record that goes to one sum: the whole of it,
// or the part in each hour of a record across an hour's end.
type piece struct {
	r         *apiv1.UsageRecord
	from, to  time.Time
	key       sumKey // its own sum's (chooseSums may send it to a sum of the rest)
	id        string // the sum chosen
	continued bool   // the second hour's part: its group is counted in the first
}

// piecesOf cuts r into its pieces, or none when it is not to be folded:
// only a group's whole usage (not a part, the last part of a split group,
// or a sum) or a virtual node's interval, ended and written before
// cutoff, within one UTC hour or across one hour's end, in one price
// period (which began before its hour, for one across). A record just
// written may be read by a reader that also read its group before the
// removal: it stays apart for the reader to count the group once.
func piecesOf(r *apiv1.UsageRecord, book *billing.Book, cutoff time.Time, split map[string]bool) []*piece {
	whole := r.Group != "" && !r.IsPart() && !split[r.Metadata.ID]
	vnode := r.Group == "" && r.VirtualNode != ""
	switch {
	case r.IsSum() || r.Open || !whole && !vnode:
		return nil
	case !r.End.Before(cutoff) || !r.Metadata.CreatedAt.Before(cutoff):
		return nil
	}
	s, e := r.Start.Unix(), r.End.Unix()
	hour, last := s/3600*3600, (e-1)/3600*3600
	period, pstart, pend := periodOf(book, r.Start)
	if e <= s || last > hour+3600 || !pend.IsZero() && pend.Unix() < e || last > hour && pstart.Unix() > hour {
		return nil
	}
	k := sumKey{Tenant: r.Metadata.Tenant, Hour: hour, Period: period,
		Tags: r.Tags, VirtualNode: r.VirtualNode, InstanceType: r.InstanceType, InstanceSpec: r.InstanceSpec}
	if last == hour {
		return []*piece{{r: r, from: r.Start, to: r.End, key: k}}
	}
	cut := time.Unix(last, 0).UTC()
	next := k
	next.Hour = last
	return []*piece{{r: r, from: r.Start, to: cut, key: k}, {r: r, from: cut, to: r.End, key: next, continued: true}}
}

// sumOf is the empty sum of k, in the period of p: from the hour's start,
// or its period's if later, to the hour's end, or the next period's start
// if earlier.
func sumOf(k *sumKey, p *piece, book *billing.Book, now time.Time) *apiv1.UsageRecord {
	start, end := time.Unix(k.Hour, 0).UTC(), time.Unix(k.Hour+3600, 0).UTC()
	_, pstart, pend := periodOf(book, p.r.Start)
	if pstart.After(start) {
		start = pstart
	}
	if !pend.IsZero() && pend.Before(end) {
		end = pend
	}
	return &apiv1.UsageRecord{
		Metadata: apiv1.ObjectMeta{ID: k.id(), Tenant: k.Tenant, CreatedAt: now},
		Tags:     k.Tags, VirtualNode: k.VirtualNode, InstanceType: k.InstanceType, InstanceSpec: k.InstanceSpec,
		Start: start, End: end,
	}
}

// stored is a sum and whether it is in the store, at its ResourceVersion.
type stored struct {
	sum    *apiv1.UsageRecord
	stored bool
}

// foldUsage sums the short groups' usage records past the usage detail
// period (split: the groups with parts, splitGroups), after the
// retention's removals. It starts no transaction but its first
// usagePassBudget after choosing the sums, and says false when it stopped
// there (the next pass goes on after the sums it reached).
func (s *Service) foldUsage(ctx context.Context, recs []*apiv1.UsageRecord, split map[string]bool, now time.Time) bool {
	book := s.prices.p.Load()
	if book == nil || ctx.Err() != nil || !anyToFold(recs, book, now.Add(-s.opts.UsageDetail), split) {
		return true
	}
	// Something to fold: with the stored book, its past fixed from now on.
	book, err := s.fixPriceBook(ctx) // pricebook.go
	if err != nil || book == nil {
		if err != nil {
			log.G(ctx).Warn("fold usage records", "err", err)
		}
		return true
	}
	sums, batches := s.chooseSums(recs, split, book, now)
	keys := slices.Sorted(maps.Keys(batches))
	// Go on after the sums the last pass that stopped reached: each
	// tenant's turn comes.
	from, _ := slices.BinarySearch(keys, s.pass.cursor)
	deadline := s.pass.deadline()
	folded, tried := 0, 0
	defer func() {
		if folded > 0 {
			log.G(ctx).Info("summed short groups' usage records by hour", "records", folded)
		}
	}()
	for i := range keys {
		key := keys[(from+i)%len(keys)]
		for items := batches[key]; len(items) > 0; {
			if tried > 0 && time.Now().After(deadline) {
				s.pass.cursor = key
				return false
			}
			tried++
			n := min(len(items), foldBatchSize)
			if err := s.foldBatch(ctx, book, sums, items[:n]); err != nil {
				log.G(ctx).Warn("fold usage records", "sums", key, "err", err)
				if errdefs.IsUnavailable(err) || ctx.Err() != nil {
					return true // the next hour's pass
				}
				break // read again at the next pass
			}
			folded += n
			items = items[n:]
		}
	}
	s.pass.cursor = ""
	return true
}

// anyToFold tells whether a record of recs is to be folded.
func anyToFold(recs []*apiv1.UsageRecord, book *billing.Book, cutoff time.Time, split map[string]bool) bool {
	for _, r := range recs {
		if piecesOf(r, book, cutoff, split) != nil {
			return true
		}
	}
	return false
}

// splitGroups are the groups (TENANT/ID) that have records of parts.
func splitGroups(recs []*apiv1.UsageRecord) map[string]bool {
	split := map[string]bool{}
	for _, r := range recs {
		if r.IsPart() {
			split[usageKey(r.Metadata.Tenant, r.Group)] = true
		}
	}
	return split
}

// foldBatch deletes the records of items and adds their pieces to their
// sums, in one transaction that holds only while each record and sum is
// as it was read.
func (s *Service) foldBatch(ctx context.Context, book *billing.Book, sums map[string]*stored, items [][]*piece) error {
	next := map[string]*apiv1.UsageRecord{}
	amounts := map[string]*big.Rat{}
	var conds []store.Cond
	var ops []store.Op
	for _, pieces := range items {
		r := pieces[0].r
		c, err := s.records.Unchanged(r)
		if err != nil {
			return fmt.Errorf("fold %s: %w", r.Metadata.ID, err)
		}
		conds = append(conds, c)
		ops = append(ops, s.records.DeleteOp(r.Metadata.ID))
		for _, p := range pieces {
			sum := next[p.id]
			if sum == nil {
				cur := sums[p.id]
				cond, err := s.sumCond(cur)
				if err != nil {
					return err
				}
				conds = append(conds, cond)
				copied := *cur.sum
				sum, next[p.id], amounts[p.id] = &copied, &copied, new(big.Rat)
				if copied.Amount != "" {
					if _, ok := amounts[p.id].SetString(copied.Amount); !ok {
						return fmt.Errorf("sum %s: amount %q is not a number", p.id, copied.Amount)
					}
				}
			}
			addPiece(sum, p)
			amounts[p.id].Add(amounts[p.id], book.Cost(r, p.from, p.to))
		}
	}
	for id, sum := range next {
		sum.Amount = amounts[id].RatString()
		put, err := s.records.PutOp(sum)
		if err != nil {
			return fmt.Errorf("sum %s: %w", id, err)
		}
		ops = append(ops, put)
	}
	rev, err := s.st.Commit(ctx, conds, ops)
	if err != nil {
		return fmt.Errorf("fold %d records: %w", len(items), err)
	}
	for id, sum := range next {
		sum.Metadata.ResourceVersion = strconv.FormatInt(rev, 10)
		*sums[id] = stored{sum: sum, stored: true}
	}
	return nil
}

// sumCond holds while the sum is as read: absent, or unchanged.
func (s *Service) sumCond(cur *stored) (store.Cond, error) {
	if !cur.stored {
		return s.records.Absent(cur.sum.Metadata.ID), nil
	}
	c, err := s.records.Unchanged(cur.sum)
	if err != nil {
		return store.Cond{}, fmt.Errorf("sum %s: %w", cur.sum.Metadata.ID, err)
	}
	return c, nil
}

// addPiece adds p's seconds and resource-seconds to sum, and its group.
func addPiece(sum *apiv1.UsageRecord, p *piece) {
	pend, run := p.r.Seconds(p.from, p.to)
	cpu, mem, gpu, storage := p.r.ResourceSeconds(pend + run)
	if p.continued {
		sum.Continued++
	} else {
		sum.Groups++
	}
	sum.PendingSeconds += pend
	sum.RunningSeconds += run
	sum.MilliCPUSeconds += cpu
	sum.MemoryMiBSeconds += mem
	sum.GPUSeconds += gpu
	sum.ExtraStorageGiBSeconds += storage
}
