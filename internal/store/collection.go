package store

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/errdefs"
)

// Object is what a collection holds: an API resource with metadata.
type Object[T any] interface {
	*T
	Meta() *apiv1.ObjectMeta
}

// Collection is one kind of resource in the store.
type Collection[T any, PT Object[T]] struct {
	s    *Store
	kind string
}

// NewCollection returns the collection of kind (a plural noun: containergroups).
func NewCollection[T any, PT Object[T]](s *Store, kind string) *Collection[T, PT] {
	s.kindsMu.Lock()
	s.kinds[kind] = true
	s.kindsMu.Unlock()
	return &Collection[T, PT]{s: s, kind: kind}
}

// Kind is the collection's name.
func (c *Collection[T, PT]) Kind() string { return c.kind }

func (c *Collection[T, PT]) prefix() string { return c.s.prefix + "v1/" + c.kind + "/" }

// Key is the etcd key of id.
func (c *Collection[T, PT]) Key(id string) string { return c.prefix() + id }

func (c *Collection[T, PT]) decode(key, data []byte, rev int64) (PT, error) {
	data, _, err := c.s.keys.open(string(key), data)
	if err != nil {
		return nil, fmt.Errorf("decode stored %s: %w", c.kind, err)
	}
	obj := PT(new(T))
	if err := json.Unmarshal(data, obj); err != nil {
		return nil, fmt.Errorf("decode stored %s: %w", c.kind, err)
	}
	if c.Key(obj.Meta().ID) != string(key) {
		return nil, fmt.Errorf("decode stored %s: the object %q is stored under %s, not its own key", c.kind, obj.Meta().ID, key)
	}
	obj.Meta().ResourceVersion = strconv.FormatInt(rev, 10)
	return obj, nil
}

func (c *Collection[T, PT]) encode(obj PT) (string, error) {
	// The version is the key's ModRevision, never stored in the value.
	rv := obj.Meta().ResourceVersion
	obj.Meta().ResourceVersion = ""
	data, err := json.Marshal(obj)
	obj.Meta().ResourceVersion = rv
	return string(c.s.keys.seal(c.Key(obj.Meta().ID), data)), err
}

