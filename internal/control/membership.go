package control

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/store"
)

// What a tenant can store is bounded. Every group is counted for its tenant
// by small index keys written in the same transactions as the group:
// stored/<tenant>/<id> from its creation to its removal, live/<tenant>/<id>
// until it ends. A create counts them (etcd counts a key range without
// reading it) against the tenant's quota of groups (every group not ended,
// placed or not) and the service's bound on stored groups of any state, so
// groups that never place, or ended ones inside their retention, can't fill
// the store. Concurrent creates may pass a bound by their number: the
// placer enforces the quota of placed groups exactly.

// DefaultMaxStoredGroups bounds a tenant's stored groups, every state;
// DefaultMaxLargeGroups those of them over LargeGroupBytes (files volumes
// make a group up to 1 MiB): together they bound what one tenant stores to
// a few hundred MiB. An ended group keeps neither its files nor its
// registry passwords (stripSecrets), so it is small again.
const (
	DefaultMaxStoredGroups = 5000
	DefaultMaxLargeGroups  = 200
	LargeGroupBytes        = 16 << 10
)

// member is one index key.
type member struct {
	Metadata apiv1.ObjectMeta `json:"metadata"`
}

func (m *member) Meta() *apiv1.ObjectMeta { return &m.Metadata }

func storedKey(tenant, id string) string { return "stored/" + tenant + "/" + id }
func liveKey(tenant, id string) string   { return "live/" + tenant + "/" + id }
func largeKey(tenant, id string) string  { return "large/" + tenant + "/" + id }

// large tells whether a group's spec is over LargeGroupBytes.
func large(spec *apiv1.ContainerGroupSpec) bool {
	data, _ := json.Marshal(spec)
	return len(data) > LargeGroupBytes
}

// checkLarge refuses one more large group of tenant past its bound.
func (s *Service) checkLarge(ctx context.Context, tenant string) error {
	n, err := s.count(ctx, "large/"+tenant+"/")
	if err != nil {
		return err
	}
	if n >= int64(s.opts.MaxLargeGroups) {
		return fmt.Errorf("tenant %s stores %d groups over %d KiB (files volumes), the most the service keeps per tenant (%d): delete some, or put large data in an NFS volume or the image: %w",
			tenant, n, LargeGroupBytes>>10, s.opts.MaxLargeGroups, errdefs.ErrPermissionDenied)
	}
	return nil
}

// stripSecrets drops what an ended group no longer needs and nobody reads
// back: its files' content (their SHA256 stays) and registry passwords.
func stripSecrets(g *apiv1.ContainerGroup) {
	for i := range g.Spec.ImageRegistryCredentials {
		g.Spec.ImageRegistryCredentials[i].Password = ""
	}
	for _, v := range g.Spec.Volumes {
		if v.Files == nil {
			continue
		}
		for j := range v.Files.Files {
			f := &v.Files.Files[j]
			if f.Content != nil {
				f.SHA256, f.Content = digest(f.Content), nil
			}
		}
	}
}

func clientTokenKey(tenant, token string) string {
	return tenant + "_" + hex.EncodeToString([]byte(token))
}

// counts caches the counts of index keys for a second: counting a tenant's
// keys walks them in etcd, and a burst of creates would count the same keys
// over and over. A group this server creates adds to its tenant's cached
// counts at once; one that ends or goes drops them (counted afresh next).
// Another server's changes are seen within the second: the bounds are soft
// by the creates of one second.
type counts struct {
	mu sync.Mutex
	m  map[string]cachedCount
}

type cachedCount struct {
	n  int64
	at time.Time
}

const countTTL = time.Second

// count is the number of index keys under prefix, cached.
func (s *Service) count(ctx context.Context, prefix string) (int64, error) {
	return s.cached(prefix, func() (int64, error) { return s.members.Count(ctx, prefix) })
}

// cached is key's figure from the cache, or from fetch when it is older
// than countTTL.
func (s *Service) cached(key string, fetch func() (int64, error)) (int64, error) {
	now := time.Now()
	s.counts.mu.Lock()
	c, ok := s.counts.m[key]
	s.counts.mu.Unlock()
	if ok && now.Sub(c.at) < countTTL {
		return c.n, nil
	}
	n, err := fetch()
	if err != nil {
		return 0, err
	}
	s.counts.mu.Lock()
	s.counts.m[key] = cachedCount{n: n, at: now}
	s.counts.mu.Unlock()
	return n, nil
}

// counted adds a new group of tenant to the cached counts.
func (s *Service) counted(tenant string, isLarge bool) {
	s.counts.mu.Lock()
	defer s.counts.mu.Unlock()
	prefixes := []string{"stored/" + tenant + "/", "live/" + tenant + "/"}
	if isLarge {
		prefixes = append(prefixes, "large/"+tenant+"/")
	}
	for _, p := range prefixes {
		if c, ok := s.counts.m[p]; ok {
			c.n++
			s.counts.m[p] = c
		}
	}
}

// uncount drops tenant's cached counts (a group ended or went).
func (s *Service) uncount(tenant string) {
	s.counts.mu.Lock()
	defer s.counts.mu.Unlock()
	for _, p := range []string{"stored/", "live/", "large/"} {
		delete(s.counts.m, p+tenant+"/")
	}
	delete(s.counts.m, "quota/"+tenant)
}

