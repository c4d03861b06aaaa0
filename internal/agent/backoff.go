package agent

import (
	"strings"
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
}

// restartWait says how long to wait before restarting key, which ran from
// started to finished; zero means restart now (and the restart is counted).
func (a *Agent) restartWait(key string, started, finished, now time.Time) time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	e := a.backoff[key]
	if e == nil || finished.Sub(started) >= backoffReset {
		e = &backoffEntry{delay: backoffInitial}
		a.backoff[key] = e
	}
	if now.Before(e.next) {
		return e.next.Sub(now)
	}
	e.next = now.Add(e.delay)
	e.delay = min(e.delay*2, backoffMax)
	return 0
}

// inBackoff tells whether key waits for a restart now.
func (a *Agent) inBackoff(key string, now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	e := a.backoff[key]
	return e != nil && now.Before(e.next)
}

func (a *Agent) forget(id string) {
	a.stopProbes(id)
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.reported, id)
	delete(a.missing, id)
	delete(a.cpuSamples, id)
	for k := range a.waits {
		if strings.HasPrefix(k, id+"/") {
			delete(a.waits, k)
		}
	}
	for k := range a.backoff {
		if len(k) > len(id) && k[:len(id)] == id && k[len(id)] == '/' {
			delete(a.backoff, k)
		}
	}
}

// retryWait is the next wait before key (a container that can't start) is
// tried again: 10 s, doubling up to 5 minutes, as the kubelet's image pull
// back-off. A start that succeeds forgets it.
func (a *Agent) retryWait(key string) time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	k := key + "/retry"
	e := a.backoff[k]
	if e == nil {
		e = &backoffEntry{delay: backoffInitial}
		a.backoff[k] = e
	}
	d := e.delay
	e.next = time.Now().Add(d)
	e.delay = min(e.delay*2, backoffMax)
	return d
}
