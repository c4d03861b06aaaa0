package control

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/auth"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/store"
)

// hostData is what one host's agent last reported of its data caches (ID:
// the host).
type hostData struct {
	Metadata apiv1.ObjectMeta `json:"metadata"`
	apiv1.HostData
}

func (r *hostData) Meta() *apiv1.ObjectMeta { return &r.Metadata }

// HostDataCaches are the data caches host name fetches ahead: for its own
// agent only.
func (s *Service) HostDataCaches(ctx context.Context, p auth.Principal, name string) (*apiv1.HostDataCaches, error) {
	if p.Kind != apiv1.TokenHost || p.Host != name {
		return nil, fmt.Errorf("%s may not read the data caches of host %s (its agent's token only): %w", p, name, errdefs.ErrPermissionDenied)
	}
	hosts, _, _, err := s.hosts.List(ctx, store.ListOptions{})
	if err != nil {
		return nil, err
	}
	caches, _, _, err := s.dcs.List(ctx, store.ListOptions{})
	if err != nil {
		return nil, err
	}
	out := &apiv1.HostDataCaches{Items: []apiv1.DataCache{}}
	for _, c := range caches {
		if slices.ContainsFunc(cacheHosts(c.Metadata.ID, c.Spec.HostsPerZone, hosts, name), isHost(name)) {
			c.Status = apiv1.DataCacheStatus{}
			out.Items = append(out.Items, *c)
		}
	}
	return out, nil
}

// ReportHostData records the data caches host name holds (its own token,
// or an admin): the placer reads it, and the caches' status is made of it.
func (s *Service) ReportHostData(ctx context.Context, p auth.Principal, name string, rep apiv1.HostData) error {
	if err := s.canSeeHost(p, name); err != nil {
		return err
	}
	if n := len(rep.Caches); n > apiv1.MaxHostDataCaches {
		return fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, apiv1.FieldErrors{{Field: "caches",
			Message: fmt.Sprintf("%d caches is too many; allowed: at most %d", n, apiv1.MaxHostDataCaches)}})
	}
	for i, c := range rep.Caches {
		if len(c.ID) > 64 || c.SizeBytes < 0 {
			return fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, apiv1.FieldErrors{{Field: fmt.Sprintf("caches[%d]", i),
				Message: "allowed: a data cache id and a size of 0 or more"}})
		}
	}
	// Failures are cut to size, never refused (one long message must not
	// stop the host's whole report).
	rep.Failed = slices.DeleteFunc(rep.Failed[:min(len(rep.Failed), apiv1.MaxHostDataCaches)], func(f apiv1.DataFetchFailure) bool { return len(f.Cache) > 64 })
	for i, f := range rep.Failed {
		rep.Failed[i].Message = strings.ToValidUTF8(f.Message[:min(len(f.Message), 256)], "?")
	}
	if _, err := s.hosts.Get(ctx, name); err != nil {
		return err
	}
	op, err := s.hdata.PutOp(&hostData{Metadata: apiv1.ObjectMeta{ID: name, Name: name}, HostData: rep})
	if err != nil {
		return err
	}
	_, err = s.st.Commit(ctx, nil, []store.Op{op})
	return err
}

// hostDataSets are the data caches each host reported, by host and cache
// id: their size.
func hostDataSets(reports []*hostData) map[string]map[string]int64 {
	out := make(map[string]map[string]int64, len(reports))
	for _, r := range reports {
		m := make(map[string]int64, len(r.Caches))
		for _, c := range r.Caches {
			m[c.ID] = c.SizeBytes
		}
		out[r.Metadata.ID] = m
	}
	return out
}

// SyncDataCaches remakes each data cache's status from the hosts'
// reports, writes those that changed, and removes the caches past their
// retention (the leader's monitor).
func (s *Service) SyncDataCaches(ctx context.Context) error {
	caches, _, _, err := s.dcs.List(ctx, store.ListOptions{})
	if err != nil || len(caches) == 0 {
		return err
	}
	hosts, _, _, err := s.hosts.List(ctx, store.ListOptions{})
	if err != nil {
		return err
	}
	reports, _, _, err := s.hdata.List(ctx, store.ListOptions{})
	if err != nil {
		return err
	}
	held := hostDataSets(reports)
	now := s.now()
	var errs []error
	for _, c := range caches {
		if exp := c.Status.ExpireDateTime; exp != nil && now.After(*exp) {
			c.Metadata.ResourceVersion = ""
			switch err := s.dcs.Delete(ctx, c); {
			case err == nil:
				s.recordEvent(ctx, "DataCache", c.Metadata.ID, c.Metadata.Tenant, apiv1.EventNormal, "Expired",
					fmt.Sprintf("data cache %s removed: its %d retention days ended", c.Metadata.ID, c.Spec.RetentionDays), "server")
			case !errdefs.IsNotFound(err):
				errs = append(errs, err)
			}
			continue
		}
		st := dataCacheStatus(c, cacheHosts(c.Metadata.ID, c.Spec.HostsPerZone, hosts, ""), held, reports)
		st.ExpireDateTime, st.LastUpdatedTime = c.Status.ExpireDateTime, c.Status.LastUpdatedTime
		if reflect.DeepEqual(st, c.Status) {
			continue
		}
		st.LastUpdatedTime = now
		if st.Phase != c.Status.Phase {
			typ, msg := apiv1.EventNormal, fmt.Sprintf("data cache %s is %s: %d of %d hosts hold it", c.Metadata.ID, st.Phase, st.HostsReady, st.Hosts)
			if st.Phase == apiv1.DataCacheFailed {
				typ, msg = apiv1.EventWarning, fmt.Sprintf("data cache %s failed: %s", c.Metadata.ID, st.Message)
			}
			s.recordEvent(ctx, "DataCache", c.Metadata.ID, c.Metadata.Tenant, typ, string(st.Phase), msg, "server")
		}
		if _, err := s.dcs.Mutate(ctx, c.Metadata.ID, func(c *apiv1.DataCache) error { c.Status = st; return nil }); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("data cache %s: %w", c.Metadata.ID, err))
		}
	}
	return errors.Join(errs...)
}

// dataCacheStatus is c's status on hosts, from what they hold and the
// fetch failures they reported.
func dataCacheStatus(c *apiv1.DataCache, hosts []*apiv1.Host, held map[string]map[string]int64, reports []*hostData) apiv1.DataCacheStatus {
	failures := map[string]string{} // by host
	for _, r := range reports {
		for _, f := range r.Failed {
			if f.Cache == c.Metadata.ID {
				failures[r.Metadata.ID] = f.Message
			}
		}
	}
	st := apiv1.DataCacheStatus{Hosts: len(hosts)}
	failed := 0
	for _, h := range hosts {
		name := h.Metadata.Name
		hs := apiv1.DataCacheHost{Host: name}
		if size, ok := held[name][c.Metadata.ID]; ok {
			hs.Ready, st.SizeBytes = true, size
			st.HostsReady++
		} else if hs.Message = failures[name]; hs.Message != "" {
			failed++
			st.Message = hs.Message
		}
		st.HostStatuses = append(st.HostStatuses, hs)
	}
	switch {
	case st.Hosts == 0:
		st.Phase, st.Message = apiv1.DataCacheCreating, "no ready host takes data caches"
	case st.HostsReady == st.Hosts:
		st.Phase, st.Message = apiv1.DataCacheAvailable, ""
	case st.HostsReady > 0:
		st.Phase = apiv1.DataCacheLoading
	case failed == st.Hosts:
		st.Phase = apiv1.DataCacheFailed
	default:
		st.Phase = apiv1.DataCacheCreating
	}
	return st
}
