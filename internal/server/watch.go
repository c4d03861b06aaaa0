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
)

type watchLine struct {
	Type   apiv1.WatchEventType `json:"type"`
	Object any                  `json:"object"`
}

// watchGroups streams group changes (control.WatchGroups: what the caller may
// see, as it may read it).
func (s *Server) watchGroups(w http.ResponseWriter, r *http.Request, f control.GroupFilter) {
	gw, err := s.svc.WatchGroups(r.Context(), principal(r), f, r.URL.Query().Get("resourceVersion"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	serveWatch(s, w, r, gw)
}

// serveWatch streams a watch as newline-delimited JSON WatchEvents. Without
// resourceVersion the watch first sends every matching object as ADDED; with
// one, every change after it (410 Gone when that history was compacted:
// list again). BOOKMARK lines carry the revision reached.
// listOrWatch serves a list, or with watch=true a watch from the query's
// resourceVersion.
func listOrWatch[T any](s *Server, w http.ResponseWriter, r *http.Request, watch func(resourceVersion string) (*control.Watch[T], error), list func() (any, error)) {
	on, err := queryBool(r, "watch")
	if err != nil {
		writeError(w, r, err)
		return
	}
	if on {
		ww, err := watch(r.URL.Query().Get("resourceVersion"))
		if err != nil {
			writeError(w, r, err)
			return
		}
		serveWatch(s, w, r, ww)
		return
	}
	out, err := list()
	respond(w, r, http.StatusOK, out, err)
}

func serveWatch[T any](s *Server, w http.ResponseWriter, r *http.Request, gw *control.Watch[T]) {
	ctx := r.Context()
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
	for _, g := range gw.Initial {
		if !send(watchLine{Type: apiv1.Added, Object: g}) {
			return
		}
	}
	if !send(watchLine{Type: apiv1.Bookmark, Object: bookmark(gw.Revision)}) {
		return
	}
	// Every tokenRecheck the caller's token must still be valid: a revoked
	// token's watch ends (events or not).
	recheck := time.NewTicker(tokenRecheck)
	defer recheck.Stop()
	for {
		var ev control.Event[T]
		var ok bool
		select {
		case <-recheck.C:
			if id := auth.TokenFrom(ctx); id != "" && !s.svc.TokenValid(ctx, id) {
				send(watchLine{Type: "ERROR", Object: StatusOf(fmt.Errorf("the token was revoked: %w", errdefs.ErrUnauthenticated))})
				return
			}
			continue
		case ev, ok = <-gw.Events:
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
		default:
			if !send(watchLine{Type: ev.Type, Object: ev.Object}) {
				return
			}
		}
	}
}

// tokenRecheck is how often a watch checks its caller's token again.
const tokenRecheck = 5 * time.Second

// bookmark is a BOOKMARK line's object: only its resourceVersion.
func bookmark(rev int64) any {
	return struct {
		Metadata apiv1.ObjectMeta `json:"metadata"`
	}{apiv1.ObjectMeta{ResourceVersion: strconv.FormatInt(rev, 10)}}
}
