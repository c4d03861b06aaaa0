package control

import (
	"context"
	"errors"
	"slices"
	"strconv"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/log"
	"github.com/eci-dev/eci/internal/store"
)

// placeBatch is what a placer pass decided and has not committed yet. The
// pass decides each group against its state, which it changes at once (the
// host's and the tenant's usage, the address taken), and commits up to
// maxBatch placements in one transaction: a burst of groups costs a few
// transactions (and fsyncs), not one each, and no decision waits for the
// store to be made.
//
// A usage record that two placements of a batch change is written once:
// the batch keeps the first's condition (the version the pass read) and
// the last's value. Every other key a placement writes is its own (its
// group, its address's record); a placement with more (an EIP, a fixed
// IP's records) is committed alone, the batch first (errBatchFirst).
type placeBatch struct {
	conds  []store.Cond
	ops    []store.Op
	opAt   map[string]int // ops' index by key
	bytes  int            // of ops
	groups []*apiv1.ContainerGroup
	done   []func(rev int64) // after the commit: versions, waiting set, events
}

// maxBatch bounds a batch: up to 5 writes a group (its record, its
// address, its first event, the host's and tenant's usage), within etcd's
// default of 128 operations a transaction.
const maxBatch = 20

// maxBatchBytes bounds what a batch writes, well within etcd's request
// limit (1.5 MiB by default): a group may be up to 1 MiB, and a batch of
// large ones must not fail where each alone would pass. A placement that
// would pass it is committed alone.
const maxBatchBytes = 512 << 10

// errBatchFirst: the placement can't join the batch; commit the batch, then
// place the group alone.
var errBatchFirst = errors.New("the batch must be committed first")

func newPlaceBatch() *placeBatch {
	return &placeBatch{opAt: map[string]int{}}
}

func (b *placeBatch) empty() bool { return b == nil || len(b.groups) == 0 }

func (b *placeBatch) full() bool { return b != nil && len(b.groups) >= maxBatch }

// has tells whether the batch writes key.
func (b *placeBatch) has(key string) bool {
	if b == nil {
		return false
	}
	_, ok := b.opAt[key]
	return ok
}

// add joins a placement of g to the batch: its conditions (usageChangeIn
// leaves out those on usage records the batch writes), and its writes, a
// usage record's (merge) replacing the batch's write of it. errBatchFirst
// when the placement can't join: it writes another key the batch writes,
// or would make the batch too large.
func (b *placeBatch) add(g *apiv1.ContainerGroup, conds []store.Cond, ops []store.Op, merge []string, done func(int64)) error {
	size := 0
	for _, o := range ops {
		if b.has(o.Key()) && !slices.Contains(merge, o.Key()) {
			return errBatchFirst
		}
		size += o.Size()
	}
	if b.bytes+size > maxBatchBytes {
		return errBatchFirst
	}
	b.conds = append(b.conds, conds...)
	for _, o := range ops {
		if i, ok := b.opAt[o.Key()]; ok {
			b.bytes -= b.ops[i].Size()
			b.ops[i] = o
		} else {
			b.opAt[o.Key()] = len(b.ops)
			b.ops = append(b.ops, o)
		}
		b.bytes += o.Size()
	}
	b.groups, b.done = append(b.groups, g), append(b.done, done)
	return nil
}

// settled makes a refusal the state decided (no room, an address taken):
// with placements of the pass not committed yet, which may still fail,
// the batch is committed first and the group decided again
// (errBatchFirst). A refusal is never made on room the batch only holds.
func (b *placeBatch) settled(refuse func() error) error {
	if !b.empty() {
		return errBatchFirst
	}
	return refuse()
}

func (b *placeBatch) reset() {
	*b = *newPlaceBatch()
}

// flushBatch commits b. When that fails, nothing of it was written: the
// state is read again and b's groups are placed one at a time.
func (s *Service) flushBatch(ctx context.Context, st *placementState, b *placeBatch) (*placementState, error) {
	if b.empty() {
		return st, nil
	}
	groups, done := b.groups, b.done
	conds, ops := b.conds, b.ops
	b.reset()
	rev, err := s.st.Commit(ctx, conds, ops)
	if err == nil {
		for _, f := range done {
			f(rev)
		}
		return st, nil
	}
	// Nothing of it was written: a condition failed (another writer
	// changed a host's usage, an address or a group), or the store
	// refused the write. Each is placed alone, as before batches.
	s.batchFallbacks.Add(1)
	log.G(ctx).Debug("a batch of placements was not committed; placing each alone", "groups", len(groups), "err", err)
	if st, err = s.loadPlacementState(ctx); err != nil {
		return nil, err
	}
	for _, g := range groups {
		cur, err := s.groups.Get(ctx, g.Metadata.ID)
		if err != nil || !waits(cur) {
			continue
		}
		if st, err = s.placeWithRetry(ctx, st, cur, nil); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// placeWithRetry places g (into b when not nil), reading the state again
// when a commit conflicted, up to 3 times; it returns the state to go on
// with.
func (s *Service) placeWithRetry(ctx context.Context, st *placementState, g *apiv1.ContainerGroup, b *placeBatch) (*placementState, error) {
	for attempt := 0; ; attempt++ {
		err := s.placeOne(ctx, st, g, b)
		if errors.Is(err, errBatchFirst) {
			if st, err = s.flushBatch(ctx, st, b); err != nil {
				return nil, err
			}
			err = s.placeOne(ctx, st, g, nil)
		}
		if err == nil || !errdefs.IsConflict(err) || attempt >= 3 {
			if err != nil && !errdefs.IsConflict(err) && !errdefs.IsNotFound(err) {
				log.G(ctx).Warn("place group", "group", g.Metadata.ID, "err", err)
			}
			return st, nil
		}
		// Someone else changed a host's usage, an IP or the group: read
		// again (what the batch holds first, so that the state has it).
		if st, err = s.flushBatch(ctx, st, b); err != nil {
			return nil, err
		}
		if st, err = s.loadPlacementState(ctx); err != nil {
			return nil, err
		}
		if g, err = s.groups.Get(ctx, g.Metadata.ID); err != nil || g.Status.State != apiv1.StateScheduling {
			return st, nil
		}
	}
}

// stampUsage sets the version of the state's usage records of host and
// tenant to rev, the commit that wrote them.
func (st *placementState) stampUsage(host, tenant string, rev int64) {
	rv := strconv.FormatInt(rev, 10)
	if u := st.usage[host]; u != nil {
		u.Metadata.ResourceVersion = rv
	}
	if u := st.tusage[tenant]; u != nil {
		u.Metadata.ResourceVersion = rv
	}
}

// usageChangeIn is usageChange for a placement that may join b: a record
// the batch already writes changes from its value there, with no
// condition of its own (the batch's holds for it).
func usageChangeIn(b *placeBatch, coll *store.Collection[usageRecord, *usageRecord], id string, cur *usageRecord, delta apiv1.Resources) ([]store.Cond, store.Op, *usageRecord, error) {
	if b.has(coll.Key(id)) {
		next := usageNext(id, cur, delta)
		op, err := coll.PutOp(next)
		return nil, op, next, err
	}
	cmp, op, next, err := usageChange(coll, id, cur, delta)
	return []store.Cond{cmp}, op, next, err
}
