package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/log"
)

// Agent runs the groups of one host.
type Agent struct {
	cfg  Config
	name string

	view   *groupView   // the server's groups on this host (view.go)
	states *groupStates // what the agent holds of each group (groupstate.go)
	queue  *workQueue   // the groups to reconcile (workqueue.go)
	events chan *apiv1.Event
	pulls  *pullGuard   // one pull at a time per registry, unverified images (pullguard.go)
	owners *imageOwners // the tenants that pulled each private image (imageowners.go)
	data   *dataCaches  // the host's data caches (datacache.go)
	lease  fence        // the host's lease and whether the agent fenced itself (fence.go)
	gpuMu  sync.Mutex   // one sandbox at a time takes GPUs (gpus.go)

	mu            sync.Mutex
	vswitches     map[string]*apiv1.VSwitch // copy (network.go: vswitchesTTL)
	vswitchesRead time.Time
	streamToken   string       // the secret the server presents to the stream server
	hostDNS       *hostResolv  // what --resolv-conf says (dns.go)
	svcs          *services    // the host's virtual services (services.go); nil: none
	tunnel        *overlay     // the tunnels to the other hosts (overlay.go); nil: none
	book          *addressBook // where every group's address is (addressbook.go); with a CNI config dir
	fw            *firewall    // the security groups (firewall.go); nil: none
	pool          *warmPool    // ready sandboxes (warmpool.go); with a CNI config dir
	nat           *natGateway  // the NAT gateway (nat.go); nil: none
	net           *hostNetwork // the VPCs' isolation (hostnet.go); with a CNI config dir
	mtu           int          // of the instances' links

	ready chan struct{}
	done  chan struct{}
	err   error
}

