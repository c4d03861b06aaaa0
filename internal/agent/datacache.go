package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/log"
)

// The host's part of the data caches (api/v1 datacache.go): each lives in
// StateDir/datacaches/ID, its data in data/ (read-only, mounted read-only
// into the groups that name it) and ready.json once whole. A cache is
// fetched once for the host (datafetch.go), whoever asks first:
//   - every ImageCacheInterval the agent asks the server which caches the
//     host fetches ahead, and starts the first it lacks (one such fetch at
//     a time, within DataCacheBytes for them all);
//   - a group that mounts a cache the host lacks starts its fetch (or
//     waits for the one under way: Pending, FetchingDataCache) and is
//     reconciled again when it ends; a failed fetch is tried again after
//     dataRetry, not by every group at once.
// A copy no cache of the host's list keeps and no group of the host mounts
// is removed once unused for ImageCachePruneGrace. Each pass reports the
// caches the host holds and those it could not fetch.

// errDataFetching: a cache the group mounts is being fetched.
var errDataFetching = errors.New("fetching a data cache")

// dataRetry is how long a failed fetch is not tried again.
const dataRetry = 30 * time.Second

// dataCaches is the host's data caches.
type dataCaches struct {
	dir     string
	client  *http.Client
	minFree int                   // percent of the disk a fetch leaves free
	wake    func(groups []string) // reconcile the groups that waited

	mu       sync.Mutex
	fetching map[string][]string // by cache id: the groups waiting for it
	eager    string              // the cache the pass fetches ahead ("": none)
	failed   map[string]dataFailure
	used     map[string]time.Time // when a group last wanted each cache
}

type dataFailure struct {
	at  time.Time
	err error
}

func newDataCaches(cfg *Config, wake func([]string)) (*dataCaches, error) {
	d := &dataCaches{dir: filepath.Join(cfg.StateDir, "datacaches"), client: dataClient(cfg.AllowedLocalDataHosts), wake: wake, minFree: cfg.ImageCacheMinFreePercent,
		fetching: map[string][]string{}, failed: map[string]dataFailure{}, used: map[string]time.Time{}}
	if err := os.MkdirAll(d.dir, 0o700); err != nil {
		return nil, fmt.Errorf("data caches: %w", err)
	}
	entries, err := os.ReadDir(d.dir)
	if err != nil {
		return nil, fmt.Errorf("data caches: %w", err)
	}
	now := time.Now()
	for _, e := range entries {
		switch {
		case strings.HasPrefix(e.Name(), ".fetch-"): // a fetch cut short by a crash
			if err := os.RemoveAll(filepath.Join(d.dir, e.Name())); err != nil {
				return nil, fmt.Errorf("data caches: %w", err)
			}
		default:
			d.used[e.Name()] = now // (its grace starts again)
		}
	}
	return d, nil
}

// path is where cache id's data is.
func (d *dataCaches) path(id string) string { return filepath.Join(d.dir, id, "data") }

// held are the caches the host holds whole, by id.
func (d *dataCaches) held() (map[string]dataRecord, error) {
	entries, err := os.ReadDir(d.dir)
	if err != nil {
		return nil, err
	}
	out := map[string]dataRecord{}
	for _, e := range entries {
		if !apiv1.DataCacheIDPattern.MatchString(e.Name()) {
			continue
		}
		var rec dataRecord
		if data, err := os.ReadFile(filepath.Join(d.dir, e.Name(), "ready.json")); err == nil && json.Unmarshal(data, &rec) == nil {
			out[e.Name()] = rec
		}
	}
	return out, nil
}

