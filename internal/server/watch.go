package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/auth"
	"github.com/eci-dev/eci/internal/control"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/store"
)

type watchLine struct {
	Type   apiv1.WatchEventType `json:"type"`
	Object any                  `json:"object"`
}

// watchGroups streams group changes as newline-delimited JSON WatchEvents.
// Without resourceVersion it first sends every matching group as ADDED; with
// one, it sends every change after it (410 Gone when that history was
// compacted: list again). BOOKMARK lines carry the revision reached.
func (s *Server) watchGroups(w http.ResponseWriter, r *http.Request, f control.GroupFilter) {
	ctx := r.Context()
	p := principal(r)
	rev, err := store.ParseRevision(r.URL.Query().Get("resourceVersion"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	var initial []apiv1.ContainerGroup
	if rev == 0 {
		cont := ""
		for {
			page, err := s.svc.ListGroups(ctx, p, f, 500, cont)
			if err != nil {
				writeError(w, r, err)
				return
			}
			initial = append(initial, page.Items...)
			if rev == 0 {
				rev, _ = strconv.ParseInt(page.ResourceVersion, 10, 64)
			}
			if page.Continue == "" {
				break
			}
			cont = page.Continue
		}
	} else if err := s.st.CheckRevision(ctx, rev); err != nil {
		writeError(w, r, err)
		return
	}
	flusher, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	send := func(line watchLine) bool {
		if err := enc.Encode(line); err != nil {
			return false
		}
		if flusher != nil {
			flusher.Flush()
		}
		return true
	}
	for i := range initial {
		if !send(watchLine{Type: apiv1.Added, Object: control.Redact(p, &initial[i])}) {
			return
		}
	}
	if !send(watchLine{Type: apiv1.Bookmark, Object: bookmark(rev)}) {
		return
	}
	// Every tokenRecheck the caller's token must still be valid: a revoked
	// token's watch ends (events or not).
	recheck := time.NewTicker(tokenRecheck)
	defer recheck.Stop()
	events := s.svc.Groups().Watch(ctx, rev)
	for {
		var ev store.Event[apiv1.ContainerGroup, *apiv1.ContainerGroup]
		var ok bool
		select {
		case <-recheck.C:
			if id := auth.TokenFrom(ctx); id != "" && !s.svc.TokenValid(ctx, id) {
				send(watchLine{Type: "ERROR", Object: StatusOf(fmt.Errorf("the token was revoked: %w", errdefs.ErrUnauthenticated))})
				return
			}
			continue
		case ev, ok = <-events:
			if !ok {
				return
			}
		}
		switch {
		case ev.Err != nil:
			send(watchLine{Type: "ERROR", Object: StatusOf(ev.Err)})
			return
		case ev.Type == apiv1.Bookmark:
			if !send(watchLine{Type: apiv1.Bookmark, Object: bookmark(ev.Revision)}) {
				return
			}
		case p.CanSeeGroup(ev.Object.Metadata.Tenant, ev.Object.Status.Host) && f.Match(ev.Object):
			if !send(watchLine{Type: ev.Type, Object: control.Redact(p, ev.Object)}) {
				return
			}
		}
	}
}

// tokenRecheck is how often a watch checks its caller's token again.
const tokenRecheck = 5 * time.Second

func bookmark(rev int64) *apiv1.ContainerGroup {
	return &apiv1.ContainerGroup{Metadata: apiv1.ObjectMeta{ResourceVersion: strconv.FormatInt(rev, 10)}}
}
