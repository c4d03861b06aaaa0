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

// limiters keeps a token bucket per token (by its hash); buckets idle for
// limiterIdle are forgotten, so the map stays as small as the tokens in use.
type limiters struct {
	tenant, host RateLimit
	mu           sync.Mutex
	byToken      map[string]*limiter
	swept        time.Time
}

type limiter struct {
	*rate.Limiter
	used time.Time
}

const limiterIdle = 10 * time.Minute

func newLimiters(tenant, host RateLimit) *limiters {
	return &limiters{tenant: tenant, host: host, byToken: map[string]*limiter{}, swept: time.Now()}
}

// allow takes one request of the token hashed key, of kind; when the bucket
// is empty it says how long until a request would pass.
func (l *limiters) allow(key string, kind apiv1.TokenKind) (bool, time.Duration) {
	limit := l.tenant
	switch kind {
	case apiv1.TokenAdmin:
		return true, 0
	case apiv1.TokenHost:
		limit = l.host
	}
	if limit.QPS <= 0 {
		return true, 0
	}
	now := time.Now()
	l.mu.Lock()
	if now.Sub(l.swept) > limiterIdle {
		for k, lim := range l.byToken {
			if now.Sub(lim.used) > limiterIdle {
				delete(l.byToken, k)
			}
		}
		l.swept = now
	}
	lim, ok := l.byToken[key]
	if !ok {
		lim = &limiter{Limiter: rate.NewLimiter(rate.Limit(limit.QPS), max(1, limit.Burst))}
		l.byToken[key] = lim
	}
	lim.used = now
	l.mu.Unlock()
	if lim.AllowN(now, 1) {
		return true, 0
	}
	r := lim.ReserveN(now, 1)
	wait := r.DelayFrom(now)
	r.CancelAt(now)
	return false, wait
}

// tooManyRequests answers 429 with Retry-After in whole seconds.
func tooManyRequests(w http.ResponseWriter, r *http.Request, wait time.Duration, limit RateLimit) {
	secs := max(1, int(math.Ceil(wait.Seconds())))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeError(w, r, fmt.Errorf("this token made more than %g requests a second (bursts of %d) to this server; retry after %ds: %w",
		limit.QPS, limit.Burst, secs, errdefs.ErrExhausted))
}
