package control

import (
	"context"
	"fmt"
	"hash/fnv"
	"slices"
	"sort"
	"strings"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/auth"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/imageref"
	"github.com/eci-dev/eci/internal/store"
)

// hostImages is what one host's agent last reported of its images (ID: the
// host). Kept apart from the host, which every heartbeat writes.
type hostImages struct {
	Metadata apiv1.ObjectMeta `json:"metadata"`
	apiv1.HostImages
}

func (r *hostImages) Meta() *apiv1.ObjectMeta { return &r.Metadata }

// keepsCaches tells whether host h is given image caches: Ready and taking
// groups (a cordoned or draining host gets none to pull).
func keepsCaches(h *apiv1.Host) bool {
	return h.Status.Ready && !h.Spec.Unschedulable && !h.Spec.Draining
}

// cacheHosts are the hosts of hosts (sorted by name) that keep cache id
// (an image or a data cache): every one that keeps caches, or perZone of
// each zone, chosen by hashing the cache's id with the host's name
// (rendezvous hashing: a host that joins or leaves moves few caches).
// asking, when not empty, is a host that counts whatever its state (its
// own agent asking: a host cordoned, or late with a heartbeat, keeps its
// caches).
func cacheHosts(id string, perZone int, hosts []*apiv1.Host, asking string) []*apiv1.Host {
	var out []*apiv1.Host
	byZone := map[string][]*apiv1.Host{}
	for _, h := range hosts {
		if keepsCaches(h) || h.Metadata.Name == asking {
			byZone[h.Spec.Zone] = append(byZone[h.Spec.Zone], h)
		}
	}
	for _, zone := range byZone {
		if n := perZone; n > 0 && len(zone) > n {
			sort.Slice(zone, func(i, j int) bool {
				return rendezvous(id, zone[i].Metadata.Name) < rendezvous(id, zone[j].Metadata.Name)
			})
			zone = zone[:n]
		}
		out = append(out, zone...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Metadata.Name < out[j].Metadata.Name })
	return out
}

// isHost matches host name.
func isHost(name string) func(*apiv1.Host) bool {
	return func(h *apiv1.Host) bool { return h.Metadata.Name == name }
}

func rendezvous(cache, host string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(cache + "/" + host))
	return h.Sum64()
}

// HostImageCaches are the caches host name keeps, with their registry
// credentials: for its own agent only.
func (s *Service) HostImageCaches(ctx context.Context, p auth.Principal, name string) (*apiv1.HostImageCaches, error) {
	if p.Kind != apiv1.TokenHost || p.Host != name {
		return nil, fmt.Errorf("%s may not read the image caches of host %s (its agent's token only): %w", p, name, errdefs.ErrPermissionDenied)
	}
	hosts, _, _, err := s.hosts.List(ctx, store.ListOptions{})
	if err != nil {
		return nil, err
	}
	caches, _, _, err := s.imcs.List(ctx, store.ListOptions{})
	if err != nil {
		return nil, err
	}
	out := &apiv1.HostImageCaches{Items: []apiv1.ImageCache{}}
	for _, c := range caches {
		if slices.ContainsFunc(cacheHosts(c.Metadata.ID, c.Spec.HostsPerZone, hosts, name), isHost(name)) {
			c.Status = apiv1.ImageCacheStatus{LastMatchedTime: c.Status.LastMatchedTime} // what the host needs of it
			out.Items = append(out.Items, *c)
		}
	}
	return out, nil
}

// ReportHostImages records what host name holds (its own token, or an
// admin): the placer reads it, and the caches' status is made of it.
func (s *Service) ReportHostImages(ctx context.Context, p auth.Principal, name string, rep apiv1.HostImages) error {
	if err := s.canSeeHost(p, name); err != nil {
		return err
	}
	if err := validateHostImages(&rep); err != nil {
		return fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, err)
	}
	if _, err := s.hosts.Get(ctx, name); err != nil {
		return err
	}
	rec := &hostImages{Metadata: apiv1.ObjectMeta{ID: name, Name: name}, HostImages: rep}
	for i, img := range rec.Images {
		refs := make([]string, 0, len(img.Refs))
		for _, r := range img.Refs {
			if n, err := imageref.Normal(r); err == nil {
				refs = append(refs, n)
			}
		}
		rec.Images[i].Refs = refs
	}
	op, err := s.himgs.PutOp(rec)
	if err != nil {
		return err
	}
	_, err = s.st.Commit(ctx, nil, []store.Op{op})
	return err
}

// validateHostImages bounds a host's report.
func validateHostImages(rep *apiv1.HostImages) error {
	var errs apiv1.FieldErrors
	if n := len(rep.Images); n > apiv1.MaxHostImages {
		errs = append(errs, apiv1.FieldError{Field: "images", Message: fmt.Sprintf("%d images is too many; allowed: at most %d", n, apiv1.MaxHostImages)})
	}
	for i, img := range rep.Images {
		if len(img.Refs) > 32 || img.SizeBytes < 0 {
			errs = append(errs, apiv1.FieldError{Field: fmt.Sprintf("images[%d]", i), Message: "allowed: at most 32 refs and a size of 0 or more"})
		}
		rep.Images[i].PrivateTo = img.PrivateTo[:min(len(img.PrivateTo), 256)] // (fewer: safe, fewer tenants count it)
		for _, r := range img.Refs {
			if len(r) > apiv1.MaxImageRefLength {
				errs = append(errs, apiv1.FieldError{Field: fmt.Sprintf("images[%d].refs", i), Message: fmt.Sprintf("a ref of %d characters; allowed: at most %d", len(r), apiv1.MaxImageRefLength)})
			}
		}
	}
	// Failures are cut to size, never refused: one long message must not
	// stop the host's whole report (the placer and every cache read it).
	rep.Failed = rep.Failed[:min(len(rep.Failed), apiv1.MaxHostImageFailures)]
	for i, f := range rep.Failed {
		if len(f.Image) > apiv1.MaxImageRefLength || len(f.Cache) > 64 {
			errs = append(errs, apiv1.FieldError{Field: fmt.Sprintf("failed[%d]", i), Message: "allowed: an image ref and a cache id"})
		}
		rep.Failed[i].Message = strings.ToValidUTF8(f.Message[:min(len(f.Message), 256)], "?")
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}
