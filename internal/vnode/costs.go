package vnode

import (
	"context"
	"encoding/json"
	"fmt"
	"math/big"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/log"
)

// AnnCost is a pod's running cost, written by its node (docs/billing.md):
// what its instance was billed for so far, rounded to the cent, with the
// price book's currency ("0.42 USD").
const AnnCost = annPrefix + "eci-cost"

// costTarget is a pod of this node and its group.
type costTarget struct {
	namespace, name string
	uid             types.UID
	group           string
	since           time.Time
}

// writeCosts writes each pod's running cost on it every CostInterval, when
// its rounded value changed: a pod of 1 vCPU changes about once in 20
// minutes at list prices, so the writes stay few at any scale.
func (v *VNode) writeCosts(ctx context.Context) {
	if v.cfg.CostInterval < 0 {
		return
	}
	t := time.NewTicker(v.cfg.CostInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := v.costPass(ctx); err != nil && ctx.Err() == nil {
			log.G(ctx).Warn("pods' running cost", "err", err)
		}
	}
}

// costTargets are the pods of this node that have a billed group.
func (p *Provider) costTargets() []costTarget {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []costTarget
	for _, pod := range p.pods {
		g := p.groups[string(pod.UID)]
		if g == nil || g.Status.PendingAt == nil {
			continue
		}
		out = append(out, costTarget{namespace: pod.Namespace, name: pod.Name, uid: pod.UID, group: g.Metadata.ID, since: *g.Status.PendingAt})
	}
	return out
}

// costPass reads the bill of this node's groups since the oldest began,
// and writes every pod whose rounded cost changed.
func (v *VNode) costPass(ctx context.Context) error {
	targets := v.provider.costTargets()
	if len(targets) == 0 {
		return nil
	}
	from := targets[0].since
	for _, t := range targets {
		if t.since.Before(from) {
			from = t.since
		}
	}
	bill, err := v.cfg.ECI.Bill(ctx, client.BillQuery{From: from.UTC().Truncate(time.Second).Format(time.RFC3339), By: "group"})
	if err != nil {
		return err
	}
	amounts := map[string]string{}
	for _, l := range bill.Lines {
		if r, ok := new(big.Rat).SetString(l.Amount); ok {
			amounts[l.Key] = r.FloatString(2) + " " + bill.Currency
		}
	}
	for _, t := range targets {
		cost, ok := amounts[t.group]
		if !ok {
			continue
		}
		if err := v.setCost(ctx, t, cost); err != nil {
			log.G(ctx).Warn("write a pod's running cost", "pod", t.namespace+"/"+t.name, "err", err)
		}
	}
	return nil
}

// setCost writes cost on the pod unless it carries it (the lister's copy).
func (v *VNode) setCost(ctx context.Context, t costTarget, cost string) error {
	if lister := v.provider.cfg.Pods; lister != nil {
		cur, err := lister.Pods(t.namespace).Get(t.name)
		if err != nil || cur.UID != t.uid || cur.Annotations[AnnCost] == cost {
			return nil
		}
	}
	// The uid precondition: never the cost of one pod on another of its name.
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"uid": t.uid, "annotations": map[string]string{AnnCost: cost}}})
	_, err := v.cfg.Kube.CoreV1().Pods(t.namespace).Patch(ctx, t.name, types.MergePatchType, patch, metav1.PatchOptions{})
	if err != nil {
		return fmt.Errorf("annotate %s: %w", AnnCost, err)
	}
	return nil
}
