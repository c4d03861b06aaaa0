package store

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/eci-dev/eci/internal/errdefs"
)

// Cond is one condition of a transaction, made by a collection (Absent,
// Present, Unchanged): the transaction writes nothing unless every one holds.
type Cond struct{ cmp clientv3.Cmp }

// Op is one write of a transaction, made by a collection (PutOp, DeleteOp).
type Op struct{ op clientv3.Op }

// Key is the store key the condition reads.
func (c Cond) Key() string { return string(c.cmp.Key) }

// Key is the store key the write changes.
func (o Op) Key() string { return string(o.op.KeyBytes()) }

// Size is the bytes the write sends: its key and value.
func (o Op) Size() int { return len(o.op.KeyBytes()) + len(o.op.ValueBytes()) }

func cmps(conds []Cond) []clientv3.Cmp {
	out := make([]clientv3.Cmp, len(conds))
	for i, c := range conds {
		out[i] = c.cmp
	}
	return out
}

func ops(ops []Op) []clientv3.Op {
	out := make([]clientv3.Op, len(ops))
	for i, o := range ops {
		out[i] = o.op
	}
	return out
}

// Commit applies ops in one transaction if every condition holds, and returns
// the store's revision after it: ErrConflict when a condition failed (nothing
// was written), ErrTooLarge or ErrUnavailable when the write failed.
func (s *Store) Commit(ctx context.Context, conds []Cond, writes []Op) (int64, error) {
	resp, err := s.Client.Txn(ctx).If(cmps(conds)...).Then(ops(writes)...).Commit()
	if err != nil {
		return 0, fmt.Errorf("commit: %w", txnError(err))
	}
	if !resp.Succeeded {
		return 0, fmt.Errorf("commit: a concurrent change: %w", errdefs.ErrConflict)
	}
	return resp.Header.Revision, nil
}
