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
// What the pool holds is read again from the truth: the runtime's
// sandboxes labelled LabelWarm, their containers (a sandbox with a
// group's container is that group's) and the server's reserved addresses.

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
// it may not have reached the agent's view yet), and the limits of an
// untaken sandbox's cgroup (its pause alone).
const (
	warmSyncEvery    = 5 * time.Second
	warmUnusedGrace  = 15 * time.Second
	warmIdleMilliCPU = 100
	warmIdleMemMiB   = 32
)

// warmSandbox is one sandbox of the pool.
type warmSandbox struct {
	id, vsw, ip, name string
	ready             bool
	group             string    // the group that took it ("": none)
	unreservedSince   time.Time // its address left the reserved ones
}

// key is the sandbox's address as the server's records name it.
func (w *warmSandbox) key() string { return w.vsw + "_" + w.ip }

// warmPool is the agent's pool.
type warmPool struct {
	a    *Agent
	kick chan struct{}

	mu        sync.Mutex
	size      int
	reserved  map[string]apiv1.WarmAddress // by vsw_ip
	sandboxes map[string]*warmSandbox      // by sandbox id
	claims    map[string]string            // group id -> sandbox id
	loaded    bool
	made      int // sandboxes made (a metric)
}

func newWarmPool(a *Agent) *warmPool {
	return &warmPool{a: a, kick: make(chan struct{}, 1), reserved: map[string]apiv1.WarmAddress{},
		sandboxes: map[string]*warmSandbox{}, claims: map[string]string{}}
}

// poke asks for a sync soon.
func (p *warmPool) poke() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// run keeps the pool until ctx ends.
func (p *warmPool) run(ctx context.Context) {
	ctx = log.With(ctx, "part", "warm-pool")
	t := time.NewTicker(warmSyncEvery)
	defer t.Stop()
	for ctx.Err() == nil {
		if err := p.sync(ctx); err != nil && ctx.Err() == nil {
			log.G(ctx).Warn("warm pool: sync", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-p.kick:
		}
	}
}

// load reads the pool's sandboxes from the runtime: those with a group's
// container are that group's. It runs before the agent's workers.
func (p *warmPool) load(ctx context.Context) error {
	rt := p.a.cfg.Runtime
	sbs, err := rt.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{LabelWarm: "true"}})
	if err != nil {
		return fmt.Errorf("list the warm pool's sandboxes: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, sb := range sbs {
		w := &warmSandbox{id: sb.Id, vsw: sb.Labels[LabelWarmVSwitch], ip: sb.Labels[LabelWarmIP], name: sb.GetMetadata().GetName(),
			ready: sb.State == runtimeapi.PodSandboxState_SANDBOX_READY}
		ctrs, err := rt.ListContainers(ctx, &runtimeapi.ContainerFilter{PodSandboxId: sb.Id})
		if err != nil {
			return fmt.Errorf("list the containers of warm sandbox %s: %w", short(sb.Id), err)
		}
		for _, c := range ctrs {
			if id := c.Labels[LabelGroup]; id != "" {
				w.group = id
				p.claims[id] = sb.Id
			}
		}
		p.sandboxes[sb.Id] = w
	}
	p.loaded = true
	return nil
}

// sync tells the server which sandboxes are ready, learns the reserved
// addresses, removes the sandboxes no address needs and makes the
// missing ones, one at a time, while no group waits for the runtime.
func (p *warmPool) sync(ctx context.Context) error {
	p.mu.Lock()
	loaded := p.loaded
	p.mu.Unlock()
	if !loaded {
		if err := p.load(ctx); err != nil {
			return err
		}
	}
	res, err := p.a.cfg.Client.SyncWarmPool(ctx, p.a.name, apiv1.WarmPoolSync{Ready: p.readyAddresses()})
	if err != nil {
		return err
	}
	gone, missing := p.plan(res, time.Now())
	for _, w := range gone {
		p.remove(ctx, w, "its address is no longer reserved for the warm pool")
	}
	for i, addr := range missing {
		if ctx.Err() != nil {
			return nil
		}
		p.a.queue.waitIdle(ctx, 3*time.Second) // groups first: the pool refills in the background
		if err := p.make(ctx, addr); err != nil {
			log.G(ctx).Warn("warm pool: make a sandbox", "vswitch", addr.VSwitchID, "ip", addr.IP, "err", err)
			break
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
		if w.ready && w.group == "" {
			out = append(out, apiv1.WarmAddress{VSwitchID: w.vsw, IP: w.ip})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].VSwitchID+out[i].IP < out[j].VSwitchID+out[j].IP })
	return out
}