// Get reads one object.
func (c *Collection[T, PT]) Get(ctx context.Context, id string) (PT, error) {
	resp, err := c.s.Client.Get(ctx, c.Key(id))
	if err != nil {
		return nil, fmt.Errorf("get %s %s: %w: %w", c.kind, id, errdefs.ErrUnavailable, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, fmt.Errorf("%s %q: %w", c.kind, id, errdefs.ErrNotFound)
	}
	return c.decode(resp.Kvs[0].Key, resp.Kvs[0].Value, resp.Kvs[0].ModRevision)
}

// ListOptions pages a list.
type ListOptions struct {
	// Limit is the page size; 0 means everything.
	Limit int64
	// Continue is the token a previous page returned.
	Continue string
	// Prefix narrows the list to ids that start with it.
	Prefix string
}

type continueToken struct {
	Key string `json:"k"`
	Rev int64  `json:"r"`
}

// List reads objects in key order, all pages at the revision of the first.
// It returns the revision (to watch from) and the next page's token.
func (c *Collection[T, PT]) List(ctx context.Context, opts ListOptions) ([]PT, int64, string, error) {
	base := c.prefix() + opts.Prefix
	start := base
	var rev int64
	if opts.Continue != "" {
		raw, err := base64.RawURLEncoding.DecodeString(opts.Continue)
		var tok continueToken
		if err == nil {
			err = json.Unmarshal(raw, &tok)
		}
		if err != nil || len(tok.Key) < len(start) || tok.Key[:len(start)] != start {
			return nil, 0, "", fmt.Errorf("continue token %q is not one this list returned: %w", opts.Continue, errdefs.ErrInvalidArgument)
		}
		start, rev = tok.Key, tok.Rev
	}
	ropts := []clientv3.OpOption{clientv3.WithRange(clientv3.GetPrefixRangeEnd(base))}
	if opts.Limit > 0 {
		ropts = append(ropts, clientv3.WithLimit(opts.Limit+1))
	}
	if rev > 0 {
		ropts = append(ropts, clientv3.WithRev(rev))
	}
	resp, err := c.s.Client.Get(ctx, start, ropts...)
	if err != nil {
		if isCompacted(err) {
			return nil, 0, "", fmt.Errorf("list %s: the continue token's revision %d was compacted; list again: %w", c.kind, rev, errdefs.ErrGone)
		}
		return nil, 0, "", fmt.Errorf("list %s: %w: %w", c.kind, errdefs.ErrUnavailable, err)
	}
	if rev == 0 {
		rev = resp.Header.Revision
	}
	kvs := resp.Kvs
	next := ""
	if opts.Limit > 0 && int64(len(kvs)) > opts.Limit {
		raw, _ := json.Marshal(continueToken{Key: string(kvs[opts.Limit].Key), Rev: rev})
		next = base64.RawURLEncoding.EncodeToString(raw)
		kvs = kvs[:opts.Limit]
	}
	out := make([]PT, 0, len(kvs))
	for _, kv := range kvs {
		obj, err := c.decode(kv.Key, kv.Value, kv.ModRevision)
		if err != nil {
			return nil, 0, "", err
		}
		out = append(out, obj)
	}
	return out, rev, next, nil
}

// Count counts the objects whose id starts with prefix, reading none.
func (c *Collection[T, PT]) Count(ctx context.Context, prefix string) (int64, error) {
	base := c.prefix() + prefix
	resp, err := c.s.Client.Get(ctx, base, clientv3.WithRange(clientv3.GetPrefixRangeEnd(base)), clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("count %s: %w: %w", c.kind, errdefs.ErrUnavailable, err)
	}
	return resp.Count, nil
}

// PutOp is the write of obj, for a transaction (Store.Commit).
func (c *Collection[T, PT]) PutOp(obj PT) (Op, error) {
	data, err := c.encode(obj)
	if err != nil {
		return Op{}, err
	}
	return Op{clientv3.OpPut(c.Key(obj.Meta().ID), data)}, nil
}

// DeleteOp is the removal of id, for a transaction.
func (c *Collection[T, PT]) DeleteOp(id string) Op { return Op{clientv3.OpDelete(c.Key(id))} }

// Absent holds while id does not exist.
func (c *Collection[T, PT]) Absent(id string) Cond {
	return Cond{clientv3.Compare(clientv3.CreateRevision(c.Key(id)), "=", 0)}
}

// Present holds while id exists.
func (c *Collection[T, PT]) Present(id string) Cond {
	return Cond{clientv3.Compare(clientv3.CreateRevision(c.Key(id)), ">", 0)}
}

// Unchanged holds while obj is still at the version it was read at.
func (c *Collection[T, PT]) Unchanged(obj PT) (Cond, error) {
	rev, err := strconv.ParseInt(obj.Meta().ResourceVersion, 10, 64)
	if err != nil || rev <= 0 {
		return Cond{}, fmt.Errorf("%s %q: resourceVersion %q is not a version this service returned: %w",
			c.kind, obj.Meta().ID, obj.Meta().ResourceVersion, errdefs.ErrInvalidArgument)
	}
	return Cond{clientv3.Compare(clientv3.ModRevision(c.Key(obj.Meta().ID)), "=", rev)}, nil
}

// Create stores a new object; ErrAlreadyExists if its id is taken. Extra
// conditions and operations join the same transaction (ErrConflict when an
// extra condition fails).
func (c *Collection[T, PT]) Create(ctx context.Context, obj PT, conds []Cond, more ...Op) error {
	put, err := c.PutOp(obj)
	if err != nil {
		return err
	}
	id := obj.Meta().ID
	resp, err := c.s.Client.Txn(ctx).
		If(cmps(append([]Cond{c.Absent(id)}, conds...))...).
		Then(ops(append([]Op{put}, more...))...).
		Commit()
	if err != nil {
		return fmt.Errorf("create %s %s: %w", c.kind, id, txnError(err))
	}
	if !resp.Succeeded {
		if _, gerr := c.Get(ctx, id); gerr == nil {
			return fmt.Errorf("%s %q: %w", c.kind, id, errdefs.ErrAlreadyExists)
		}
		return fmt.Errorf("create %s %q: a condition changed: %w", c.kind, id, errdefs.ErrConflict)
	}
	obj.Meta().ResourceVersion = strconv.FormatInt(resp.Header.Revision, 10)
	return nil
}

// Update writes obj if it is still at obj's resourceVersion (ErrConflict
// otherwise; ErrNotFound if it is gone), with extra conditions and operations
// in the same transaction.
func (c *Collection[T, PT]) Update(ctx context.Context, obj PT, conds []Cond, more ...Op) error {
	unchanged, err := c.Unchanged(obj)
	if err != nil {
		return err
	}
	put, err := c.PutOp(obj)
	if err != nil {
		return err
	}
	id := obj.Meta().ID
	resp, err := c.s.Client.Txn(ctx).
		If(cmps(append([]Cond{unchanged}, conds...))...).
		Then(ops(append([]Op{put}, more...))...).
		Commit()
	if err != nil {
		return fmt.Errorf("update %s %s: %w", c.kind, id, txnError(err))
	}
	if !resp.Succeeded {
		if _, gerr := c.Get(ctx, id); errdefs.IsNotFound(gerr) {
			return gerr
		}
		return fmt.Errorf("%s %q was changed since version %s: %w", c.kind, id, obj.Meta().ResourceVersion, errdefs.ErrConflict)
	}
	obj.Meta().ResourceVersion = strconv.FormatInt(resp.Header.Revision, 10)
	return nil
}

// Mutate reads id, applies fn and writes the result, retrying on conflict. fn
// may return an error to stop (it is returned as is).
func (c *Collection[T, PT]) Mutate(ctx context.Context, id string, fn func(PT) error) (PT, error) {
	return c.MutateWith(ctx, id, func(obj PT) ([]Op, error) { return nil, fn(obj) })
}

// MutateWith is Mutate whose fn also returns writes that go in the same
// transaction as the object's.
func (c *Collection[T, PT]) MutateWith(ctx context.Context, id string, fn func(PT) ([]Op, error)) (PT, error) {
	for attempt := 0; ; attempt++ {
		obj, err := c.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		more, err := fn(obj)
		if err != nil {
			return nil, err
		}
		err = c.Update(ctx, obj, nil, more...)
		if err == nil || !errdefs.IsConflict(err) || attempt >= 20 {
			return obj, err
		}
	}
}

// Delete removes obj if it is still at its resourceVersion (any version when
// it is empty), with extra operations in the same transaction.
func (c *Collection[T, PT]) Delete(ctx context.Context, obj PT, more ...Op) error {
	id := obj.Meta().ID
	cond := c.Present(id)
	if obj.Meta().ResourceVersion != "" {
		unchanged, err := c.Unchanged(obj)
		if err != nil {
			return err
		}
		cond = unchanged
	}
	resp, err := c.s.Client.Txn(ctx).If(cond.cmp).Then(ops(append([]Op{c.DeleteOp(id)}, more...))...).Commit()
	if err != nil {
		return fmt.Errorf("delete %s %s: %w: %w", c.kind, id, errdefs.ErrUnavailable, err)
	}
	if !resp.Succeeded {
		if _, gerr := c.Get(ctx, id); errdefs.IsNotFound(gerr) {
			return gerr
		}
		return fmt.Errorf("%s %q was changed since version %s: %w", c.kind, id, obj.Meta().ResourceVersion, errdefs.ErrConflict)
	}
	return nil
}

// txnError classifies a failed write: a value over etcd's request limit is
// ErrTooLarge (the caller's to shrink), anything else ErrUnavailable.
func txnError(err error) error {
	if errors.Is(err, rpctypes.ErrGRPCRequestTooLarge) || strings.Contains(err.Error(), rpctypes.ErrRequestTooLarge.Error()) {
		return fmt.Errorf("%w: the stored object would pass etcd's request limit: %w", errdefs.ErrTooLarge, err)
	}
	return fmt.Errorf("%w: %w", errdefs.ErrUnavailable, err)
}