// groupQuota is the tenant's quota of groups (0: none), cached as counts
// are (a quota changed on this server applies at once: PutTenant drops it).
func (s *Service) groupQuota(ctx context.Context, tenant string) (int, error) {
	q, err := s.cached("quota/"+tenant, func() (int64, error) {
		t, err := s.tenants.Get(ctx, tenant)
		switch {
		case errdefs.IsNotFound(err):
			return 0, nil
		case err != nil:
			return 0, err
		}
		return int64(t.Spec.Quota.Groups), nil
	})
	return int(q), err
}

// checkRoom refuses a new group of tenant when it would pass its quota of
// groups or the bound on stored groups.
func (s *Service) checkRoom(ctx context.Context, tenant string) error {
	stored, err := s.count(ctx, "stored/"+tenant+"/")
	if err != nil {
		return err
	}
	if stored >= int64(s.opts.MaxStoredGroups) {
		return fmt.Errorf("tenant %s stores %d groups, the most the service keeps per tenant (%d, every state): delete ended groups (eci rm) or wait for their retention: %w",
			tenant, stored, s.opts.MaxStoredGroups, errdefs.ErrPermissionDenied)
	}
	q, err := s.groupQuota(ctx, tenant)
	if err != nil {
		return err
	}
	if q > 0 {
		live, err := s.count(ctx, "live/"+tenant+"/")
		if err != nil {
			return err
		}
		if live >= int64(q) {
			return fmt.Errorf("quota of tenant %s exceeded: %d of %d groups not ended (Scheduling, Pending, Running and the others count, placed or not): %w",
				tenant, live, q, errdefs.ErrPermissionDenied)
		}
	}
	return nil
}

// memberOps are written with a new group.
func (s *Service) memberOps(g *apiv1.ContainerGroup, isLarge bool) ([]store.Op, error) {
	var ops []store.Op
	keys := []string{storedKey(g.Metadata.Tenant, g.Metadata.ID), liveKey(g.Metadata.Tenant, g.Metadata.ID)}
	if isLarge {
		keys = append(keys, largeKey(g.Metadata.Tenant, g.Metadata.ID))
	}
	for _, key := range keys {
		op, err := s.members.PutOp(&member{Metadata: apiv1.ObjectMeta{ID: key}})
		if err != nil {
			return nil, err
		}
		ops = append(ops, op)
	}
	return ops, nil
}

// endedOps go with a group's change to an ended state (stripped of its
// secrets, it is no longer large).
func (s *Service) endedOps(g *apiv1.ContainerGroup) []store.Op {
	return []store.Op{s.members.DeleteOp(liveKey(g.Metadata.Tenant, g.Metadata.ID)), s.members.DeleteOp(largeKey(g.Metadata.Tenant, g.Metadata.ID))}
}

// removalOps go with a group's removal: its index keys and its client
// token's, so that the token may make a new group; and its usage record
// (metering.go).
func (s *Service) removalOps(g *apiv1.ContainerGroup) ([]store.Op, error) {
	ops := []store.Op{
		s.groups.DeleteOp(g.Metadata.ID),
		s.members.DeleteOp(storedKey(g.Metadata.Tenant, g.Metadata.ID)),
		s.members.DeleteOp(liveKey(g.Metadata.Tenant, g.Metadata.ID)),
		s.members.DeleteOp(largeKey(g.Metadata.Tenant, g.Metadata.ID)),
	}
	if g.Spec.ClientToken != "" {
		ops = append(ops, s.idxs.DeleteOp(clientTokenKey(g.Metadata.Tenant, g.Spec.ClientToken)))
	}
	usage, err := s.usageOps(g)
	return append(ops, usage...), err
}

// removeRecord removes an ended group's record (it holds nothing) if it is
// still at the version read.
func (s *Service) removeRecord(ctx context.Context, g *apiv1.ContainerGroup) error {
	unchanged, err := s.groups.Unchanged(g)
	if err != nil {
		return err
	}
	ops, err := s.removalOps(g)
	if err != nil {
		return err
	}
	_, err = s.st.Commit(ctx, []store.Cond{unchanged}, ops)
	s.uncount(g.Metadata.Tenant)
	return err
}

// BackfillMembers writes the index keys of the groups stored before there
// were any (an upgrade), so that they count; a leader runs it once. Nothing
// is written when every group has its keys.
func (s *Service) BackfillMembers(ctx context.Context) (int, error) {
	total, err := s.groups.Count(ctx, "")
	if err != nil {
		return 0, err
	}
	stored, err := s.members.Count(ctx, "stored/")
	if err != nil || stored >= total {
		return 0, err
	}
	groups, _, _, err := s.groups.List(ctx, storeOpts(0, 0, ""))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, g := range groups {
		keys := []string{storedKey(g.Metadata.Tenant, g.Metadata.ID)}
		if !g.Status.State.Terminal() {
			keys = append(keys, liveKey(g.Metadata.Tenant, g.Metadata.ID))
		}
		for _, key := range keys {
			err := s.members.Create(ctx, &member{Metadata: apiv1.ObjectMeta{ID: key}}, []store.Cond{s.groups.Present(g.Metadata.ID)})
			switch {
			case err == nil:
				n++
			case !errdefs.IsAlreadyExists(err) && !errdefs.IsConflict(err):
				return n, err
			}
		}
	}
	return n, nil
}
