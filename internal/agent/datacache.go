package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
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
//   - the agent's pass fetches ahead the caches the server gives the host
//     (datacachesync.go);
//   - a group that mounts a cache the host lacks starts its fetch (or
//     waits for the one under way: Pending, FetchingDataCache) and is
//     reconciled again when it ends.
// At most maxDataFetches fetches run at once. A failed fetch is the answer
// until it is tried again, after 30 s, doubling to 10 minutes (a burst
// does not hammer a failing source, nor every host at once). A copy goes
// only under the lock its users take, once unused for the grace.

// errDataFetching: a cache the group mounts is being fetched.
var errDataFetching = errors.New("fetching a data cache")

// Back-off of failed fetches, and how many fetches run at once.
const (
	dataRetryFirst = 30 * time.Second
	dataRetryMax   = 10 * time.Minute
	maxDataFetches = 4
)

// dataCaches is the host's data caches.
type dataCaches struct {
	dir     string
	client  *http.Client
	minFree int                   // percent of the disk a fetch leaves free
	wake    func(groups []string) // reconcile the groups that waited
	slots   chan struct{}         // one per fetch under way

	mu       sync.Mutex
	fetching map[string]map[string]bool // by cache id: the groups waiting for it
	eager    string                     // the cache the pass fetches ahead ("": none)
	last     string                     // the last it started (the next is after it)
	failed   map[string]*dataFailure
	used     map[string]time.Time // when a group last wanted each cache
}

// dataFailure is a cache's last failed fetch.
type dataFailure struct {
	next  time.Time     // not tried again before
	delay time.Duration // the wait after the next failure
	msg   string        // what the tenant is told
}

func newDataCaches(cfg *Config, wake func([]string)) (*dataCaches, error) {
	policy := dataPolicy{hosts: cfg.AllowedLocalDataHosts, networks: cfg.AllowedDataNetworks, protected: cfg.ProtectedNetworks}
	d := &dataCaches{dir: filepath.Join(cfg.StateDir, "datacaches"), client: dataClient(policy), wake: wake, minFree: cfg.ImageCacheMinFreePercent,
		slots: make(chan struct{}, maxDataFetches), fetching: map[string]map[string]bool{}, failed: map[string]*dataFailure{}, used: map[string]time.Time{}}
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
		case strings.HasPrefix(e.Name(), "."): // a fetch or a removal cut short by a crash
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
func (d *dataCaches) path(id string) (string, error) {
	if !apiv1.DataCacheIDPattern.MatchString(id) {
		return "", fmt.Errorf("data cache %q: not an id the server gives", id)
	}
	return filepath.Join(d.dir, id, "data"), nil
}

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
		waiting[group] = true
		return errDataFetching
	}
	if f, ok := d.failed[v.ID]; ok && time.Now().Before(f.next) {
		return fmt.Errorf("data cache %s (%s:%s), tried again from %s: %s", v.ID, v.Bucket, v.Path, f.next.UTC().Format(time.RFC3339), f.msg)
	}
	d.startLocked(ctx, v.ID, *v.Source, v.Size, group)
	return errDataFetching
}

// startLocked fetches cache id in the background (d.mu held); waiter, if
// not empty, is a group to wake when it ends.
func (d *dataCaches) startLocked(ctx context.Context, id string, src apiv1.DataCacheSource, sizeGiB int, waiter string) {
	waiting := map[string]bool{}
	if waiter != "" {
		waiting[waiter] = true
	}
	d.fetching[id] = waiting
	go func() {
		start := time.Now()
		var size int64
		var err error
		select {
		case d.slots <- struct{}{}:
			size, err = d.fetch(ctx, id, src, int64(sizeGiB)<<30)
			<-d.slots
		case <-ctx.Done():
			err = ctx.Err()
		}
		d.mu.Lock()
		waiting := d.fetching[id]
		delete(d.fetching, id)
		if d.eager == id {
			d.eager = ""
		}
		if err != nil {
			d.failedLocked(id, err)
		} else {
			delete(d.failed, id)
		}
		d.mu.Unlock()
		if err != nil {
			log.G(ctx).Warn("data cache fetch failed", "cache", id, "err", err)
		} else {
			log.G(ctx).Info("data cache fetched", "cache", id, "bytes", size, "took", time.Since(start).Round(time.Millisecond))
		}
		groups := make([]string, 0, len(waiting))
		for g := range waiting {
			groups = append(groups, g)
		}
		d.wake(groups)
	}()
}

// failedLocked records a failed fetch of cache id, doubling its back-off.
func (d *dataCaches) failedLocked(id string, err error) {
	f := d.failed[id]
	if f == nil {
		f = &dataFailure{delay: dataRetryFirst}
		d.failed[id] = f
	}
	f.next, f.msg = time.Now().Add(f.delay), tenantMessage(err)
	f.delay = min(2*f.delay, dataRetryMax)
}

// tenantMessage is err as the tenant reads it: without the host's paths.
func tenantMessage(err error) string {
	msg := err.Error()
	var pe *fs.PathError
	if errors.As(err, &pe) && strings.HasPrefix(pe.Path, "/") {
		msg = strings.Replace(msg, pe.Error(), "the host could not store the data ("+pe.Op+": "+pe.Err.Error()+")", 1)
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		msg = strings.Replace(msg, le.Error(), "the host could not store the data ("+le.Op+": "+le.Err.Error()+")", 1)
	}
	return msg
}

// fetch fetches cache id unless the disk is too full for it: it leaves
// minFree percent of the disk free, checked before (with the download's
// length, when known) and as the data is written.
func (d *dataCaches) fetch(ctx context.Context, id string, src apiv1.DataCacheSource, limit int64) (int64, error) {
	room := func(n int64) error {
		var st unix.Statfs_t
		if err := unix.Statfs(d.dir, &st); err != nil || st.Blocks == 0 {
			return errors.New("the host's free disk space can't be read: not fetched")
		}
		free, total := int64(st.Bavail)*st.Bsize, int64(st.Blocks)*st.Bsize
		if free-max(n, 0) < total/100*int64(d.minFree) {
			return fmt.Errorf("the host's disk has too little room for it (it keeps %d%% free for its own use): not fetched", d.minFree)
		}
		return nil
	}
	return fetchData(ctx, d.client, d.dir, id, src, limit, room)
}

// remove removes the host's copy of cache id unless a group wanted it
// within grace (checked under the lock ensure takes: a group that finds
// the copy keeps it).
func (d *dataCaches) remove(id string, grace time.Duration) (bool, error) {
	d.mu.Lock()
	if _, busy := d.fetching[id]; busy || time.Since(d.used[id]) < grace {
		d.mu.Unlock()
		return false, nil
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	gone := filepath.Join(d.dir, ".remove-"+id+"-"+hex.EncodeToString(b))
	err := os.Rename(filepath.Join(d.dir, id), gone)
	if err == nil {
		delete(d.used, id)
		delete(d.failed, id)
	}
	d.mu.Unlock()
	if err != nil {
		return false, err
	}
	return true, os.RemoveAll(gone)
}
