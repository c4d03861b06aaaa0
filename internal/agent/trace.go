package agent

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/eci-dev/eci/internal/log"
)

// trace times the steps of one reconcile, logged at debug level when it
// did something slow enough to matter (a sandbox was made): where a group's
// start time goes. Without debug logging it is nil, and costs nothing.
type trace struct {
	start, last time.Time
	steps       []string
	took        []time.Duration
}

func newTrace(ctx context.Context) *trace {
	if !log.G(ctx).Enabled(ctx, slog.LevelDebug) {
		return nil
	}
	now := time.Now()
	return &trace{start: now, last: now}
}

func (t *trace) step(name string) {
	if t == nil {
		return
	}
	now := time.Now()
	t.steps = append(t.steps, name)
	t.took = append(t.took, now.Sub(t.last))
	t.last = now
}

func (t *trace) log(ctx context.Context, msg, group string) {
	if t == nil {
		return
	}
	var b strings.Builder
	for i, s := range t.steps {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s + "=" + t.took[i].Round(100*time.Microsecond).String())
	}
	log.G(ctx).Debug(msg, "group", group, "total", time.Since(t.start).Round(100*time.Microsecond), "steps", b.String())
}
