package server

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/billing"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/log"
)

// startPriceBook gives the service its price book and keeps reading the
// file until ctx ends.
func (s *Server) startPriceBook(ctx context.Context) error {
	data := []byte(billing.DefaultBook)
	if s.cfg.PriceBookFile != "" {
		var err error
		if data, err = os.ReadFile(s.cfg.PriceBookFile); err != nil {
			return fmt.Errorf("--price-book: %w", err)
		}
	}
	if err := s.svc.ApplyPriceBook(ctx, data, s.cfg.PriceBookFile != ""); err != nil {
		return fmt.Errorf("--price-book %s: %w", s.cfg.PriceBookFile, err)
	}
	go s.watchPriceBook(ctx, data)
	return nil
}

// watchPriceBook, every PriceBookEvery: reads the price book's file again
// and applies it when it changed (one that is not valid, or would change
// the prices of usage already past, is logged with the reason and its
// line, and the book in use stays); then takes the stored book if another
// server changed it. A failure to reach the store is tried again.
func (s *Server) watchPriceBook(ctx context.Context, last []byte) {
	t := time.NewTicker(s.cfg.PriceBookEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if s.cfg.PriceBookFile != "" {
			data, err := os.ReadFile(s.cfg.PriceBookFile)
			switch {
			case err != nil:
				log.G(ctx).Error("price book: keeping the one in use", "err", err)
			case !bytes.Equal(data, last):
				err := s.svc.ApplyPriceBook(ctx, data, true)
				if err == nil || errdefs.IsInvalid(err) {
					last = data
				}
				if err != nil {
					log.G(ctx).Error("price book: the file changed but is not taken; keeping the one in use", "file", s.cfg.PriceBookFile, "err", err)
				} else {
					log.G(ctx).Info("price book reloaded", "file", s.cfg.PriceBookFile)
				}
			}
		}
		if err := s.svc.RefreshPriceBook(ctx); err != nil && ctx.Err() == nil {
			log.G(ctx).Warn("price book: read the stored one", "err", err)
		}
	}
}

// bill answers GET /v1/bill?from=&to=&granularity=&by=&tag=k=v.
func (s *Server) bill(w http.ResponseWriter, r *http.Request) {
	q, err := billQuery(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	out, err := s.svc.Bill(r.Context(), principal(r), q)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// billQuery reads a bill's query: from and to (RFC 3339 times or dates;
// default: this month so far), granularity, by (default group) and tag
// (k=v, repeated: the groups with every one).
func billQuery(r *http.Request) (billing.Query, error) {
	v := r.URL.Query()
	now := time.Now().UTC()
	q := billing.Query{From: time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC), To: now,
		Granularity: v.Get("granularity"), By: v.Get("by"), Tags: map[string]string{}}
	if q.By == "" {
		q.By = "group"
	}
	for _, f := range []struct {
		name string
		t    *time.Time
	}{{"from", &q.From}, {"to", &q.To}} {
		if s := v.Get(f.name); s != "" {
			t, err := billing.ParseTime(s)
			if err != nil {
				return q, badRequest(f.name, err.Error())
			}
			*f.t = t
		}
	}
	for _, tag := range v["tag"] {
		k, val, ok := strings.Cut(tag, "=")
		if !ok || k == "" {
			return q, badRequest("tag", fmt.Sprintf("%q is not allowed; allowed: key=value", tag))
		}
		q.Tags[k] = val
	}
	if err := q.Validate(); err != nil {
		return q, badRequest("query", err.Error())
	}
	return q, nil
}

// virtualNodeHeartbeat answers PUT /v1/virtualnodes/{name}: the caller's
// virtual node is Ready (billed as one instance while it is).
func (s *Server) virtualNodeHeartbeat(w http.ResponseWriter, r *http.Request) {
	var hb apiv1.VirtualNodeHeartbeat
	if err := decode(r, &hb); err != nil {
		writeError(w, r, err)
		return
	}
	if err := s.svc.VirtualNodeHeartbeat(r.Context(), principal(r), r.PathValue("name"), hb); err != nil {
		writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
