package agent

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/log"
)

// The warm pool (docs/fast-start.md): sandboxes made before any group asks,
// one per address the server reserved for the host, so that a group placed
// on one of those addresses only creates and starts its containers. A
// sandbox of the pool has its network namespace and interface, its pause
// process and its cgroup, and is made for no group: a group takes it once
// (claim), its cgroup gets the group's size and its hostname the group's
// (warmclaim.go), and it goes with the group, never back to the pool.
//
// What the pool holds is read again from the truth on every sync: the
// runtime's sandboxes labelled LabelWarm, the takes recorded on disk
// (warmclaim.go) and the server's reserved addresses.

// Labels of a warm pool's sandboxes (no LabelManaged, no LabelGroup: no
// group's reconcile lists them until one takes it).
const (
	LabelWarm        = "eci.dev/warm"
	LabelWarmVSwitch = "eci.dev/warm-vswitch"
	LabelWarmIP      = "eci.dev/warm-ip"
)

// warmUIDPrefix starts a warm sandbox's CRI uid, which the CNI plugin sends
// as the group it attaches (network.go).
const warmUIDPrefix = "warm_"

// The pool's timing: how often it syncs with the server, how long a
// sandbox whose address is no longer reserved stays (the group placed on
// it may not have reached the agent's view yet; the server quarantines a
// released address longer, control/warmpool.go), and the limits of an
// untaken sandbox's cgroup (its pause alone).
const (
	warmSyncEvery    = 5 * time.Second
	warmUnusedGrace  = 10 * time.Second
	warmIdleMilliCPU = 100
	warmIdleMemMiB   = 32
)

// warmSandbox is one sandbox of the pool.
type warmSandbox struct {
	id, vsw, ip, name string
	created           int64
	ready             bool
	group             string    // the group that took it ("": none)
	prepared          bool      // made the group's (warmclaim.go)
	removing          bool      // being removed: no group may take it
	unreservedSince   time.Time // its address left the reserved ones
}

// key is the sandbox's address as the server's records name it.
func (w *warmSandbox) key() string { return w.vsw + "_" + w.ip }

// warmPool is the agent's pool.
type warmPool struct {
	a    *Agent
	kick chan struct{}

	mu        sync.Mutex
	size      int                          // the server's last answer
	target    *int                         // the operator's size, from the heartbeat
	reserved  map[string]apiv1.WarmAddress // by vsw_ip
	sandboxes map[string]*warmSandbox      // by sandbox id
	claims    map[string]string            // group id -> sandbox id
	synced    bool                         // once the server answered
	made      int                          // sandboxes made (a metric)
}

func newWarmPool(a *Agent) *warmPool {
	return &warmPool{a: a, kick: make(chan struct{}, 1), reserved: map[string]apiv1.WarmAddress{},
		sandboxes: map[string]*warmSandbox{}, claims: map[string]string{}}
}

// poke asks for a sync soon.
func (p *warmPool) poke() {
	if p == nil {
		return
	}
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// setTarget records the operator's size the server told.
func (p *warmPool) setTarget(t *int) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.target = t
}

// active tells whether the pool has anything to do with the server: a
// size, the operator's or the agent's, or something left to give back.
func (p *warmPool) active() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	agent := p.a.cfg.Host.Spec.WarmPool != nil && p.a.cfg.Host.Spec.WarmPool.Size > 0
	return !p.synced || agent || (p.target != nil && *p.target > 0) || p.size > 0 || len(p.reserved) > 0 || len(p.sandboxes) > 0
}

