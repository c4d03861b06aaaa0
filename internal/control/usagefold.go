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
	"github.com/eci-dev/eci/internal/log"
	"github.com/eci-dev/eci/internal/store"
)

// Folding short groups' usage (docs/billing.md). A tenant that makes and
// removes groups fast writes a usage record for each; kept one by one for
// the whole retention they would grow the store without bound. Once the
// usage detail period has passed, the records of groups whose whole life
// was within one UTC hour and one price period are summed per tenant,
// hour, price period and what prices or allocates them (size, zone, GPU
// model, spot, tags, virtual node): one record per sum,
// apiv1.UsageRecord.Groups, with the records' seconds, resource-seconds
// and exact cost. A tenant's hour has at most MaxFoldSums sums; its
// further records go to one more, of the rest, which keeps only their
// totals and cost.
//
// A fold deletes its records and adds them to their sum in one
// transaction, under conditions that each is as it was read: a crash, a
// restart or two servers folding at once never count a group twice or
// lose it. Costs do not change: a record's cost is reckoned at the fold
// with the prices of its period, which never change once it has begun
// (billing.CheckChange).

// DefaultUsageDetail keeps short groups' usage records one by one for two
// days before they are summed by hour.
const DefaultUsageDetail = 48 * time.Hour

// MaxFoldSums bounds the sums of one tenant's hour and price period:
// the records of further sizes, tags or nodes go to a sum of the rest (a
// tenant giving each short group a size, tags or node label of its own
// would otherwise keep a record for each).
const MaxFoldSums = 50

// foldBatch records are folded per transaction (etcd takes 128 operations
// in one).
const foldBatch = 100

// sumKey is what the records of one sum share.
type sumKey struct {
	Tenant          string            `json:"t"`
	Hour            int64             `json:"h"`
	Period          int               `json:"p"`
	Tags            map[string]string `json:"g,omitempty"`
	VirtualNode     string            `json:"n,omitempty"`
	Zone            string            `json:"z,omitempty"`
	InstanceType    string            `json:"it,omitempty"`
	InstanceSpec    string            `json:"is,omitempty"`
	MilliCPU        int64             `json:"c"`
	MemoryMiB       int64             `json:"m"`
	GPU             int               `json:"gpu,omitempty"`
	GPUModel        string            `json:"gm,omitempty"`
	ExtraStorageGiB int               `json:"s,omitempty"`
	Spot            bool              `json:"spot,omitempty"`
	Rest            bool              `json:"rest,omitempty"`
}

// id is the sum's usage record id: TENANT/~HOUR-HASH (no group id starts
// with '~').
func (k *sumKey) id() string {
	data, _ := json.Marshal(k) // maps marshal in key order
	h := sha256.Sum256(data)
	return usageKey(k.Tenant, "~"+strconv.FormatInt(k.Hour, 10)+"-"+hex.EncodeToString(h[:8]))
}

// foldable tells the period of book r's life was within, and whether r
// is a group's whole usage (not a part, a sum or a virtual node's), ended
// and written before cutoff, within one UTC hour and one price period. (A
// record just written may be read by a reader that also read its group
// before the removal: it must stay apart for the reader to count it once.)
func foldable(r *apiv1.UsageRecord, book *billing.Book, cutoff time.Time) (int, bool) {
	s, e := r.Start.Unix(), r.End.Unix()
	if r.Groups > 0 || r.Open || r.Group == "" || r.Metadata.ID != usageKey(r.Metadata.Tenant, r.Group) ||
		!r.End.Before(cutoff) || !r.Metadata.CreatedAt.Before(cutoff) || e <= s || s/3600 != (e-1)/3600 {
		return 0, false
	}
	for i := range book.Periods {
		if f := book.Periods[i].From.Unix(); f > s && f < e {
			return 0, false // a price change within its life
		}
	}
	period := periodOf(book, r.Start)
	return period, true
}

