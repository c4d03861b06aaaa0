package control

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"strconv"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/auth"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/store"
)

// MaxEventsPerObject bounds the events kept of one object: past it, the
// oldest goes when a new one comes (an object can't fill the store).
const MaxEventsPerObject = 100

// recordEvent stores an event; a failure is logged, never returned (an event
// must not fail the change it describes). Events of one object with the same
// type, reason, message and source are one series, as Kubernetes' event
// correlator makes them: its count and lastTime move, nothing new is stored.
func (s *Service) recordEvent(ctx context.Context, kind, id, tenant, typ, reason, message, source string) {
	s.recordContainerEvent(ctx, kind, id, tenant, "", typ, reason, message, source)
}

// recordContainerEvent is recordEvent of one of the group's containers.
func (s *Service) recordContainerEvent(ctx context.Context, kind, id, tenant, container, typ, reason, message, source string) {
	ev := s.newEvent(kind, id, tenant, container, typ, reason, message, source)
	key, now := ev.Metadata.ID, ev.LastTime
	err := s.events.Create(ctx, ev, nil)
	if errdefs.IsAlreadyExists(err) {
		_, err = s.events.Mutate(ctx, key, func(cur *apiv1.Event) error {
			cur.Count++
			cur.LastTime = now
			return nil
		})
	} else if err == nil && source != "server" {
		// The server's own events of an object are few; an agent's (its
		// messages vary: probes, pulls) are capped.
		err = s.capEvents(ctx, id)
	}
	if err != nil {
		s.log.Warn("record event", "object", id, "reason", reason, "err", err)
	}
}

// newEvent is the first of an event's series: its key is the object's id
// and a hash of what the series has in common.
func (s *Service) newEvent(kind, id, tenant, container, typ, reason, message, source string) *apiv1.Event {
	now := s.now()
	series := typ + "\x00" + reason + "\x00" + message + "\x00" + source
	if container != "" {
		series += "\x00" + container // (the series of before containers keep their keys)
	}
	sum := sha256.Sum256([]byte(series))
	return &apiv1.Event{
		Metadata: apiv1.ObjectMeta{ID: id + "." + hex.EncodeToString(sum[:12]), Name: reason, Tenant: tenant, CreatedAt: now},
		Object:   apiv1.ObjectReference{Kind: kind, ID: id},
		Type:     typ, Reason: reason, Message: message, Container: container, Count: 1, FirstTime: now, LastTime: now, Source: source,
	}
}

// capEvents removes the oldest events of object id beyond MaxEventsPerObject.
func (s *Service) capEvents(ctx context.Context, id string) error {
	n, err := s.events.Count(ctx, id+".")
	if err != nil || n <= MaxEventsPerObject {
		return err
	}
	all, _, _, err := s.events.List(ctx, store.ListOptions{Prefix: id + "."})
	if err != nil {
		return err
	}
	var items []*apiv1.Event // the prefix also holds objects named id.x (host names)
	for _, ev := range all {
		if ev.Object.ID == id {
			items = append(items, ev)
		}
	}
	sort.Slice(items, func(i, j int) bool { return items[i].LastTime.Before(items[j].LastTime) })
	for _, ev := range items[:max(0, len(items)-MaxEventsPerObject)] {
		if err := s.events.Delete(ctx, ev); err != nil && !errdefs.IsNotFound(err) && !errdefs.IsConflict(err) {
			return err
		}
	}
	return nil
}

// MaxEventMessage bounds an event's message (bytes; longer ones are cut):
// a probe's or a hook's output, a tenant's, is in it.
const MaxEventMessage = 4096

// hasContainer tells whether g has a container (app, init or ephemeral)
// named name.
func hasContainer(g *apiv1.ContainerGroup, name string) bool {
	for _, c := range append(slices.Clone(g.Spec.InitContainers), g.Spec.Containers...) {
		if c.Name == name {
			return true
		}
	}
	return slices.ContainsFunc(g.Spec.EphemeralContainers, func(c apiv1.EphemeralContainer) bool { return c.Name == name })
}