// run keeps the pool until ctx ends. It waits while the host is fenced
// (the fence removes the pool's sandboxes with the groups').
func (p *warmPool) run(ctx context.Context) {
	ctx = log.With(ctx, "part", "warm-pool")
	t := time.NewTicker(warmSyncEvery)
	defer t.Stop()
	for ctx.Err() == nil {
		if !p.a.lease.isFenced() && p.active() {
			if err := p.sync(ctx); err != nil && ctx.Err() == nil {
				log.G(ctx).Warn("warm pool: sync", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-p.kick:
		}
	}
}

// load reads the pool from the runtime until it can; the agent's workers
// start after it, so that a group on a sandbox it took finds it.
func (p *warmPool) load(ctx context.Context) {
	for wait := time.Second; ctx.Err() == nil; wait = min(2*wait, 30*time.Second) {
		err := p.refresh(ctx)
		if err == nil {
			return
		}
		log.G(ctx).Warn("warm pool: read the runtime's sandboxes; trying again", "in", wait, "err", err)
		sleep(ctx, wait)
	}
}

// refresh rebuilds the pool from the runtime's sandboxes: gone ones are
// dropped, stopped ones are not ready, and the takes come from the disk
// (warmclaim.go) and the groups' containers.
func (p *warmPool) refresh(ctx context.Context) error {
	rt := p.a.cfg.Runtime
	sbs, err := rt.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{LabelWarm: "true"}})
	if err != nil {
		return fmt.Errorf("list the warm pool's sandboxes: %w", err)
	}
	ctrs, err := rt.ListContainers(ctx, &runtimeapi.ContainerFilter{LabelSelector: map[string]string{LabelManaged: "true"}})
	if err != nil {
		return fmt.Errorf("list the containers: %w", err)
	}
	holder := map[string]string{} // sandbox id -> group, from containers
	for _, c := range ctrs {
		holder[c.PodSandboxId] = c.Labels[LabelGroup]
	}
	taken := p.a.readTakes() // sandbox id -> take, from the disk
	p.mu.Lock()
	next := make(map[string]*warmSandbox, len(sbs))
	for _, sb := range sbs {
		w := p.sandboxes[sb.Id]
		if w == nil {
			w = &warmSandbox{id: sb.Id, vsw: sb.Labels[LabelWarmVSwitch], ip: sb.Labels[LabelWarmIP], name: sb.GetMetadata().GetName(), created: sb.CreatedAt}
		}
		w.ready = sb.State == runtimeapi.PodSandboxState_SANDBOX_READY
		if t, ok := taken[sb.Id]; ok && w.group == "" && !w.removing {
			w.group, w.prepared = t.group, t.prepared
		} else if g := holder[sb.Id]; g != "" && w.group == "" && !w.removing {
			w.group, w.prepared = g, true // it ran a container of the group
		}
		next[sb.Id] = w
	}
	var vanished []warmSandbox
	for id, w := range p.sandboxes {
		switch {
		case next[id] != nil:
		case w.group != "":
			// Gone under its group (a fence, the runtime): kept, not
			// ready, until the group's reconcile forgets it (its cgroup
			// is the group's).
			w.ready = false
			next[id] = w
		default:
			vanished = append(vanished, *w)
		}
	}
	p.sandboxes, p.claims = next, map[string]string{}
	for id, w := range next {
		if w.group != "" && !w.removing {
			p.claims[w.group] = id
		}
	}
	p.mu.Unlock()
	for _, w := range vanished { // what an untaken sandbox the runtime lost left
		_ = removeCgroup(p.a.cgroupOf(w.name))
		p.a.dropTake(w.id)
	}
	return nil
}

// sync refreshes the pool, tells the server which sandboxes are ready,
// learns the reserved addresses, removes the sandboxes no address needs
// and makes the missing ones, one at a time, while no group waits for the
// agent's workers.
func (p *warmPool) sync(ctx context.Context) error {
	if err := p.refresh(ctx); err != nil {
		return err
	}
	res, err := p.a.cfg.Client.SyncWarmPool(ctx, p.a.name, apiv1.WarmPoolSync{Ready: p.readyAddresses()})
	if err != nil {
		return err
	}
	gone, missing, ended := p.plan(res, time.Now())
	for _, id := range ended {
		p.a.queue.add(id) // its reconcile removes its sandbox (windDown)
	}
	for _, w := range gone {
		p.remove(ctx, w, "its address is no longer reserved for the warm pool")
	}
	for i, addr := range missing {
		if ctx.Err() != nil || p.a.lease.isFenced() {
			return nil
		}
		p.a.queue.waitIdle(ctx, 3*time.Second) // groups first: the pool refills in the background
		if err := p.make(ctx, addr); err != nil {
			return fmt.Errorf("make a sandbox for %s on vSwitch %s: %w", addr.IP, addr.VSwitchID, err)
		}
		if i == len(missing)-1 || (i+1)%4 == 0 {
			// Ready ones are told as they come, so that a burst finds them.
			if _, err := p.a.cfg.Client.SyncWarmPool(ctx, p.a.name, apiv1.WarmPoolSync{Ready: p.readyAddresses()}); err != nil {
				return err
			}
		}
	}
	return nil
}

