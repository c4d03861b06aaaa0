package e2e

import (
	"context"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/poll"
	"github.com/eci-dev/eci/internal/server"
	"github.com/eci-dev/eci/internal/testbed"
	"github.com/eci-dev/eci/internal/vnode"
)

// A pod on the virtual node carries its running cost, as the bill rates it.
func TestPodCarriesItsCost(t *testing.T) {
	// Dear prices, so that a few seconds cost cents: 2 vCPU and 4 GiB
	// are 0.024 a second.
	book := filepath.Join(t.TempDir(), "prices.yaml")
	if err := os.WriteFile(book, []byte("currency: EUR\nperiods:\n  - from: 2026-01-01\n    vcpu: 0.01\n    memory: 0.001\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bed := testbed.New(t, testbed.Options{Kube: true, Containerd: true})
	c := startServing(t, bed, func(cfg *server.Config) { cfg.PriceBookFile = book })
	c.stopVNode()
	c.stopVNode = c.startVNodeAs(t, nodeName, "cluster-a", c.eci, func(cfg *vnode.Config) { cfg.CostInterval, cfg.ChargeInterval = time.Second, time.Second })
	ctx := context.Background()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "priced"}, Spec: onVNode(corev1.PodSpec{
		Containers: []corev1.Container{{Name: "main", Image: bed.Registry.Busybox, Command: []string{"sleep", "3600"}}}})}
	if _, err := c.kube.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var cost *big.Rat
	poll.Eventually(t, 60*time.Second, "the pod's running cost at 0.10 EUR or more", func() error {
		cur, err := c.kube.CoreV1().Pods("default").Get(ctx, "priced", metav1.GetOptions{})
		if err != nil {
			return err
		}
		amount, ok := strings.CutSuffix(cur.Annotations[vnode.AnnCost], " EUR")
		r, parsed := new(big.Rat).SetString(amount)
		if !ok || !parsed || len(amount) < 4 || amount[len(amount)-3] != '.' {
			return fmt.Errorf("annotation %q, want a cost to the cent in EUR", cur.Annotations[vnode.AnnCost])
		}
		if r.Cmp(big.NewRat(1, 10)) < 0 {
			return fmt.Errorf("cost %s", amount)
		}
		cost = r
		return nil
	})
	// What the bill says of the group now is at least that (less the half
	// cent of rounding), and not a minute's worth more (the node wrote it
	// within its interval).
	hourAgo := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	bill, err := c.eci.Bill(ctx, client.BillQuery{From: hourAgo, By: "size"})
	if err != nil {
		t.Fatal(err)
	}
	// Two lines: the pod's instance, and the virtual node's own charge
	// (one 2 vCPU / 8 GiB instance while it is Ready).
	amounts := map[string]string{}
	for _, l := range bill.Lines {
		amounts[l.Key] = l.Amount
	}
	if len(bill.Lines) != 2 || amounts["2.0-4.0Gi"] == "" || amounts["vnode"] == "" {
		t.Fatalf("bill by size %+v", bill.Lines)
	}
	byNode, err := c.eci.Bill(ctx, client.BillQuery{From: hourAgo, By: "vnode"})
	if err != nil || len(byNode.Lines) != 1 || byNode.Lines[0].Key != "cluster-a/"+nodeName || byNode.Lines[0].Groups != 2 {
		t.Fatalf("bill by virtual node %+v (%v)", byNode, err)
	}
	now, _ := new(big.Rat).SetString(amounts["2.0-4.0Gi"])
	if new(big.Rat).Add(now, big.NewRat(1, 200)).Cmp(cost) < 0 || new(big.Rat).Sub(now, cost).Cmp(big.NewRat(144, 100)) > 0 {
		t.Fatalf("the pod says %s EUR, the bill %s", cost.FloatString(2), now.FloatString(4))
	}
}
