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
	"strings"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/billing"
	"github.com/eci-dev/eci/internal/log"
	"github.com/eci-dev/eci/internal/store"
)

// Folding short groups' usage (docs/billing.md). A tenant that makes and
// removes groups fast writes a usage record for each; kept one by one for
// the whole retention they would grow the store without bound. Once the
// usage detail period has passed, the records of groups (and virtual
// nodes' intervals) whose whole life was within one UTC hour and one
// price period are summed per tenant, hour, price period and what a bill
// groups them by (size, tags, virtual node): one record per sum,
// apiv1.UsageRecord.Groups, with the records' seconds, resource-seconds
// and exact cost. A tenant's hour has at most MaxFoldSums sums; its
// further records go to sums of the rest, which keep only the tags, node
// and size that have few values among them (usagerest.go).
//
// A fold deletes its records and adds them to their sum in one
// transaction, under conditions that each is as it was read: a crash, a
// restart or two servers folding at once never count a group twice or
// lose it. Costs do not change: a record's cost is reckoned at the fold
// with the stored price book, whose past prices are fixed before the
// first fold (fixPriceBook) and never change after (billing.CheckChange).

// DefaultUsageDetail keeps short groups' usage records one by one for two
// days before they are summed by hour.
const DefaultUsageDetail = 48 * time.Hour

// foldBatchSize records are folded per transaction (etcd takes 128
// operations in one); the hourly pass works at most usagePassBudget, and
// the next minute's goes on.
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

// foldable tells whether r is a group's whole usage (not a part, the
// last part of a split group, or a sum) or a virtual node's interval,
// ended and written before cutoff, within one UTC hour and one price
// period. (A record just written may be read by a reader that also read
// its group before the removal: it stays apart for the reader to count
// the group once.)
func foldable(r *apiv1.UsageRecord, book *billing.Book, cutoff time.Time, split map[string]bool) bool {
	s, e := r.Start.Unix(), r.End.Unix()
	whole := r.Group != "" && r.Metadata.ID == usageKey(r.Metadata.Tenant, r.Group) && !split[r.Metadata.ID]
	vnode := r.Group == "" && r.VirtualNode != ""
	if r.Groups > 0 || r.Open || !(whole || vnode) || !r.End.Before(cutoff) || !r.Metadata.CreatedAt.Before(cutoff) ||
		e <= s || s/3600 != (e-1)/3600 {
		return false
	}
	_, _, end := periodOf(book, r.Start)
	return end.IsZero() || end.Unix() >= e
}

// keyOf is the key of r's own sum.
func keyOf(r *apiv1.UsageRecord, book *billing.Book) sumKey {
	period, _, _ := periodOf(book, r.Start)
	return sumKey{Tenant: r.Metadata.Tenant, Hour: r.Start.Unix() / 3600 * 3600, Period: period,
		Tags: r.Tags, VirtualNode: r.VirtualNode, InstanceType: r.InstanceType, InstanceSpec: r.InstanceSpec}
}

