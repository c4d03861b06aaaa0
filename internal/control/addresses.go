package control

import (
	"context"
	"slices"
	"strconv"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/auth"
	"github.com/eci-dev/eci/internal/store"
)

// addressOf is where g's address (and its IPv6 address, if it has one) is
// routed, nil while g holds none on a host (not placed yet, ended,
// released).
func addressOf(g *apiv1.ContainerGroup) *apiv1.InstanceAddress {
	st := &g.Status
	if !st.Allocated || st.IP == "" || st.Host == "" || st.State.Terminal() {
		return nil
	}
	a := &apiv1.InstanceAddress{
		Metadata: apiv1.ObjectMeta{ID: g.Metadata.ID, ResourceVersion: g.Metadata.ResourceVersion},
		Spec:     apiv1.InstanceAddressSpec{IP: st.IP, VSwitchID: st.VSwitchID, Host: st.Host, IPv6: st.IPv6Address},
	}
	for _, sg := range g.Spec.SecurityGroupIDs {
		a.Spec.SecurityGroups = append(a.Spec.SecurityGroups, SecurityGroupKey(g.Metadata.Tenant, sg))
	}
	return a
}

func sameAddress(a, b apiv1.InstanceAddressSpec) bool {
	return a.IP == b.IP && a.IPv6 == b.IPv6 && a.VSwitchID == b.VSwitchID && a.Host == b.Host && slices.Equal(a.SecurityGroups, b.SecurityGroups)
}

// ListAddresses lists where every group's address is routed; hosts and
// the admin only.
func (s *Service) ListAddresses(ctx context.Context, p auth.Principal) (*apiv1.List[apiv1.InstanceAddress], error) {
	if err := p.Require("read the instances' addresses", apiv1.TokenAdmin, apiv1.TokenHost); err != nil {
		return nil, err
	}
	out := &apiv1.List[apiv1.InstanceAddress]{Items: []apiv1.InstanceAddress{}}
	cont := ""
	for {
		items, rev, next, err := s.groups.List(ctx, storeOpts(500, 0, cont))
		if err != nil {
			return nil, err
		}
		if out.ResourceVersion == "" {
			out.ResourceVersion = strconv.FormatInt(rev, 10)
		}
		for _, g := range items {
			if a := addressOf(g); a != nil {
				out.Items = append(out.Items, *a)
			}
		}
		if next == "" {
			return out, nil
		}
		cont = next
	}
}

// WatchAddresses lists the addresses (resourceVersion "") and watches their
// changes, or watches the changes after resourceVersion, as WatchGroups.
// A group that stops holding its address is a DELETED event (of its id);
// a group's change that leaves its address as it was is none.
func (s *Service) WatchAddresses(ctx context.Context, p auth.Principal, resourceVersion string) (*Watch[apiv1.InstanceAddress], error) {
	if err := p.Require("read the instances' addresses", apiv1.TokenAdmin, apiv1.TokenHost); err != nil {
		return nil, err
	}
	w, err := startWatch(ctx, s.st, resourceVersion, func() (*apiv1.List[apiv1.InstanceAddress], error) { return s.ListAddresses(ctx, p) })
	if err != nil {
		return nil, err
	}
	w.Events = addressEvents(ctx, s.groups.Watch(ctx, w.Revision))
	return w, nil
}

// addressEvents turns group changes into address changes: an event only
// when a group's address, vSwitch or host changed, or it stopped holding
// one. A watch that resumes (after resourceVersion) knows no earlier
// state: its first event of each group is sent as it is.
func addressEvents(ctx context.Context, in <-chan store.Event[apiv1.ContainerGroup, *apiv1.ContainerGroup]) <-chan Event[apiv1.InstanceAddress] {
	out := make(chan Event[apiv1.InstanceAddress], 16)
	go func() {
		defer close(out)
		last := map[string]apiv1.InstanceAddressSpec{}
		for ev := range in {
			var e Event[apiv1.InstanceAddress]
			switch {
			case ev.Err != nil:
				e = Event[apiv1.InstanceAddress]{Err: ev.Err}
			case ev.Type == apiv1.Bookmark:
				e = Event[apiv1.InstanceAddress]{Type: apiv1.Bookmark, Revision: ev.Revision}
			default:
				id := ev.Object.Metadata.ID
				a := addressOf(ev.Object)
				prev, had := last[id]
				switch {
				case ev.Type == apiv1.Deleted || a == nil:
					delete(last, id)
					e = Event[apiv1.InstanceAddress]{Type: apiv1.Deleted, Revision: ev.Revision, Object: &apiv1.InstanceAddress{
						Metadata: apiv1.ObjectMeta{ID: id, ResourceVersion: ev.Object.Metadata.ResourceVersion}}}
					if !had && ev.Type != apiv1.Deleted && ev.Object.Status.IP == "" {
						continue // never held one here: nothing to say
					}
				case had && sameAddress(prev, a.Spec):
					continue
				default:
					last[id] = a.Spec
					e = Event[apiv1.InstanceAddress]{Type: apiv1.Modified, Revision: ev.Revision, Object: a}
					if !had {
						e.Type = apiv1.Added
					}
				}
			}
			select {
			case out <- e:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}