// readyAddresses are the addresses of the ready sandboxes no group took.
func (p *warmPool) readyAddresses() []apiv1.WarmAddress {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := []apiv1.WarmAddress{}
	for _, w := range p.sandboxes {
		if w.ready && w.group == "" && !w.removing {
			out = append(out, apiv1.WarmAddress{VSwitchID: w.vsw, IP: w.ip})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].VSwitchID+out[i].IP < out[j].VSwitchID+out[j].IP })
	return out
}

// plan records the server's answer and decides, under the lock: the
// sandboxes to remove (marked removing, so that no group takes them;
// copies returned), the reserved addresses without a sandbox, and the
// groups gone from a complete view that still hold one (their reconcile
// removes it).
func (p *warmPool) plan(res *apiv1.WarmPool, now time.Time) (gone []warmSandbox, missing []apiv1.WarmAddress, ended []string) {
	held := p.a.groupsByAddress()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.size, p.synced = res.Size, true
	p.reserved = map[string]apiv1.WarmAddress{}
	for _, r := range res.Reserved {
		p.reserved[r.VSwitchID+"_"+r.IP] = r
	}
	// A taken sandbox is its group's: only the group's reconcile removes
	// it. Among the others, each address keeps one, a ready one, else
	// the newest; any other for it goes, and so does one beside a taken
	// one (the address is a group's).
	better := func(w, k *warmSandbox) bool {
		if w.ready != k.ready {
			return w.ready
		}
		return w.created > k.created
	}
	taken := map[string]bool{}
	keeper := map[string]*warmSandbox{}
	for _, w := range p.sandboxes {
		switch k := keeper[w.key()]; {
		case w.group != "":
			taken[w.key()] = true
		case !w.removing && (k == nil || better(w, k)):
			keeper[w.key()] = w
		}
	}
	drop := func(w *warmSandbox) {
		w.removing = true
		gone = append(gone, *w)
	}
	for _, w := range p.sandboxes {
		if w.removing {
			continue
		}
		if w.group != "" {
			if g, complete := p.a.view.get(w.group); g == nil && complete {
				ended = append(ended, w.group)
			}
			continue
		}
		if taken[w.key()] || keeper[w.key()] != w {
			drop(w)
			continue
		}
		_, reserved := p.reserved[w.key()]
		switch {
		case !w.ready:
			drop(w)
		case reserved:
			w.unreservedSince = time.Time{}
		case held[w.key()]:
			// A group that can take it was placed on it: it will (claim).
		case w.unreservedSince.IsZero():
			w.unreservedSince = now
		case now.Sub(w.unreservedSince) > warmUnusedGrace:
			drop(w)
		}
	}
	for key, r := range p.reserved {
		if k := keeper[key]; !taken[key] && (k == nil || !k.ready || k.removing) {
			missing = append(missing, r)
		}
	}
	sort.Slice(missing, func(i, j int) bool { return missing[i].IP < missing[j].IP })
	return gone, missing, ended
}

// groupsByAddress are the addresses (vsw_ip) of the view's live groups
// that can take a sandbox of the pool.
func (a *Agent) groupsByAddress() map[string]bool {
	groups := a.view.all()
	out := make(map[string]bool, len(groups))
	for _, g := range groups {
		if g.Status.IP != "" && !g.Status.State.Terminal() && apiv1.Warmable(&g.Spec) {
			out[g.Status.VSwitchID+"_"+g.Status.IP] = true
		}
	}
	return out
}

