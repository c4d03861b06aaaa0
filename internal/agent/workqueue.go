package agent

import (
	"context"
	"sync"
	"time"
)

// workQueue hands group ids to the reconcile workers, as client-go's
// workqueue does: an id waits in the queue at most once however often it is
// added; an id being worked on is handed to no second worker, and an add
// meanwhile hands it out again once its worker is done. Nothing is lost and
// nothing runs twice at once; the queue's length is bounded by the number of
// distinct ids.
type workQueue struct {
	mu      sync.Mutex
	items   []string        // waiting, oldest first
	waiting map[string]bool // in items
	active  map[string]bool // handed out, not done
	dirty   map[string]bool // added while active
	wake    chan struct{}   // a worker may find an item
}

func newWorkQueue() *workQueue {
	return &workQueue{waiting: map[string]bool{}, active: map[string]bool{}, dirty: map[string]bool{}, wake: make(chan struct{}, 1)}
}

// add queues id (an empty id is nothing).
func (q *workQueue) add(id string) {
	if id == "" {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case q.active[id]:
		q.dirty[id] = true
	case !q.waiting[id]:
		q.waiting[id] = true
		q.items = append(q.items, id)
		q.poke()
	}
}

// addAfter queues id after d, unless ctx has ended by then.
func (q *workQueue) addAfter(ctx context.Context, id string, d time.Duration) {
	time.AfterFunc(d, func() {
		if ctx.Err() == nil {
			q.add(id)
		}
	})
}

// get waits for an id and hands it out; ok is false once ctx ends. The
// caller calls done(id) when it has finished with it.
func (q *workQueue) get(ctx context.Context) (id string, ok bool) {
	for {
		q.mu.Lock()
		if len(q.items) > 0 {
			id, q.items = q.items[0], q.items[1:]
			delete(q.waiting, id)
			q.active[id] = true
			if len(q.items) > 0 {
				q.poke() // another worker may take the next one
			}
			q.mu.Unlock()
			return id, true
		}
		q.mu.Unlock()
		select {
		case <-ctx.Done():
			return "", false
		case <-q.wake:
		}
	}
}

// done ends the work on id; an add meanwhile queues it again.
func (q *workQueue) done(id string) {
	q.mu.Lock()
	again := q.dirty[id]
	delete(q.active, id)
	delete(q.dirty, id)
	q.mu.Unlock()
	if again {
		q.add(id)
	}
}

// retry ends the work on id, which failed: it is queued again after d
// (ctx still alive), and an add during the work is taken by that retry.
func (q *workQueue) retry(ctx context.Context, id string, d time.Duration) {
	q.mu.Lock()
	delete(q.active, id)
	delete(q.dirty, id)
	q.mu.Unlock()
	q.addAfter(ctx, id, d)
}

// waitIdle returns once no id waits or is worked on, or after most (the
// background work that waits for it must not starve).
func (q *workQueue) waitIdle(ctx context.Context, most time.Duration) {
	end := time.Now().Add(most)
	for time.Now().Before(end) && ctx.Err() == nil {
		q.mu.Lock()
		idle := len(q.items) == 0 && len(q.active) == 0
		q.mu.Unlock()
		if idle {
			return
		}
		sleep(ctx, 50*time.Millisecond)
	}
}

// len is how many ids wait.
func (q *workQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}

// poke wakes one waiting worker (q.mu held).
func (q *workQueue) poke() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}