// New validates cfg.
func New(cfg Config) (*Agent, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	owners, err := newImageOwners(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	a := &Agent{
		cfg: cfg, name: cfg.Host.Metadata.Name,
		view: newGroupView(), states: newGroupStates(), queue: newWorkQueue(),
		events: make(chan *apiv1.Event, 1024), vswitches: map[string]*apiv1.VSwitch{},
		pulls: newPullGuard(cfg.StateDir), owners: owners, hostDNS: &hostResolv{path: cfg.ResolvConf},
		ready: make(chan struct{}), done: make(chan struct{}),
	}
	a.data, err = newDataCaches(&cfg, func(groups []string) {
		for _, id := range groups {
			a.queue.add(id)
		}
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// Ready is closed once the host is registered and the first watch answered.
func (a *Agent) Ready() <-chan struct{} { return a.ready }

// Done is closed when Run returns; Err is its error.
func (a *Agent) Done() <-chan struct{} { return a.done }

// Err is Run's error, once Done.
func (a *Agent) Err() error { return a.err }

// Run serves the host until ctx ends. Nothing it started is stopped when it
// returns: the groups keep running, and the next agent adopts them.
func (a *Agent) Run(ctx context.Context) (err error) {
	defer func() { a.err = err; close(a.done) }()
	ctx = log.With(ctx, "host", a.name)
	if len(a.cfg.RegistryMirrors) > 0 {
		if a.cfg.RegistryConfigDir == "" {
			return errors.New("registry mirrors need --registry-config-dir, the runtime's registry hosts directory")
		}
		if err := a.writeMirrors(); err != nil {
			return fmt.Errorf("registry mirrors: %w", err)
		}
	}
	if err := a.hostDNS.load(); err != nil {
		return err
	}
	if a.cfg.GroupsCPUWeight > 0 && !a.cfg.NoCgroups {
		if err := setCPUWeight(a.cfg.CgroupParent, a.cfg.GroupsCPUWeight); err != nil {
			return fmt.Errorf("--groups-cpu-weight: %w", err)
		}
	}
	a.startServices(ctx)
	if err := a.startOverlay(ctx); err != nil {
		return err
	}
	// The groups' volumes hold their secrets and tokens: only the agent (and
	// the containers, through their bind mounts) may enter.
	if err := os.MkdirAll(a.cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	if err := os.Chmod(a.cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	var streamLn net.Listener
	var streamTLS *tls.Config
	if a.cfg.StreamAddress != "" {
		if streamLn, streamTLS, err = a.streamListener(); err != nil {
			return err
		}
	}
	// The fence watches the lease from the start: an agent that can't
	// register either stops its groups once most of a lease has passed.
	a.lease.load(a.cfg.StateDir, time.Now())
	var wg sync.WaitGroup
	run := func(f func(context.Context)) {
		wg.Add(1)
		go func() { defer wg.Done(); f(ctx) }()
	}
	fenceCtx, stopFence := context.WithCancel(ctx)
	defer stopFence()
	go a.watchFence(fenceCtx)
	if err := a.register(ctx); err != nil {
		if streamLn != nil {
			_ = streamLn.Close()
		}
		return err
	}
	// The vSwitches (their VPCs) of the groups it adopts, for their
	// Services' rules before any attach reads them.
	if err := a.readVSwitches(ctx); err != nil {
		log.G(ctx).Warn("read the vSwitches; they are read again when needed", "err", err)
	}
	run(a.heartbeat)
	run(a.watchGroups)
	run(a.runtimeEvents)
	run(a.resync)
	run(a.sendEvents)
	run(a.housekeeping)
	run(a.keepImageCaches)
	run(a.keepDataCaches)
	if streamLn != nil {
		run(func(ctx context.Context) { a.serveStream(ctx, streamLn, streamTLS) })
	}
	a.runNetwork(run)
	if a.pool != nil {
		// Before the workers (the lease is renewed meanwhile): a group
		// that took a sandbox of the pool finds it.
		a.pool.load(ctx)
		run(a.pool.run)
	}
	for i := 0; i < 4; i++ {
		run(a.worker)
	}
	wg.Wait()
	return nil
}

// watchGroups keeps the view equal to the server's groups on this host, and
// reconciles every group that changed.
func (a *Agent) watchGroups(ctx context.Context) {
	a.cfg.Client.InformGroups(ctx, client.ListOptions{Host: a.name}, client.GroupHandler{
		// A fresh list replays every group: until it is done, a group not seen
		// yet is not gone (reconcile leaves its sandbox alone); once it is, the
		// groups not replayed are gone and get reconciled (removed).
		Relist: a.view.relist,
		Relisted: func() {
			for _, id := range a.view.relisted() {
				a.queue.add(id)
			}
			a.groupsChanged()
		},
		Synced: func() { a.view.markSynced(); close(a.ready); a.groupsChanged() },
		Event: func(ev client.GroupEvent) {
			a.view.apply(ev)
			a.queue.add(ev.Object.Metadata.ID)
			a.groupsChanged()
		},
		Error: func(err error) { log.G(ctx).Warn("watch groups", "err", err) },
	})
}

// startServices serves the groups' virtual services when asked to and able
// (nft); without it the agent runs on, its groups
// reaching no virtual IP, and says so. With them off, a table an earlier
// run left is removed: its stale addresses would still translate.
func (a *Agent) startServices(ctx context.Context) {
	if a.cfg.CNIConfDir == "" {
		return
	}
	if !a.cfg.VirtualServices {
		removeServicesTable(ctx, a.cfg.NetworkName)
		return
	}
	svcs, err := newServices(ctx, a.cfg.NetworkName, a.cachedVNI)
	if err != nil {
		log.G(ctx).Error("virtual services are off: the groups of this host reach no Service", "err", err)
		removeServicesTable(ctx, a.cfg.NetworkName)
		return
	}
	a.svcs = svcs
}

// runNetwork starts the network's loops: the CNI plugin's service, the
// pool's addresses, the tunnels, the security groups, the virtual services.
func (a *Agent) runNetwork(run func(func(context.Context))) {
	if a.cfg.CNIConfDir != "" {
		run(func(ctx context.Context) {
			if err := a.serveNetwork(ctx); err != nil {
				log.G(ctx).Error("network service for the eci-cni CNI plugin", "err", err)
			}
		})
	}
	if a.book != nil {
		run(func(ctx context.Context) { a.book.watch(ctx, a.cfg.Client) })
	}
	if a.tunnel != nil {
		run(a.tunnel.run)
	}
	if a.fw != nil {
		run(func(ctx context.Context) { a.fw.watch(ctx, a.cfg.Client) })
		run(a.fw.run)
	}
	if a.nat != nil {
		run(a.nat.run)
	}
	if a.svcs != nil {
		run(func(ctx context.Context) { a.svcs.watch(ctx, a.cfg.Client) })
		run(func(ctx context.Context) { a.svcs.run(ctx, a.view.complete) })
	}
}

// startOverlay sets the instances' MTU and, with a tunnel IP, the tunnel
// to the other hosts, whose tunnel IP the host registers.
func (a *Agent) startOverlay(ctx context.Context) error {
	a.mtu = a.cfg.MTU
	if a.cfg.CNIConfDir != "" {
		a.net = newHostNetwork(ctx, a.cfg.NetworkName, a.cfg.TunnelIP)
		a.book = newAddressBook()
		if !a.cfg.NoCgroups { // a taken sandbox's process is found by its cgroup (warmclaim.go)
			a.pool = newWarmPool(a)
		}
		fw, err := newFirewall(a.cfg.NetworkName, a.name, a.book, a.vniOfVSwitch)
		if err != nil {
			// A group that names security groups then never starts here.
			log.G(ctx).Error("security groups are off: groups that name them can't start on this host", "err", err)
		}
		a.fw = fw
		if nat, err := newNATGateway(ctx, a.cfg.NetworkName, a.natPool, a.localEIPs); err != nil {
			log.G(ctx).Error("NAT gateways are off: no instance of this host reaches the outside through one", "err", err)
		} else {
			a.nat = nat
		}
	}
	if !a.cfg.TunnelIP.IsValid() || a.cfg.CNIConfDir == "" {
		if a.mtu == 0 {
			a.mtu = 1500
		}
		return nil
	}
	if a.mtu == 0 {
		mtu, err := linkMTU(a.cfg.TunnelIP)
		if err != nil {
			return fmt.Errorf("--tunnel-ip: %w", err)
		}
		a.mtu = mtu
	}
	a.cfg.Host.Spec.TunnelIP = a.cfg.TunnelIP.String()
	a.tunnel = newOverlay(a.cfg.Client, a.name, a.cfg.NetworkName, a.cfg.TunnelIP, a.mtu, a.net, a.book, a.vniOfVSwitch)
	return nil
}

// groupsChanged asks for a sync of the virtual services and the NAT
// gateway (a group's address, table or EIP may have changed).
func (a *Agent) groupsChanged() {
	if a.svcs != nil {
		a.svcs.kick()
	}
	if a.nat != nil {
		a.nat.kick()
	}
}

// runtimeEvents turns container events into reconciles of their group.
func (a *Agent) runtimeEvents(ctx context.Context) {
	for ctx.Err() == nil {
		ch := make(chan *runtimeapi.ContainerEventResponse, 256)
		errc := make(chan error, 1)
		sub, cancel := context.WithCancel(ctx)
		go func() { errc <- a.cfg.Runtime.Events(sub, ch) }()
	loop:
		for {
			select {
			case <-ctx.Done():
				break loop
			case err := <-errc:
				if err != nil && ctx.Err() == nil {
					log.G(ctx).Warn("runtime events ended; relying on resync until they resume", "err", err)
				}
				break loop
			case ev := <-ch:
				id := ev.GetPodSandboxStatus().GetLabels()[LabelGroup]
				if id == "" { // a sandbox of the warm pool a group took
					id = a.pool.groupOf(ev.GetPodSandboxStatus().GetId())
				}
				a.queue.add(id)
			}
		}
		cancel()
		sleep(ctx, time.Second)
	}
}

// resync reconciles every group of the view and every sandbox of the
// runtime, the safety net under events.
func (a *Agent) resync(ctx context.Context) {
	t := time.NewTicker(a.cfg.ResyncInterval)
	defer t.Stop()
	for {
		ids := a.view.ids()
		sbs, err := a.cfg.Runtime.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{LabelManaged: "true"}})
		if err == nil {
			for _, sb := range sbs {
				ids = append(ids, sb.Labels[LabelGroup])
			}
		}
		for _, id := range ids {
			a.queue.add(id)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// worker reconciles the groups the queue hands it, one at a time; a failed
// reconcile is tried again in a second.
func (a *Agent) worker(ctx context.Context) {
	for {
		id, ok := a.queue.get(ctx)
		if !ok {
			return
		}
		err := a.reconcile(ctx, id)
		if err != nil && ctx.Err() == nil {
			log.G(ctx).Warn("reconcile", "group", id, "err", err)
			a.queue.retry(ctx, id, time.Second)
			continue
		}
		a.queue.done(id)
	}
}

// desired is the server's group id, nil when the view has none.
func (a *Agent) desired(id string) *apiv1.ContainerGroup {
	g, _ := a.view.get(id)
	return g
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