// ensure makes the host hold the cache v names for group: nil when it
// does, errDataFetching while it is being fetched (group is reconciled
// again when the fetch ends), or why it can't.
func (d *dataCaches) ensure(ctx context.Context, v *apiv1.DataCacheVolume, group string) error {
	if !apiv1.DataCacheIDPattern.MatchString(v.ID) || v.Source == nil {
		return fmt.Errorf("data cache %s:%s: not resolved by the server (no id or source)", v.Bucket, v.Path)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.used[v.ID] = time.Now()
	if _, err := os.Stat(filepath.Join(d.dir, v.ID, "ready.json")); err == nil {
		return nil
	}
	if waiting, ok := d.fetching[v.ID]; ok {
		d.fetching[v.ID] = append(waiting, group)
		return errDataFetching
	}
	if f, ok := d.failed[v.ID]; ok && time.Since(f.at) < dataRetry {
		return fmt.Errorf("data cache %s (%s:%s): %w", v.ID, v.Bucket, v.Path, f.err)
	}
	d.startLocked(ctx, v.ID, *v.Source, v.Size, group)
	return errDataFetching
}

// startLocked fetches cache id in the background (d.mu held); waiter, if
// not empty, is a group to wake when it ends.
func (d *dataCaches) startLocked(ctx context.Context, id string, src apiv1.DataCacheSource, sizeGiB int, waiter string) {
	var waiting []string
	if waiter != "" {
		waiting = []string{waiter}
	}
	d.fetching[id] = waiting
	go func() {
		start := time.Now()
		size, err := d.fetch(ctx, id, src, int64(sizeGiB)<<30)
		d.mu.Lock()
		waiting := d.fetching[id]
		delete(d.fetching, id)
		if d.eager == id {
			d.eager = ""
		}
		if err != nil {
			d.failed[id] = dataFailure{at: time.Now(), err: err}
		} else {
			delete(d.failed, id)
		}
		d.mu.Unlock()
		if err != nil {
			log.G(ctx).Warn("data cache fetch failed", "cache", id, "err", err)
		} else {
			log.G(ctx).Info("data cache fetched", "cache", id, "bytes", size, "took", time.Since(start).Round(time.Millisecond))
		}
		d.wake(waiting)
	}()
}

// fetch fetches cache id unless the disk is too full for it: it leaves
// minFree percent of the disk free (when the download's length is known;
// the cache's size bounds it in any case).
func (d *dataCaches) fetch(ctx context.Context, id string, src apiv1.DataCacheSource, limit int64) (int64, error) {
	room := func(n int64) error {
		var st unix.Statfs_t
		if err := unix.Statfs(d.dir, &st); err != nil || st.Blocks == 0 {
			return fmt.Errorf("the host's free space can't be read (%v): not fetched", err)
		}
		free, total := int64(st.Bavail)*st.Bsize, int64(st.Blocks)*st.Bsize
		if left := free - max(n, 0); left < total/100*int64(d.minFree) {
			return fmt.Errorf("the host's disk would have %d MiB free after it, under the %d%% data caches leave: not fetched", max(left, 0)>>20, d.minFree)
		}
		return nil
	}
	return fetchData(ctx, d.client, d.dir, id, src, limit, room)
}

// keepDataCaches keeps the host's data caches until ctx ends; it waits
// while the host is fenced.
func (a *Agent) keepDataCaches(ctx context.Context) {
	ctx = log.With(ctx, "part", "data-caches")
	t := time.NewTicker(a.cfg.ImageCacheInterval)
	defer t.Stop()
	var last *apiv1.HostData
	for ctx.Err() == nil {
		if !a.lease.isFenced() {
			rep, err := a.syncDataCaches(ctx)
			if err == nil && (last == nil || !reflect.DeepEqual(*last, rep)) {
				if err = a.cfg.Client.ReportHostData(ctx, a.name, rep); err == nil {
					last = &rep
				}
			}
			if err != nil && ctx.Err() == nil {
				log.G(ctx).Warn("data caches", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// syncDataCaches fetches ahead the first cache of the host's list it
// lacks, removes the copies nothing keeps, and returns what the host
// holds.
func (a *Agent) syncDataCaches(ctx context.Context) (apiv1.HostData, error) {
	d := a.data
	caches, err := a.cfg.Client.HostDataCaches(ctx, a.name)
	if err != nil {
		return apiv1.HostData{}, fmt.Errorf("read the host's data caches: %w", err)
	}
	sort.Slice(caches, func(i, j int) bool { return caches[i].Metadata.ID < caches[j].Metadata.ID })
	held, err := d.held()
	if err != nil {
		return apiv1.HostData{}, err
	}
	var total uint64
	for _, rec := range held {
		total += uint64(rec.SizeBytes)
	}
	listed := map[string]bool{}
	rep := apiv1.HostData{Caches: []apiv1.HostDataCache{}}
	d.mu.Lock()
	for _, c := range caches {
		id := c.Metadata.ID
		listed[id] = true
		_, have := held[id]
		_, busy := d.fetching[id]
		f, failed := d.failed[id]
		switch {
		case have || busy:
		case failed && time.Since(f.at) < dataRetry:
			rep.Failed = append(rep.Failed, apiv1.DataFetchFailure{Cache: id, Message: f.err.Error()})
		case total+uint64(c.Spec.Size)<<30 > a.cfg.DataCacheBytes:
			rep.Failed = append(rep.Failed, apiv1.DataFetchFailure{Cache: id,
				Message: fmt.Sprintf("not fetched ahead on this host: its %d GiB would pass the %d GiB the host keeps for data caches", c.Spec.Size, a.cfg.DataCacheBytes>>30)})
		case d.eager == "":
			d.eager = id
			d.startLocked(ctx, id, c.Spec.DataSource, c.Spec.Size, "")
		}
	}
	d.mu.Unlock()
	mounted := map[string]bool{}
	for _, g := range a.view.all() {
		for _, v := range g.Spec.Volumes {
			if v.DataCache != nil {
				mounted[v.DataCache.ID] = true
			}
		}
	}
	for id, rec := range held {
		if !listed[id] && !mounted[id] && d.unusedFor(id, a.cfg.ImageCachePruneGrace) {
			if err := os.RemoveAll(filepath.Join(d.dir, id)); err != nil {
				return apiv1.HostData{}, fmt.Errorf("remove data cache %s: %w", id, err)
			}
			log.G(ctx).Info("data cache removed: no cache of the host's list keeps it, no group mounts it", "cache", id)
			continue
		}
		rep.Caches = append(rep.Caches, apiv1.HostDataCache{ID: id, SizeBytes: rec.SizeBytes})
	}
	sort.Slice(rep.Caches, func(i, j int) bool { return rep.Caches[i].ID < rep.Caches[j].ID })
	return rep, nil
}

// unusedFor tells whether no group has wanted cache id for grace.
func (d *dataCaches) unusedFor(id string, grace time.Duration) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, busy := d.fetching[id]; busy {
		return false
	}
	return time.Since(d.used[id]) >= grace
}