// sumOf is the empty sum of k, whose record is r: from the hour's start,
// or its period's if later, to the hour's end, or the next period's start
// if earlier.
func sumOf(k *sumKey, r *apiv1.UsageRecord, book *billing.Book, now time.Time) *apiv1.UsageRecord {
	start, end := time.Unix(k.Hour, 0).UTC(), time.Unix(k.Hour+3600, 0).UTC()
	_, pstart, pend := periodOf(book, r.Start)
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

// fold is one sum and the records to add to it.
type fold struct {
	sum     *apiv1.UsageRecord
	stored  bool // sum is in the store, at its ResourceVersion
	members []*apiv1.UsageRecord
}

// foldUsage sums the short groups' usage records past the usage detail
// period (the hourly pass, after the retention's removals), until
// deadline: false when it stopped there.
func (s *Service) foldUsage(ctx context.Context, recs []*apiv1.UsageRecord, now, deadline time.Time) bool {
	book := s.prices.p.Load()
	if book == nil || !hasMembers(s.chooseSums(recs, book, now)) {
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
	folds := s.chooseSums(recs, book, now)
	folded := 0
	defer func() {
		if folded > 0 {
			log.G(ctx).Info("summed short groups' usage records by hour", "records", folded)
		}
	}()
	for _, id := range slices.Sorted(maps.Keys(folds)) {
		f := folds[id]
		for len(f.members) > 0 {
			if time.Now().After(deadline) {
				return false
			}
			n := min(len(f.members), foldBatchSize)
			if err := s.foldBatch(ctx, book, f, f.members[:n]); err != nil {
				log.G(ctx).Warn("fold usage records", "sum", id, "err", err)
				break // read again at the next pass
			}
			folded += n
			f.members = f.members[n:]
		}
	}
	return true
}

func hasMembers(folds map[string]*fold) bool {
	for _, f := range folds {
		if len(f.members) > 0 {
			return true
		}
	}
	return false
}

// chooseSums gives each foldable record its sum: its own key's, while its
// tenant's hour has fewer than MaxFoldSums (the keys of most records
// first), else a sum of the rest (usagerest.go).
func (s *Service) chooseSums(recs []*apiv1.UsageRecord, book *billing.Book, now time.Time) map[string]*fold {
	folds := map[string]*fold{}
	full := map[slot]int{}     // a slot's sums, but the rest's
	split := map[string]bool{} // the records of groups with parts
	for _, r := range recs {
		if r.Groups > 0 {
			folds[r.Metadata.ID] = &fold{sum: r, stored: true}
			if !isRest(r) {
				period, _, _ := periodOf(book, r.Start)
				full[slot{r.Metadata.Tenant, r.Start.Unix() / 3600 * 3600, period}]++
			}
		}
		if r.Group != "" && r.Metadata.ID != usageKey(r.Metadata.Tenant, r.Group) {
			split[usageKey(r.Metadata.Tenant, r.Group)] = true
		}
	}
	cutoff := now.Add(-s.opts.UsageDetail)
	fresh := map[slot]map[string][]*apiv1.UsageRecord{} // sums not stored yet, by slot and id
	keys := map[string]sumKey{}
	for _, r := range recs {
		if !foldable(r, book, cutoff, split) {
			continue
		}
		k := keyOf(r, book)
		id := k.id()
		if f := folds[id]; f != nil {
			f.members = append(f.members, r)
			continue
		}
		if fresh[k.slot()] == nil {
			fresh[k.slot()] = map[string][]*apiv1.UsageRecord{}
		}
		fresh[k.slot()][id] = append(fresh[k.slot()][id], r)
		keys[id] = k
	}
	for sl, byID := range fresh {
		ids := slices.SortedFunc(maps.Keys(byID), func(a, b string) int {
			if d := len(byID[b]) - len(byID[a]); d != 0 {
				return d
			}
			return strings.Compare(a, b)
		})
		var rest []*apiv1.UsageRecord
		for _, id := range ids {
			if full[sl] >= MaxFoldSums {
				rest = append(rest, byID[id]...)
				continue
			}
			full[sl]++
			k := keys[id]
			folds[id] = &fold{sum: sumOf(&k, byID[id][0], book, now), members: byID[id]}
		}
		dims := restDimsOf(sl, rest)
		for _, r := range rest {
			k := dims.key(sl, r)
			id := k.id()
			if folds[id] == nil {
				folds[id] = &fold{sum: sumOf(&k, r, book, now)}
			}
			folds[id].members = append(folds[id].members, r)
		}
	}
	return folds
}

// foldBatch deletes members and adds them to f's sum, in one transaction
// that holds only while each is as it was read.
func (s *Service) foldBatch(ctx context.Context, book *billing.Book, f *fold, members []*apiv1.UsageRecord) error {
	next := *f.sum
	amount := new(big.Rat)
	if next.Amount != "" {
		if _, ok := amount.SetString(next.Amount); !ok {
			return fmt.Errorf("sum %s: amount %q is not a number", next.Metadata.ID, next.Amount)
		}
	}
	cond := s.records.Absent(f.sum.Metadata.ID)
	if f.stored {
		c, err := s.records.Unchanged(f.sum)
		if err != nil {
			return fmt.Errorf("sum %s: %w", next.Metadata.ID, err)
		}
		cond = c
	}
	conds := []store.Cond{cond}
	var ops []store.Op
	for _, r := range members {
		c, err := s.records.Unchanged(r)
		if err != nil {
			return fmt.Errorf("sum %s: %w", next.Metadata.ID, err)
		}
		conds = append(conds, c)
		ops = append(ops, s.records.DeleteOp(r.Metadata.ID))
		pend, run := r.Seconds(r.Start, r.End)
		cpu, mem, gpu, storage := r.ResourceSeconds(pend + run)
		next.Groups++
		next.PendingSeconds += pend
		next.RunningSeconds += run
		next.MilliCPUSeconds += cpu
		next.MemoryMiBSeconds += mem
		next.GPUSeconds += gpu
		next.ExtraStorageGiBSeconds += storage
		amount.Add(amount, book.Cost(r, r.Start, r.End))
	}
	next.Amount = amount.RatString()
	put, err := s.records.PutOp(&next)
	if err != nil {
		return fmt.Errorf("sum %s: %w", next.Metadata.ID, err)
	}
	rev, err := s.st.Commit(ctx, conds, append(ops, put))
	if err != nil {
		return fmt.Errorf("sum %s of %d records: %w", next.Metadata.ID, len(members), err)
	}
	next.Metadata.ResourceVersion = strconv.FormatInt(rev, 10)
	*f.sum, f.stored = next, true
	return nil
}
