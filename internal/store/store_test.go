package store

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/errdefs"
)

type groups = Collection[apiv1.ContainerGroup, *apiv1.ContainerGroup]

func open(t *testing.T, dir string) (*Store, *groups) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := Open(ctx, Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, NewCollection[apiv1.ContainerGroup](s, "containergroups")
}

func group(id string) *apiv1.ContainerGroup {
	return &apiv1.ContainerGroup{Metadata: apiv1.ObjectMeta{ID: id, Name: id}}
}

func TestCreateGetUpdateDelete(t *testing.T) {
	ctx := context.Background()
	_, c := open(t, t.TempDir())
	g := group("g1")
	if err := c.Create(ctx, g, nil); err != nil {
		t.Fatal(err)
	}
	if g.Metadata.ResourceVersion == "" {
		t.Fatal("create did not set the resourceVersion")
	}
	if err := c.Create(ctx, group("g1"), nil); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("second create: want AlreadyExists, got %v", err)
	}
	got, err := c.Get(ctx, "g1")
	if err != nil || got.Metadata.ResourceVersion != g.Metadata.ResourceVersion {
		t.Fatalf("get: %v, version %q want %q", err, got.Metadata.ResourceVersion, g.Metadata.ResourceVersion)
	}
	stale := *got
	got.Metadata.Labels = map[string]string{"a": "b"}
	if err := c.Update(ctx, got, nil); err != nil {
		t.Fatal(err)
	}
	stale.Metadata.Labels = map[string]string{"a": "stale"}
	if err := c.Update(ctx, &stale, nil); !errdefs.IsConflict(err) {
		t.Fatalf("update from a stale version: want Conflict, got %v", err)
	}
	if err := c.Delete(ctx, &stale); !errdefs.IsConflict(err) {
		t.Fatalf("delete from a stale version: want Conflict, got %v", err)
	}
	if err := c.Delete(ctx, got); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, "g1"); !errdefs.IsNotFound(err) {
		t.Fatalf("get after delete: want NotFound, got %v", err)
	}
	if err := c.Delete(ctx, group("g1")); !errdefs.IsNotFound(err) {
		t.Fatalf("delete of a missing object: want NotFound, got %v", err)
	}
	if err := c.Update(ctx, got, nil); !errdefs.IsNotFound(err) {
		t.Fatalf("update of a deleted object: want NotFound, got %v", err)
	}
}

// Concurrent read-modify-write loses no update.
func TestMutateUnderConcurrency(t *testing.T) {
	ctx := context.Background()
	_, c := open(t, t.TempDir())
	if err := c.Create(ctx, group("counter"), nil); err != nil {
		t.Fatal(err)
	}
	const writers = 20
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := 0; i < writers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Mutate(ctx, "counter", func(g *apiv1.ContainerGroup) error {
				g.Status.SchedulingAttempts++
				return nil
			})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	g, err := c.Get(ctx, "counter")
	if err != nil {
		t.Fatal(err)
	}
	if g.Status.SchedulingAttempts != writers {
		t.Fatalf("counter %d after %d increments", g.Status.SchedulingAttempts, writers)
	}
}

// Pages are read at the revision of the first page, whatever is written between.
func TestListPagesAtOneRevision(t *testing.T) {
	ctx := context.Background()
	_, c := open(t, t.TempDir())
	for i := 0; i < 25; i++ {
		if err := c.Create(ctx, group(fmt.Sprintf("g%02d", i)), nil); err != nil {
			t.Fatal(err)
		}
	}
	var all []string
	token := ""
	for page := 0; ; page++ {
		items, _, next, err := c.List(ctx, ListOptions{Limit: 10, Continue: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range items {
			all = append(all, g.Metadata.ID)
		}
		if page == 0 {
			// Written after the first page: not part of this list.
			if err := c.Create(ctx, group("g99"), nil); err != nil {
				t.Fatal(err)
			}
		}
		if next == "" {
			break
		}
		token = next
	}
	if len(all) != 25 || all[0] != "g00" || all[24] != "g24" {
		t.Fatalf("paged list gave %d items %v", len(all), all)
	}
	if _, _, _, err := c.List(ctx, ListOptions{Continue: "garbage"}); err == nil {
		t.Fatal("a made-up continue token was accepted")
	}
}

// A watch resumed from a version sees every change after it, even across a
// restart of the store (embedded etcd) in between.
func TestWatchResumesAcrossRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	s, c := open(t, dir)
	if err := c.Create(ctx, group("before"), nil); err != nil {
		t.Fatal(err)
	}
	_, rev, _, err := c.List(ctx, ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, group("a"), nil); err != nil {
		t.Fatal(err)
	}
	s.Close()

	_, c = open(t, dir)
	b := group("b")
	if err := c.Create(ctx, b, nil); err != nil {
		t.Fatal(err)
	}
	b.Metadata.Labels = map[string]string{"x": "y"}
	if err := c.Update(ctx, b, nil); err != nil {
		t.Fatal(err)
	}
	a, err := c.Get(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, a); err != nil {
		t.Fatal(err)
	}
	want := []string{"ADDED a", "ADDED b", "MODIFIED b", "DELETED a"}
	var got []string
	var lastRev int64
	for ev := range c.Watch(ctx, rev) {
		if ev.Err != nil {
			t.Fatal(ev.Err)
		}
		if ev.Type == apiv1.Bookmark {
			continue
		}
		if ev.Revision <= lastRev || strconv.FormatInt(ev.Revision, 10) != ev.Object.Metadata.ResourceVersion {
			t.Fatalf("event revision %d (object version %s) after %d", ev.Revision, ev.Object.Metadata.ResourceVersion, lastRev)
		}
		lastRev = ev.Revision
		got = append(got, string(ev.Type)+" "+ev.Object.Metadata.ID)
		if len(got) == len(want) {
			break
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("events %v, want %v", got, want)
	}
}

// A watch or a page from a compacted revision fails with ErrGone.
func TestCompactedRevisionIsGone(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, c := open(t, t.TempDir())
	for i := 0; i < 5; i++ {
		if err := c.Create(ctx, group(fmt.Sprintf("g%d", i)), nil); err != nil {
			t.Fatal(err)
		}
	}
	_, old, token, err := c.List(ctx, ListOptions{Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, group("later"), nil); err != nil {
		t.Fatal(err)
	}
	resp, err := s.Client.Get(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client.Compact(ctx, resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
	ev := <-c.Watch(ctx, old-1)
	if !errdefs.IsGone(ev.Err) {
		t.Fatalf("watch from a compacted revision: want Gone, got %+v", ev)
	}
	if _, _, _, err := c.List(ctx, ListOptions{Limit: 2, Continue: token}); !errdefs.IsGone(err) {
		t.Fatalf("next page at a compacted revision: want Gone, got %v", err)
	}
}