// sumOf is the empty sum of k: from the hour's start, or its period's
// if later, to the hour's end, or the next period's start if earlier.
func sumOf(k *sumKey, book *billing.Book, now time.Time) *apiv1.UsageRecord {
	start, end := time.Unix(k.Hour, 0).UTC(), time.Unix(k.Hour+3600, 0).UTC()
	if k.Period >= 0 {
		if from := book.Periods[k.Period].From; from.After(start) {
			start = from
		}
		if k.Period+1 < len(book.Periods) && book.Periods[k.Period+1].From.Before(end) {
			end = book.Periods[k.Period+1].From
		}
	}
	return &apiv1.UsageRecord{
		Metadata: apiv1.ObjectMeta{ID: k.id(), Tenant: k.Tenant, CreatedAt: now},
		Tags:     k.Tags, VirtualNode: k.VirtualNode, Zone: k.Zone, InstanceType: k.InstanceType, InstanceSpec: k.InstanceSpec,
		MilliCPU: k.MilliCPU, MemoryMiB: k.MemoryMiB, GPU: k.GPU, GPUModel: k.GPUModel, ExtraStorageGiB: k.ExtraStorageGiB, Spot: k.Spot,
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
// period (the hourly garbage collection, after the retention's removals).
func (s *Service) foldUsage(ctx context.Context, recs []*apiv1.UsageRecord, now time.Time) {
	book := s.prices.p.Load()
	if book == nil {
		return
	}
	folds := map[string]*fold{}
	type slot struct {
		tenant string
		hour   int64
		period int
	}
	sums := map[slot]int{} // the sums of a tenant's hour and period, but the rest
	for _, r := range recs {
		if r.Groups > 0 {
			folds[r.Metadata.ID] = &fold{sum: r, stored: true}
			if r.MilliCPU > 0 { // not the rest's
				sums[slot{r.Metadata.Tenant, r.Start.Unix() / 3600 * 3600, periodOf(book, r.Start)}]++
			}
		}
	}
	cutoff := now.Add(-s.opts.UsageDetail)
	for _, r := range recs {
		period, ok := foldable(r, book, cutoff)
		if !ok {
			continue
		}
		k := sumKey{Tenant: r.Metadata.Tenant, Hour: r.Start.Unix() / 3600 * 3600, Period: period, Tags: r.Tags, VirtualNode: r.VirtualNode,
			Zone: r.Zone, InstanceType: r.InstanceType, InstanceSpec: r.InstanceSpec, MilliCPU: r.MilliCPU, MemoryMiB: r.MemoryMiB,
			GPU: r.GPU, GPUModel: r.GPUModel, ExtraStorageGiB: r.ExtraStorageGiB, Spot: r.Spot}
		id := k.id()
		if folds[id] == nil {
			if at := (slot{k.Tenant, k.Hour, k.Period}); sums[at] >= MaxFoldSums {
				k = sumKey{Tenant: k.Tenant, Hour: k.Hour, Period: k.Period, Rest: true}
				id = k.id()
			} else {
				sums[at]++
			}
		}
		f := folds[id]
		if f == nil {
			f = &fold{sum: sumOf(&k, book, now)}
			folds[id] = f
		}
		f.members = append(f.members, r)
	}
	folded := 0
	for _, id := range slices.Sorted(maps.Keys(folds)) {
		f := folds[id]
		for len(f.members) > 0 {
			n := min(len(f.members), foldBatch)
			if err := s.foldBatch(ctx, book, f, f.members[:n]); err != nil {
				log.G(ctx).Warn("fold usage records", "sum", id, "err", err)
				break // read again at the next pass
			}
			folded += n
			f.members = f.members[n:]
		}
	}
	if folded > 0 {
		log.G(ctx).Info("summed short groups' usage records by hour", "records", folded)
	}
}

// periodOf is the index of book's period that holds t (-1: before the
// first).
func periodOf(book *billing.Book, t time.Time) int {
	period := -1
	for i := range book.Periods {
		if book.Periods[i].From.Unix() <= t.Unix() {
			period = i
		}
	}
	return period
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
	var conds []store.Cond
	var ops []store.Op
	if f.stored {
		c, err := s.records.Unchanged(f.sum)
		if err != nil {
			return err
		}
		conds = append(conds, c)
	} else {
		conds = append(conds, s.records.Absent(f.sum.Metadata.ID))
	}
	for _, r := range members {
		c, err := s.records.Unchanged(r)
		if err != nil {
			return err
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
		return err
	}
	rev, err := s.st.Commit(ctx, conds, append(ops, put))
	if err != nil {
		return err
	}
	next.Metadata.ResourceVersion = strconv.FormatInt(rev, 10)
	*f.sum, f.stored = next, true
	return nil
}
