package vservice

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/vishvananda/netlink"
	"sigs.k8s.io/knftables"
)

// Proxy keeps the host's nftables table equal to its tables of virtual
// services. It writes only what changed since its last sync (a chain whose
// rules are the same is left alone, a map whose elements are the same too),
// in one transaction; after a failed sync the next one starts from what the
// kernel has.
type Proxy struct {
	nft knftables.Interface

	mu sync.Mutex
	// last is what the last successful sync left: chain and map names with
	// their content, and set names. nil: unknown (list the kernel's).
	last *written
	// udp are the UDP virtual ports and backends of the last successful
	// sync (conntrack.go).
	udp udpFlows
	// staleUDP are flows a sync could not delete, tried again by the next.
	staleUDP []netlink.CustomConntrackFilter
}

type written struct {
	chains map[string][]string
	maps   map[string][]knftables.Element
	sets   map[string]bool
	// unknown are the chains and maps whose content is not known (listed
	// from the kernel by name): they are written again.
	unknown map[string]bool
}

func newWritten() *written {
	return &written{chains: map[string][]string{}, maps: map[string][]knftables.Element{}, sets: map[string]bool{}, unknown: map[string]bool{}}
}

// New returns a proxy over nft (knftables.New(knftables.IPv4Family,
// TableFor(network)) on a host; a knftables.Fake in tests).
func New(nft knftables.Interface) *Proxy {
	return &Proxy{nft: nft}
}

// Sync makes the table serve exactly tables; wrote says whether it had
// anything to write. A *FlowsError says the rules were written but stale
// UDP flows remain (tried again by the next sync).
func (p *Proxy) Sync(ctx context.Context, tables []Table) (wrote bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	tx, next, err := p.plan(ctx, tables)
	if err != nil {
		return false, err
	}
	wrote = changes(tx) > 0
	if wrote {
		if err := p.nft.Run(ctx, tx); err != nil {
			p.last = nil
			return false, fmt.Errorf("nftables: %w", err)
		}
	}
	p.last = next
	udp := udpOf(tables)
	stale := append(p.staleUDP, staleFlows(p.udp, udp)...)
	p.udp, p.staleUDP = udp, nil
	if err := clearFlows(stale); err != nil {
		p.staleUDP = stale
		return wrote, err
	}
	return wrote, nil
}

// Forget makes the next sync write everything again from what the kernel
// has (a table changed behind the proxy's back is mended).
func (p *Proxy) Forget() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.last = nil
}

// Operations is how many operations a Sync would write for tables now (for
// tests: 0 when nothing changed).
func (p *Proxy) Operations(ctx context.Context, tables []Table) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	tx, _, err := p.plan(ctx, tables)
	if err != nil {
		return 0, err
	}
	return changes(tx), nil
}

// plan is the transaction that turns what the table holds (as the last
// sync left it, or as the kernel lists it) into tables, and what the table
// holds after it (p.mu held).
func (p *Proxy) plan(ctx context.Context, tables []Table) (*knftables.Transaction, *written, error) {
	last := p.last
	if last == nil {
		var err error
		if last, err = p.listed(ctx); err != nil {
			return nil, nil, err
		}
	}
	tx := p.nft.NewTransaction()
	return tx, transaction(tx, build(tables), last), nil
}

// listed is what the kernel's table holds, by name only (every chain and
// map is then written again).
func (p *Proxy) listed(ctx context.Context) (*written, error) {
	w := newWritten()
	for _, kind := range []string{"chains", "maps", "sets"} {
		names, err := p.nft.List(ctx, kind)
		if err != nil && !knftables.IsNotFound(err) {
			return nil, fmt.Errorf("nftables: list the %s: %w", kind, err)
		}
		for _, n := range names {
			switch kind {
			case "chains":
				w.chains[n], w.unknown[n] = nil, true
			case "maps":
				w.maps[n], w.unknown[n] = nil, true
			case "sets":
				w.sets[n] = true
			}
		}
	}
	return w, nil
}

// transaction fills tx with what turns last into rs, and returns what the
// table holds after it. Order matters within the transaction: objects are
// made before anything refers to them, and the stale ones are emptied
// before they are deleted (a stale chain may still be named by another).
func transaction(tx *knftables.Transaction, rs *ruleset, last *written) *written {
	next := newWritten()
	tx.Add(&knftables.Table{})
	for _, c := range rs.chains {
		if _, ok := last.chains[c.Name]; !ok {
			tx.Add(&c.Chain)
		}
	}
	for _, m := range rs.maps {
		if _, ok := last.maps[m.Name]; !ok {
			tx.Add(m.object())
		}
		if m.set {
			next.sets[m.Name] = true
		}
	}
	for _, s := range rs.sets {
		if !last.sets[s.Name] {
			tx.Add(&s)
		}
		next.sets[s.Name] = true
	}
	for _, m := range rs.maps {
		next.maps[m.Name] = m.elements
		if old, ok := last.maps[m.Name]; ok && !last.unknown[m.Name] && slices.EqualFunc(old, m.elements, sameElement) {
			continue
		}
		tx.Flush(m.object())
		for _, e := range m.elements {
			tx.Add(m.element(e))
		}
	}
	for _, c := range rs.chains {
		next.chains[c.Name] = c.rules
		if old, ok := last.chains[c.Name]; ok && !last.unknown[c.Name] && slices.Equal(old, c.rules) {
			continue
		}
		tx.Flush(&knftables.Chain{Name: c.Name})
		for _, r := range c.rules {
			tx.Add(&knftables.Rule{Chain: c.Name, Rule: r})
		}
	}
	for name := range last.chains {
		if _, ok := next.chains[name]; !ok {
			tx.Flush(&knftables.Chain{Name: name})
		}
	}
	for name := range last.maps {
		if _, ok := next.maps[name]; !ok && !last.sets[name] {
			tx.Delete(&knftables.Map{Name: name})
		}
	}
	for name := range last.chains {
		if _, ok := next.chains[name]; !ok {
			tx.Delete(&knftables.Chain{Name: name})
		}
	}
	for name := range last.sets {
		if !next.sets[name] {
			tx.Delete(&knftables.Set{Name: name})
		}
	}
	return next
}

// changes is how many operations of tx change something (all but the
// table's add, which is there in case the table is gone).
func changes(tx *knftables.Transaction) int { return tx.NumOperations() - 1 }

func sameElement(a, b knftables.Element) bool {
	return slices.Equal(a.Key, b.Key) && slices.Equal(a.Value, b.Value)
}
