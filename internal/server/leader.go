package server

import (
	"context"
	"sync"
	"time"

	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/eci-dev/eci/internal/log"
)

// lead campaigns for leadership on etcd and, while leading, runs the placer
// and the monitor. Several servers on one etcd: one leads, the others serve the
// API and take over within the session TTL when the leader goes.
func (s *Server) lead(ctx context.Context) {
	for ctx.Err() == nil {
		if err := s.leadOnce(ctx); err != nil && ctx.Err() == nil {
			log.G(ctx).Warn("leader election", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

func (s *Server) leadOnce(ctx context.Context) error {
	session, err := concurrency.NewSession(s.st.Client, concurrency.WithTTL(10), concurrency.WithContext(ctx))
	if err != nil {
		return err
	}
	defer func() { _ = session.Close() }()
	election := concurrency.NewElection(session, "/eci/leader")
	if err := election.Campaign(ctx, s.cfg.Name); err != nil {
		return err
	}
	log.G(ctx).Info("leading: running the placer and the monitor", "name", s.cfg.Name)
	s.setLeading(true)
	defer s.setLeading(false)
	leadCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for _, run := range []func(context.Context) error{s.svc.RunPlacer, s.svc.RunMonitor, s.reseal, s.backfill} {
		wg.Add(1)
		go func() { defer wg.Done(); _ = run(leadCtx) }()
	}
	select {
	case <-ctx.Done():
	case <-session.Done():
		log.G(ctx).Warn("lost leadership (etcd session ended)")
	}
	cancel()
	wg.Wait()
	resignCtx, cancelResign := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancelResign()
	_ = election.Resign(resignCtx)
	return nil
}

// reseal seals, once a server leads, what is stored unsealed or with a key
// being rotated out.
func (s *Server) reseal(ctx context.Context) error {
	n, err := s.st.Reseal(ctx)
	if err != nil {
		log.G(ctx).Warn("seal stored values with the current key", "err", err)
		return err
	}
	if n > 0 {
		log.G(ctx).Info("stored values sealed with the current key", "values", n)
	}
	return nil
}

// backfill writes, once a server leads, the index keys of groups stored
// before there were any (they then count against their tenants' bounds).
func (s *Server) backfill(ctx context.Context) error {
	n, err := s.svc.BackfillMembers(ctx)
	if err != nil {
		log.G(ctx).Warn("count the groups stored before their tenants' bounds", "err", err)
		return err
	}
	if n > 0 {
		log.G(ctx).Info("groups stored before their tenants' bounds now count", "keys", n)
	}
	return nil
}