// AddEvent records an event reported by an agent about one of its groups.
func (s *Service) AddEvent(ctx context.Context, p auth.Principal, ev *apiv1.Event) (*apiv1.Event, error) {
	if err := p.Require("record events", apiv1.TokenAdmin, apiv1.TokenHost); err != nil {
		return nil, err
	}
	if ev.Object.Kind != "ContainerGroup" && ev.Object.Kind != "Host" {
		return nil, fmt.Errorf("object.kind: %q is not allowed; allowed: ContainerGroup, Host: %w", ev.Object.Kind, errdefs.ErrInvalidArgument)
	}
	if ev.Reason == "" {
		return nil, fmt.Errorf("reason: required: %w", errdefs.ErrInvalidArgument)
	}
	if ev.Type != apiv1.EventNormal && ev.Type != apiv1.EventWarning {
		return nil, fmt.Errorf("type: %q is not allowed; allowed: Normal, Warning: %w", ev.Type, errdefs.ErrInvalidArgument)
	}
	tenant := ""
	var g *apiv1.ContainerGroup
	switch ev.Object.Kind {
	case "ContainerGroup":
		var err error
		if g, err = s.GetGroup(ctx, p, ev.Object.ID); err != nil {
			return nil, err
		}
		tenant = g.Metadata.Tenant
	case "Host":
		if p.Kind == apiv1.TokenHost && ev.Object.ID != p.Host {
			return nil, fmt.Errorf("%s may not record events of host %s: %w", p, ev.Object.ID, errdefs.ErrPermissionDenied)
		}
	}
	source := ev.Source
	if p.Kind == apiv1.TokenHost {
		source = "agent/" + p.Host
	}
	if ev.Container != "" && (ev.Object.Kind != "ContainerGroup" || !hasContainer(g, ev.Container)) {
		return nil, fmt.Errorf("container %q: allowed: the name of a container of the event's group: %w", ev.Container, errdefs.ErrInvalidArgument)
	}
	if len(ev.Message) > MaxEventMessage {
		ev.Message = ev.Message[:MaxEventMessage] + "..."
	}
	s.recordContainerEvent(ctx, ev.Object.Kind, ev.Object.ID, tenant, ev.Container, ev.Type, ev.Reason, ev.Message, source)
	return ev, nil
}

// ListEvents lists the events p may see, of one object when id is set.
func (s *Service) ListEvents(ctx context.Context, p auth.Principal, id string) ([]apiv1.Event, error) {
	opts := storeOpts(0, 0, "")
	if id != "" {
		opts.Prefix = id + "."
	}
	items, _, _, err := s.events.List(ctx, opts)
	if err != nil {
		return nil, err
	}
	out := []apiv1.Event{}
	for _, ev := range items {
		if id != "" && ev.Object.ID != id {
			continue
		}
		if !p.IsAdmin() {
			if ev.Object.Kind == "ImageCache" && p.Kind == apiv1.TokenTenant && ev.Metadata.Tenant == p.Tenant {
				out = append(out, *ev) // its own cache's
				continue
			}
			if ev.Object.Kind != "ContainerGroup" {
				continue
			}
			g, err := s.groups.Get(ctx, ev.Object.ID)
			host := ""
			if err == nil {
				host = g.Status.Host
			}
			if !p.CanSeeGroup(ev.Metadata.Tenant, host) {
				continue
			}
		}
		out = append(out, *ev)
	}
	// Keys sort by object, then by time; within one instant, by the revision
	// that wrote them.
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].LastTime.Equal(out[j].LastTime) {
			return out[i].LastTime.Before(out[j].LastTime)
		}
		ri, _ := strconv.ParseInt(out[i].Metadata.ResourceVersion, 10, 64)
		rj, _ := strconv.ParseInt(out[j].Metadata.ResourceVersion, 10, 64)
		return ri < rj
	})
	return out, nil
}
