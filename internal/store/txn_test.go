package store

import (
	"context"
	"strconv"
	"testing"

	"github.com/eci-dev/eci/internal/errdefs"
)

// A transaction writes all of its ops when every condition holds, nothing
// when one fails (ErrConflict), and returns the revision it wrote at.
func TestCommit(t *testing.T) {
	ctx := context.Background()
	s, c := open(t, t.TempDir())
	a, b := group("a"), group("b")
	putA, err := c.PutOp(a)
	if err != nil {
		t.Fatal(err)
	}
	putB, err := c.PutOp(b)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := s.Commit(ctx, []Cond{c.Absent("a"), c.Absent("b")}, []Op{putA, putB})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Get(ctx, "a")
	if err != nil || got.Metadata.ResourceVersion != strconv.FormatInt(rev, 10) {
		t.Fatalf("a after the commit: %v, version %v want %d", err, got, rev)
	}
	// Absent fails now: neither write happens.
	if _, err := s.Commit(ctx, []Cond{c.Present("a"), c.Absent("b")}, []Op{c.DeleteOp("a")}); !errdefs.IsConflict(err) {
		t.Fatalf("a failed condition: want Conflict, got %v", err)
	}
	if _, err := c.Get(ctx, "a"); err != nil {
		t.Fatalf("a was deleted by a transaction whose condition failed: %v", err)
	}
	unchanged, err := c.Unchanged(got)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Commit(ctx, []Cond{unchanged, c.Present("b")}, []Op{c.DeleteOp("a"), c.DeleteOp("b")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Commit(ctx, []Cond{unchanged}, nil); !errdefs.IsConflict(err) {
		t.Fatalf("Unchanged of a deleted object: want Conflict, got %v", err)
	}
	if _, err := c.Unchanged(group("never-read")); !errdefs.IsInvalid(err) {
		t.Fatalf("Unchanged of an object without a version: want InvalidArgument, got %v", err)
	}
}
