// Package store keeps the instance service's resources in etcd: an embedded
// single-member etcd in a data directory by default, or an external cluster.
//
// Each resource kind is a Collection under /eci/v1/<kind>/<id>, stored as JSON.
// An object's resourceVersion is its etcd ModRevision: updates are
// compare-and-swap on it (ErrConflict when someone wrote first), lists page at
// one revision, and watches resume from any revision still in etcd's history
// (ErrGone after compaction: the client lists again). Writes that must happen
// together (a placement: the group, the host's usage, the IP) are one etcd
// transaction (Store.Commit, txn.go) of the collections' conditions (Absent,
// Present, Unchanged) and writes (PutOp, DeleteOp).
package store