// plan records the server's answer and returns the sandboxes to remove
// (not ready, or their address unreserved for warmUnusedGrace and no group
// of the view holds it) and the reserved addresses without a sandbox.
func (p *warmPool) plan(res *apiv1.WarmPool, now time.Time) (gone []*warmSandbox, missing []apiv1.WarmAddress) {
	held, complete := p.a.groupsByAddress()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.size = res.Size
	p.reserved = map[string]apiv1.WarmAddress{}
	for _, r := range res.Reserved {
		p.reserved[r.VSwitchID+"_"+r.IP] = r
	}
	have := map[string]bool{}
	for _, w := range p.sandboxes {
		if w.group != "" {
			if held[w.key()] != w.group && complete {
				gone = append(gone, w) // its group is gone: the group's reconcile may never come
			}
			continue
		}
		_, reserved := p.reserved[w.key()]
		switch {
		case !w.ready:
			gone = append(gone, w)
		case reserved:
			w.unreservedSince = time.Time{}
			have[w.key()] = true
		case held[w.key()] != "":
			// A group was placed on it: it takes it (claim).
		case w.unreservedSince.IsZero():
			w.unreservedSince = now
		case now.Sub(w.unreservedSince) > warmUnusedGrace:
			gone = append(gone, w)
		}
	}
	for key, r := range p.reserved {
		if !have[key] {
			missing = append(missing, r)
		}
	}
	sort.Slice(missing, func(i, j int) bool { return missing[i].IP < missing[j].IP })
	return gone, missing
}

// groupsByAddress are the view's groups that hold an address, by
// vsw_ip, and whether the view is complete.
func (a *Agent) groupsByAddress() (map[string]string, bool) {
	groups, complete := a.view.complete()
	out := make(map[string]string, len(groups))
	for _, g := range groups {
		if g.Status.IP != "" && !g.Status.State.Terminal() {
			out[g.Status.VSwitchID+"_"+g.Status.IP] = g.Metadata.ID
		}
	}
	return out, complete
}

// make runs a sandbox for addr.
func (p *warmPool) make(ctx context.Context, addr apiv1.WarmAddress) error {
	a := p.a
	name := "warm-" + strings.ReplaceAll(addr.IP, ".", "-") + "-" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	cg := a.cgroupOf(name)
	if !a.cfg.NoCgroups {
		if err := limitCgroup(cg, warmIdleMilliCPU, warmIdleMemMiB, a.cfg.PidsLimit); err != nil {
			return err
		}
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
		_ = removeCgroup(cg)
		return err
	}
	p.mu.Lock()
	p.sandboxes[id] = &warmSandbox{id: id, vsw: addr.VSwitchID, ip: addr.IP, name: name, ready: true}
	p.made++
	p.mu.Unlock()
	log.G(ctx).Debug("warm pool: sandbox ready", "sandbox", short(id), "ip", addr.IP)
	return nil
}

// remove stops and removes a sandbox of the pool, and its cgroup.
func (p *warmPool) remove(ctx context.Context, w *warmSandbox, why string) {
	sb := &runtimeapi.PodSandbox{Id: w.id, Labels: map[string]string{LabelGroup: w.group}}
	if err := p.a.removeSandboxes(ctx, nil, []*runtimeapi.PodSandbox{sb}, 0, why); err != nil {
		log.G(ctx).Warn("warm pool: remove a sandbox (tried again)", "sandbox", short(w.id), "err", err)
		return
	}
	if !p.a.cfg.NoCgroups {
		if err := removeCgroup(p.a.cgroupOf(w.name)); err != nil {
			log.G(ctx).Warn("warm pool: remove a sandbox's cgroup", "sandbox", short(w.id), "err", err)
		}
	}
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

// stats are the pool's figures: its size, ready sandboxes no group took,
// and how many it made.
func (p *warmPool) stats() (size, ready, made int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, w := range p.sandboxes {
		if w.ready && w.group == "" {
			ready++
		}
	}
	return p.size, ready, p.made
}
