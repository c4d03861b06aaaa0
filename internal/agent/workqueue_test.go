package agent

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eci-dev/eci/internal/poll"
)

func TestWorkQueueKeepsAnIDOnce(t *testing.T) {
	q := newWorkQueue()
	q.add("a")
	q.add("b")
	q.add("a")
	q.add("")
	if n := q.len(); n != 2 {
		t.Fatalf("%d ids wait, want a and b once each", n)
	}
	ctx := context.Background()
	for _, want := range []string{"a", "b"} {
		if id, ok := q.get(ctx); !ok || id != want {
			t.Fatalf("get = %q %v, want %q (oldest first)", id, ok, want)
		}
		q.done(want)
	}
	if n := q.len(); n != 0 {
		t.Fatalf("%d ids wait after all were done", n)
	}
}

func TestWorkQueueRunsAnIDAgainWhenAddedDuringItsWork(t *testing.T) {
	q := newWorkQueue()
	ctx := context.Background()
	q.add("a")
	id, _ := q.get(ctx)
	q.add("a") // while a is worked on: not handed out now
	q.add("a")
	if n := q.len(); n != 0 {
		t.Fatalf("an id being worked on was queued again at once (%d waiting)", n)
	}
	q.done(id)
	if n := q.len(); n != 1 {
		t.Fatalf("%d ids wait after the work ended, want a once again", n)
	}
	if id, _ := q.get(ctx); id != "a" {
		t.Fatalf("get = %q, want a", id)
	}
	q.done("a")
	if n := q.len(); n != 0 {
		t.Fatalf("a ran again with no add during its second work (%d waiting)", n)
	}
}

func TestWorkQueueGetEndsWithItsContext(t *testing.T) {
	q := newWorkQueue()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if id, ok := q.get(ctx); ok {
		t.Fatalf("get on an empty queue = %q, true after its context ended", id)
	}
}

func TestWorkQueueAddAfter(t *testing.T) {
	q := newWorkQueue()
	ctx, cancel := context.WithCancel(context.Background())
	q.addAfter(ctx, "later", 20*time.Millisecond)
	got, ok := q.get(ctxTimeout(t, 5*time.Second))
	if !ok || got != "later" {
		t.Fatalf("get = %q %v, want later", got, ok)
	}
	q.done(got)
	q.addAfter(ctx, "never", 20*time.Millisecond)
	cancel()
	if _, ok := q.get(ctxTimeout(t, 200*time.Millisecond)); ok {
		t.Fatal("an addAfter whose context ended still queued its id")
	}
}

// Many workers and adders: no id is ever worked on by two workers at once,
// and the last add of every id is followed by a work on it that starts after
// that add began (a sequence orders adds and starts).
func TestWorkQueueNeverRunsAnIDTwiceAtOnce(t *testing.T) {
	q := newWorkQueue()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ids := []string{"a", "b", "c", "d"}
	var seq atomic.Int64
	var busy [4]atomic.Int32
	var lastStart [4]atomic.Int64
	var wg sync.WaitGroup
	var overlap atomic.Bool
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				id, ok := q.get(ctx)
				if !ok {
					return
				}
				i := int(id[0] - 'a')
				if busy[i].Add(1) > 1 {
					overlap.Store(true)
				}
				lastStart[i].Store(seq.Add(1))
				time.Sleep(time.Millisecond) // the work
				busy[i].Add(-1)
				q.done(id)
			}
		}()
	}
	var lastAdd [4]int64
	for n := 0; n < 400; n++ {
		i := n % 4
		lastAdd[i] = seq.Add(1)
		q.add(ids[i])
	}
	for i := range ids {
		poll.Eventually(t, 5*time.Second, "id "+ids[i]+" worked on after its last add", func() error {
			if lastStart[i].Load() < lastAdd[i] {
				return errors.New("added but not worked on since")
			}
			return nil
		})
	}
	cancel()
	wg.Wait()
	if overlap.Load() {
		t.Fatal("an id was worked on by two workers at once")
	}
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestWorkQueueRetryTakesTheAddsOfAFailedWork(t *testing.T) {
	q := newWorkQueue()
	ctx := context.Background()
	q.add("a")
	id, _ := q.get(ctx)
	q.add("a") // during the failed work
	q.retry(ctx, id, 50*time.Millisecond)
	if n := q.len(); n != 0 {
		t.Fatalf("a failed work was queued again at once (%d waiting), want only its retry", n)
	}
	if got, ok := q.get(ctxTimeout(t, 5*time.Second)); !ok || got != "a" {
		t.Fatalf("get = %q %v, want the retry of a", got, ok)
	}
	q.done("a")
	if n := q.len(); n != 0 {
		t.Fatalf("%d ids wait after the retry ran", n)
	}
}
