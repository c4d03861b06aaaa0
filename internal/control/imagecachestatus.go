package control

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/scheduler"
	"github.com/eci-dev/eci/internal/store"
)

// imageCacheSyncEvery is how often the monitor remakes the caches' status.
const imageCacheSyncEvery = 5 * time.Second

// cacheMatches are the times groups last matched each cache (the leader's
// placer notes them; the status sync writes them, at most every
// imageCacheSyncEvery, rather than a write per placement).
type cacheMatches struct {
	mu sync.Mutex
	at map[string]time.Time
}

func (m *cacheMatches) note(id string, t time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.at == nil {
		m.at = map[string]time.Time{}
	}
	if t.After(m.at[id]) {
		m.at[id] = t
	}
}

func (m *cacheMatches) take() map[string]time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := m.at
	m.at = nil
	return out
}

// SyncImageCaches remakes each cache's status from the hosts' reports,
// writes those that changed, and removes the caches past their retention
// (the leader's monitor).
func (s *Service) SyncImageCaches(ctx context.Context) error {
	caches, _, _, err := s.imcs.List(ctx, store.ListOptions{})
	if err != nil || len(caches) == 0 {
		return err
	}
	hosts, _, _, err := s.hosts.List(ctx, store.ListOptions{})
	if err != nil {
		return err
	}
	reports, _, _, err := s.himgs.List(ctx, store.ListOptions{})
	if err != nil {
		return err
	}
	held := hostImageSets(reports)
	matched := s.matches.take()
	now := s.now()
	var errs []error
	for _, c := range caches {
		if exp := c.Status.ExpireDateTime; exp != nil && now.After(*exp) {
			c.Metadata.ResourceVersion = ""
			switch err := s.imcs.Delete(ctx, c); {
			case err == nil:
				s.recordEvent(ctx, "ImageCache", c.Metadata.ID, c.Metadata.Tenant, apiv1.EventNormal, "Expired",
					fmt.Sprintf("image cache %s removed: its %d retention days ended", c.Metadata.ID, c.Spec.RetentionDays), "server")
			case !errdefs.IsNotFound(err):
				errs = append(errs, err)
			}
			continue
		}
		st := cacheStatus(c, cacheHosts(c.Metadata.ID, c.Spec.HostsPerZone, hosts, ""), held, reports)
		st.ExpireDateTime, st.LastMatchedTime, st.LastUpdatedTime = c.Status.ExpireDateTime, c.Status.LastMatchedTime, c.Status.LastUpdatedTime
		if t, ok := matched[c.Metadata.ID]; ok {
			st.LastMatchedTime = &t
		}
		if reflect.DeepEqual(st, c.Status) {
			continue
		}
		if st.Phase != c.Status.Phase || st.Progress != c.Status.Progress || st.Message != c.Status.Message {
			st.LastUpdatedTime = now
		}
		if st.Phase != c.Status.Phase {
			s.cachePhaseEvent(ctx, c, st)
		}
		id := c.Metadata.ID
		if _, err := s.imcs.Mutate(ctx, id, func(c *apiv1.ImageCache) error { c.Status = st; return nil }); err != nil && !errdefs.IsNotFound(err) {
			if t, ok := matched[id]; ok {
				s.matches.note(id, t) // written at the next pass
			}
			errs = append(errs, fmt.Errorf("image cache %s: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

// cachePhaseEvent tells the cache's tenant of a new phase.
func (s *Service) cachePhaseEvent(ctx context.Context, c *apiv1.ImageCache, st apiv1.ImageCacheStatus) {
	typ, reason := apiv1.EventNormal, string(st.Phase)
	msg := fmt.Sprintf("image cache %s is %s: %d of %d hosts hold its images", c.Metadata.ID, st.Phase, st.HostsReady, st.Hosts)
	if st.Phase == apiv1.ImageCacheFailed {
		typ, msg = apiv1.EventWarning, fmt.Sprintf("image cache %s failed: %s", c.Metadata.ID, st.Message)
	}
	s.recordEvent(ctx, "ImageCache", c.Metadata.ID, c.Metadata.Tenant, typ, reason, msg, "server")
}

// hostImageSets are the images each host reported, by host and name.
func hostImageSets(reports []*hostImages) map[string]map[string]scheduler.Image {
	out := make(map[string]map[string]scheduler.Image, len(reports))
	for _, r := range reports {
		m := map[string]scheduler.Image{}
		for _, img := range r.Images {
			for _, ref := range img.Refs {
				m[ref] = scheduler.Image{Size: img.SizeBytes, PrivateTo: img.PrivateTo}
			}
		}
		out[r.Metadata.ID] = m
	}
	return out
}

// cacheStatus is c's status on hosts, from what they hold and the pull
// failures they reported.
func cacheStatus(c *apiv1.ImageCache, hosts []*apiv1.Host, held map[string]map[string]scheduler.Image, reports []*hostImages) apiv1.ImageCacheStatus {
	failures := map[string]string{} // by host
	for _, r := range reports {
		for _, f := range r.Failed {
			if f.Cache == c.Metadata.ID && failures[r.Metadata.ID] == "" {
				failures[r.Metadata.ID] = f.Image + ": " + f.Message
			}
		}
	}
	st := apiv1.ImageCacheStatus{Hosts: len(hosts)}
	pairs, failed := 0, 0
	for _, h := range hosts {
		name := h.Metadata.Name
		hs := apiv1.ImageCacheHost{Host: name, Message: failures[name]}
		var size int64
		for _, img := range c.Spec.Images {
			if i, ok := held[name][img]; ok && i.UsableBy(c.Metadata.Tenant) { // another tenant's private copy is not the cache's
				hs.Images++
				size += i.Size
			}
		}
		pairs += hs.Images
		if hs.Ready = hs.Images == len(c.Spec.Images); hs.Ready {
			st.HostsReady++
			st.SizeBytes = size
			hs.Message = ""
		} else if hs.Message != "" {
			failed++
			st.Message = hs.Message
		}
		st.HostStatuses = append(st.HostStatuses, hs)
	}
	if total := len(hosts) * len(c.Spec.Images); total > 0 {
		st.Progress = fmt.Sprintf("%d%%", pairs*100/total)
	} else {
		st.Progress = "0%"
	}
	switch {
	case st.Hosts == 0:
		st.Phase, st.Message = apiv1.ImageCacheCreating, "no ready host takes image caches"
	case st.HostsReady == st.Hosts:
		st.Phase, st.Message = apiv1.ImageCacheReady, ""
	case st.HostsReady > 0:
		st.Phase = apiv1.ImageCacheUpdating
	case failed == st.Hosts:
		st.Phase = apiv1.ImageCacheFailed
	default:
		st.Phase = apiv1.ImageCacheCreating
	}
	return st
}