// make runs a sandbox for addr.
func (p *warmPool) make(ctx context.Context, addr apiv1.WarmAddress) error {
	a := p.a
	name := "warm-" + strings.ReplaceAll(addr.IP, ".", "-") + "-" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	cg := a.cgroupOf(name)
	if err := limitCgroup(cg, warmIdleMilliCPU, warmIdleMemMiB, a.cfg.PidsLimit); err != nil {
		return fmt.Errorf("cgroup: %w", err)
	}
	cfg := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "eci-warm-pool", Uid: warmUIDPrefix + addr.VSwitchID + "_" + addr.IP},
		Hostname:     name,
		LogDirectory: filepath.Join(a.cfg.LogDir, "warm-pool"),
		Labels:       map[string]string{LabelWarm: "true", LabelWarmVSwitch: addr.VSwitchID, LabelWarmIP: addr.IP},
		// Never the machine's resolv.conf: a group that takes it has its own.
		DnsConfig: &runtimeapi.DNSConfig{Options: []string{"ndots:1"}},
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent: cg,
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{
				Network: runtimeapi.NamespaceMode_POD, Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: runtimeapi.NamespaceMode_POD}},
		},
	}
	id, err := a.cfg.Runtime.RunPodSandbox(ctx, cfg, a.cfg.DefaultRuntimeHandler)
	if err != nil {
		// One the runtime made all the same is found by the next refresh
		// (its label) and removed as a second one for the address.
		_ = removeCgroup(cg)
		return fmt.Errorf("run the sandbox: %w", err)
	}
	p.mu.Lock()
	p.sandboxes[id] = &warmSandbox{id: id, vsw: addr.VSwitchID, ip: addr.IP, name: name, ready: true, created: time.Now().UnixNano()}
	p.made++
	p.mu.Unlock()
	log.G(ctx).Debug("warm pool: sandbox ready", "sandbox", short(id), "ip", addr.IP)
	return nil
}

// remove stops and removes a sandbox of the pool (w is marked removing),
// its cgroup and its take.
func (p *warmPool) remove(ctx context.Context, w warmSandbox, why string) {
	sb := &runtimeapi.PodSandbox{Id: w.id, Labels: map[string]string{LabelGroup: w.group}}
	if err := p.a.removeSandboxes(ctx, nil, []*runtimeapi.PodSandbox{sb}, 0, why); err != nil && !errdefs.IsNotFound(err) {
		log.G(ctx).Warn("warm pool: remove a sandbox (tried again at the next sync)", "sandbox", short(w.id), "err", err)
		p.mu.Lock()
		if cur := p.sandboxes[w.id]; cur != nil {
			cur.removing = false
		}
		p.mu.Unlock()
		return
	}
	if err := removeCgroup(p.a.cgroupOf(w.name)); err != nil {
		log.G(ctx).Warn("warm pool: remove a sandbox's cgroup", "sandbox", short(w.id), "err", err)
	}
	p.a.dropTake(w.id)
	p.mu.Lock()
	delete(p.sandboxes, w.id)
	if w.group != "" && p.claims[w.group] == w.id {
		delete(p.claims, w.group)
	}
	p.mu.Unlock()
}

// reservedAddress tells whether the pool may attach addr (the CNI plugin's
// uid of one of its sandboxes).
func (p *warmPool) reservedAddress(uid string) (vsw, ip string, ok bool) {
	rest, found := strings.CutPrefix(uid, warmUIDPrefix)
	if p == nil || !found {
		return "", "", false
	}
	i := strings.LastIndex(rest, "_")
	if i < 0 {
		return "", "", false
	}
	vsw, ip = rest[:i], rest[i+1:]
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok = p.reserved[vsw+"_"+ip]
	return vsw, ip, ok
}
