package store

import (
	"context"
	"fmt"
	"slices"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Reseal rewrites every stored value of every collection that is not sealed
// with the current key: the values written before encryption was turned on,
// and those of a key being rotated out (docs/security.md). Each rewrite is a
// compare-and-swap on the value's revision, so a concurrent write wins and
// is already sealed. It returns how many values it rewrote.
func (s *Store) Reseal(ctx context.Context) (int, error) {
	if s.keys == nil {
		return 0, nil
	}
	s.kindsMu.Lock()
	kinds := make([]string, 0, len(s.kinds))
	for k := range s.kinds {
		kinds = append(kinds, k)
	}
	s.kindsMu.Unlock()
	slices.Sort(kinds)
	n := 0
	for _, kind := range kinds {
		prefix := s.prefix + "v1/" + kind + "/"
		start := prefix
		for {
			resp, err := s.Client.Get(ctx, start, clientv3.WithRange(clientv3.GetPrefixRangeEnd(prefix)), clientv3.WithLimit(500))
			if err != nil {
				return n, fmt.Errorf("reseal %s: %w", kind, err)
			}
			for _, kv := range resp.Kvs {
				plain, with, err := s.keys.open(string(kv.Key), kv.Value)
				if err != nil {
					return n, fmt.Errorf("reseal %s: %w", kv.Key, err)
				}
				if with == s.keys.Current() {
					continue
				}
				put := clientv3.OpPut(string(kv.Key), string(s.keys.seal(string(kv.Key), plain)))
				if _, err := s.Client.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(string(kv.Key)), "=", kv.ModRevision)).Then(put).Commit(); err != nil {
					return n, fmt.Errorf("reseal %s: %w", kv.Key, err)
				}
				n++
			}
			if !resp.More || len(resp.Kvs) == 0 {
				break
			}
			start = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
		}
	}
	return n, nil
}
