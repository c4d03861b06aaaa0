package server

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/errdefs"
)

// RateLimit bounds the requests of one token on one server (a token bucket:
// QPS refilled, Burst at once). Zero QPS: no limit.
type RateLimit struct {
	QPS   float64
	Burst int
}

// Default limits: a tenant's virtual node creates and deletes pods in
// bursts; an agent reports every change of its groups.
var (
	DefaultTenantRateLimit = RateLimit{QPS: 100, Burst: 200}
	DefaultHostRateLimit   = RateLimit{QPS: 100, Burst: 300}
)

// limiters keeps a token bucket per token (by its hash) and, for failed
// authentications, per client address; buckets idle for limiterIdle are
// forgotten, and there are at most maxBuckets of each kind, so the maps stay
// as small as the callers in use.
type limiters struct {
	tenant, host RateLimit
	mu           sync.Mutex
	byToken      map[string]*limiter
	failures     map[string]*limiter // by client address
	swept        time.Time
}

type limiter struct {
	*rate.Limiter
	kind  apiv1.TokenKind
	limit RateLimit
	used  time.Time
}

const (
	limiterIdle = 10 * time.Minute
	maxBuckets  = 100000
	// failedAuth is how many unknown tokens one address may present.
	failedAuthQPS, failedAuthBurst = 5, 20
)

func newLimiters(tenant, host RateLimit) *limiters {
	return &limiters{tenant: tenant, host: host, byToken: map[string]*limiter{}, failures: map[string]*limiter{}, swept: time.Now()}
}

// sweepLocked forgets idle buckets, and when a map is full, a tenth of it
// at once (l.mu held).
func (l *limiters) sweepLocked(now time.Time) {
	if now.Sub(l.swept) < limiterIdle && len(l.byToken) < maxBuckets && len(l.failures) < maxBuckets {
		return
	}
	for _, m := range []map[string]*limiter{l.byToken, l.failures} {
		full := len(m) >= maxBuckets
		for k, lim := range m {
			if now.Sub(lim.used) > limiterIdle || (full && len(m) > maxBuckets*9/10) {
				delete(m, k)
			}
		}
	}
	l.swept = now
}

// before takes one request of a token already known to this server (key:
// its hash) before it is read from etcd: a token past its rate costs the
// store nothing. ok with known false: not known yet (authenticate, then
// after).
func (l *limiters) before(key string, now time.Time) (known, ok bool, wait time.Duration, limit RateLimit, kind apiv1.TokenKind) {
	l.mu.Lock()
	lim := l.byToken[key]
	if lim != nil {
		lim.used = now
	}
	l.mu.Unlock()
	if lim == nil {
		return false, true, 0, RateLimit{}, ""
	}
	ok, wait = take(lim.Limiter, now)
	return true, ok, wait, lim.limit, lim.kind
}

// forget drops the bucket of a token that no longer authenticates.
func (l *limiters) forget(key string) {
	l.mu.Lock()
	delete(l.byToken, key)
	l.mu.Unlock()
}

// after makes the bucket of a token just authenticated, and takes one
// request from it.
func (l *limiters) after(key string, kind apiv1.TokenKind, now time.Time) (ok bool, wait time.Duration, limit RateLimit) {
	limit = l.tenant
	if kind == apiv1.TokenHost {
		limit = l.host
	}
	if kind == apiv1.TokenAdmin || limit.QPS <= 0 {
		limit = RateLimit{QPS: math.Inf(1), Burst: 1}
	}
	l.mu.Lock()
	l.sweepLocked(now)
	lim := l.byToken[key]
	if lim == nil {
		lim = &limiter{Limiter: rate.NewLimiter(rate.Limit(limit.QPS), max(1, limit.Burst)), kind: kind, limit: limit}
		l.byToken[key] = lim
	}
	lim.used = now
	l.mu.Unlock()
	ok, wait = take(lim.Limiter, now)
	return ok, wait, limit
}

// failed counts an unknown token presented from addr; false once the
// address presented too many.
func (l *limiters) failed(addr string, now time.Time) (ok bool, wait time.Duration) {
	l.mu.Lock()
	l.sweepLocked(now)
	lim := l.failures[addr]
	if lim == nil {
		lim = &limiter{Limiter: rate.NewLimiter(failedAuthQPS, failedAuthBurst)}
		l.failures[addr] = lim
	}
	lim.used = now
	l.mu.Unlock()
	return take(lim.Limiter, now)
}

// failing tells whether addr may not present another unknown token now.
func (l *limiters) failing(addr string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	lim := l.failures[addr]
	l.mu.Unlock()
	if lim == nil || lim.TokensAt(now) >= 1 {
		return false, 0
	}
	r := lim.ReserveN(now, 1)
	wait := r.DelayFrom(now)
	r.CancelAt(now)
	return true, wait
}

func take(lim *rate.Limiter, now time.Time) (bool, time.Duration) {
	if lim.Limit() == rate.Inf || lim.AllowN(now, 1) {
		return true, 0
	}
	r := lim.ReserveN(now, 1)
	wait := r.DelayFrom(now)
	r.CancelAt(now)
	return false, wait
}

// tooManyRequests answers 429 with Retry-After in whole seconds.
func tooManyRequests(w http.ResponseWriter, r *http.Request, wait time.Duration, why string) {
	secs := max(1, int(math.Ceil(wait.Seconds())))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeError(w, r, fmt.Errorf("%s; retry after %ds: %w", why, secs, errdefs.ErrExhausted))
}

func overRate(limit RateLimit) string {
	return fmt.Sprintf("this token made more than %g requests a second (bursts of %d) to this server", limit.QPS, limit.Burst)
}
