package agent

import (
	"context"
	"fmt"
	"sort"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/log"
)

// The agent's pass over the host's data caches (datacache.go), every
// ImageCacheInterval: it reads the caches the server gives the host and
// starts fetching ahead the next it lacks (one such fetch at a time, taken
// in turn after the last one started, so that one tenant's slow source
// does not hold the others; within DataCacheBytes for them all), removes
// the copies no cache of that list keeps and no group of the host mounts
// once unused for ImageCachePruneGrace, and reports what the host holds
// and the failures of the caches it was given.

// keepDataCaches keeps the host's data caches until ctx ends; it waits
// while the host is fenced.
func (a *Agent) keepDataCaches(ctx context.Context) {
	passAndReport(log.With(ctx, "part", "data-caches"), a, "data caches", a.syncDataCaches,
		func(ctx context.Context, rep apiv1.HostData) error {
			return a.cfg.Client.ReportHostData(ctx, a.name, rep)
		})
}

// syncDataCaches is one pass; it returns what the host holds.
func (a *Agent) syncDataCaches(ctx context.Context) (apiv1.HostData, error) {
	caches, err := a.cfg.Client.HostDataCaches(ctx, a.name)
	if err != nil {
		return apiv1.HostData{}, fmt.Errorf("read the host's data caches: %w", err)
	}
	sort.Slice(caches, func(i, j int) bool { return caches[i].Metadata.ID < caches[j].Metadata.ID })
	held, err := a.data.held()
	if err != nil {
		return apiv1.HostData{}, err
	}
	rep := apiv1.HostData{Caches: []apiv1.HostDataCache{}, Failed: a.data.fetchAhead(ctx, caches, held, a.cfg.DataCacheBytes)}
	listed, mounted := map[string]bool{}, map[string]bool{}
	for _, c := range caches {
		listed[c.Metadata.ID] = true
	}
	for _, g := range a.view.all() {
		for _, v := range g.Spec.Volumes {
			if v.DataCache != nil {
				mounted[v.DataCache.ID] = true
			}
		}
	}
	for id, rec := range held {
		if !listed[id] && !mounted[id] {
			removed, err := a.data.remove(id, a.cfg.ImageCachePruneGrace)
			if err != nil {
				return apiv1.HostData{}, fmt.Errorf("remove data cache %s: %w", id, err)
			}
			if removed {
				log.G(ctx).Info("data cache removed: no cache of the host's list keeps it, no group mounts it", "cache", id)
				continue
			}
		}
		rep.Caches = append(rep.Caches, apiv1.HostDataCache{ID: id, SizeBytes: rec.SizeBytes})
	}
	sort.Slice(rep.Caches, func(i, j int) bool { return rep.Caches[i].ID < rep.Caches[j].ID })
	a.data.forgetFailures(listed)
	return rep, nil
}

// fetchAhead starts fetching the next cache of caches (sorted by id) the
// host lacks, after the last one it started, unless one it started is
// under way; it returns the failures of caches.
func (d *dataCaches) fetchAhead(ctx context.Context, caches []apiv1.DataCache, held map[string]dataRecord, budget uint64) []apiv1.DataFetchFailure {
	var total uint64
	for _, rec := range held {
		total += uint64(rec.SizeBytes)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var failed []apiv1.DataFetchFailure
	var candidates []apiv1.DataCache
	for _, c := range caches {
		id := c.Metadata.ID
		_, have := held[id]
		_, busy := d.fetching[id]
		f := d.failed[id]
		switch {
		case have || busy:
		case f != nil:
			failed = append(failed, apiv1.DataFetchFailure{Cache: id, Message: f.msg})
			if time.Now().After(f.next) {
				candidates = append(candidates, c)
			}
		case total+uint64(c.Spec.Size)<<30 > budget:
			failed = append(failed, apiv1.DataFetchFailure{Cache: id,
				Message: fmt.Sprintf("not fetched ahead on this host: its %d GiB would pass the %d GiB the host keeps for data caches", c.Spec.Size, budget>>30)})
		default:
			candidates = append(candidates, c)
		}
	}
	if _, busy := d.fetching[d.eager]; (d.eager == "" || !busy) && len(candidates) > 0 {
		next := candidates[0]
		for _, c := range candidates { // the first after the last started, in turn
			if c.Metadata.ID > d.last {
				next = c
				break
			}
		}
		d.eager, d.last = next.Metadata.ID, next.Metadata.ID
		d.startLocked(ctx, next.Metadata.ID, next.Spec.DataSource, next.Spec.Size, "")
	}
	return failed
}

// forgetFailures drops the failures of caches not listed that no group
// has tried again for an hour past their back-off.
func (d *dataCaches) forgetFailures(listed map[string]bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for id, f := range d.failed {
		if _, busy := d.fetching[id]; !listed[id] && !busy && time.Now().After(f.next.Add(time.Hour)) {
			delete(d.failed, id)
		}
	}
}
