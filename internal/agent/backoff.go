package agent

import (
	"time"
)

// Back-off of restarts, as the kubelet does: the first restart is at once,
// then 10 s, 20 s, 40 s ... up to 5 minutes; a container that ran 10 minutes
// resets it.
const (
	backoffInitial = 10 * time.Second
	backoffMax     = 5 * time.Minute
	backoffReset   = 10 * time.Minute
)

type backoffEntry struct {
	delay time.Duration // the wait before the restart after the next one
	next  time.Time     // no restart before this
	// image is the one the container was (to be) made of: a new image
	// starts without back-off, as the kubelet's keys (the container's
	// hash, the image) do.
	image string
}

// forgetOtherImage drops container name's back-offs of another image than
// image (the spec's image changed): start and restart call it first, so
// that an entry is always of the image its container is made of.
func (a *Agent) forgetOtherImage(id, name, image string) {
	a.states.edit(id, func(g *groupState) {
		c := g.container(name)
		if c.restart != nil && c.restart.image != image {
			c.restart = nil
		}
		if c.retry != nil && c.retry.image != image {
			c.retry = nil
		}
	})
}

// restartWait says how long to wait before restarting container name of
// group id, which ran from started to finished; zero means restart now (and
// the restart is counted).
func (a *Agent) restartWait(id, name, image string, started, finished, now time.Time) (wait time.Duration) {
	a.states.edit(id, func(g *groupState) {
		c := g.container(name)
		if c.restart == nil || finished.Sub(started) >= backoffReset {
			c.restart = &backoffEntry{delay: backoffInitial, image: image}
		}
		wait = c.restart.take(now)
	})
	return wait
}

// inBackoff tells whether container name of group id waits for a restart now.
func (a *Agent) inBackoff(id, name string, now time.Time) bool {
	return a.waitsFor(id, name, now, func(c containerState) *backoffEntry { return c.restart })
}

// retryWait is the next wait before container name of group id (which can't
// start) is tried again: 10 s, doubling up to 5 minutes, as the kubelet's
// image pull back-off. A start that succeeds forgets it (started).
func (a *Agent) retryWait(id, name, image string) (wait time.Duration) {
	a.states.edit(id, func(g *groupState) {
		c := g.container(name)
		if c.retry == nil {
			c.retry = &backoffEntry{delay: backoffInitial, image: image}
		}
		wait = c.retry.delay
		c.retry.next = time.Now().Add(wait)
		c.retry.delay = min(c.retry.delay*2, backoffMax)
	})
	return wait
}

// retrying tells whether container name of group id waits for its retry.
func (a *Agent) retrying(id, name string, now time.Time) bool {
	return a.waitsFor(id, name, now, func(c containerState) *backoffEntry { return c.retry })
}

// waitsFor tells whether the back-off which picks of container name of
// group id holds it back at now.
func (a *Agent) waitsFor(id, name string, now time.Time, which func(containerState) *backoffEntry) (waits bool) {
	a.states.read(id, func(g groupState) {
		e := which(g.containerOf(name))
		waits = e != nil && now.Before(e.next)
	})
	return waits
}

// take is the wait before the next restart: zero (and the next is pushed
// back) when it may happen now.
func (e *backoffEntry) take(now time.Time) time.Duration {
	if now.Before(e.next) {
		return e.next.Sub(now)
	}
	e.next = now.Add(e.delay)
	e.delay = min(e.delay*2, backoffMax)
	return 0
}
