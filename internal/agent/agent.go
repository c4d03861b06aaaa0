package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/log"
	"github.com/eci-dev/eci/internal/runtime"
)

// Config of an agent.
type Config struct {
	// Client talks to the server with this host's token.
	Client *client.Client
	// Runtime runs the groups (runtime.NewCRI for containerd).
	Runtime runtime.Runtime
	// Host is what the agent registers: name, zone, capacity, allocatable,
	// runtime handlers.
	Host apiv1.Host
	// CgroupParent is the cgroup under which every group gets its own, which
	// the agent creates with the group's size as limits and removes with it.
	CgroupParent string
	// NoCgroups leaves cgroups to the runtime alone (for runtimes without
	// real cgroups: the fake).
	NoCgroups bool
	// PidsLimit bounds the processes and threads of one group together (its
	// cgroup's pids.max), so that a fork bomb stays inside its instance
	// (2048; the kubelet's --pod-max-pids). Negative: no limit.
	PidsLimit int64
	// LogDir holds the CRI log files, one directory per group.
	LogDir string
	// StateDir holds the groups' volumes (emptyDir, files payloads).
	StateDir string
	// HeartbeatInterval renews the lease (10 s). FenceAfter: with no renewal
	// for that long the agent stops every group (fence.go; default three
	// quarters of the server's lease).
	HeartbeatInterval time.Duration
	FenceAfter        time.Duration
	// ResyncInterval reconciles everything, the safety net under events (10 s).
	ResyncInterval time.Duration
	// CNIConfDir, when set, receives the network config whose IPAM is the eci
	// plugin, so that sandboxes get exactly the server's address; CNIBridge is
	// its bridge and IPAMSocket where the agent answers the plugin.
	CNIConfDir string
	CNIBridge  string
	IPAMSocket string
	// StreamAddress (ip:port; port 0 picks one) is where the agent serves
	// logs, exec, attach, port-forward and stats to the control plane;
	// AdvertiseIP is the IP registered for it when it listens on all
	// addresses. Empty: no stream server.
	StreamAddress string
	AdvertiseIP   string
	// EphemeralStorageBase is what every group may write on the host before
	// its extraEphemeralStorage (30 GiB); over it, the group is evicted.
	// EvictionInterval is how often usage is measured (10 s).
	EphemeralStorageBase uint64
	EvictionInterval     time.Duration
	// LogMaxSize rotates a container's log file when it grows past it
	// (10 MiB); LogMaxFiles files are kept per container, the live one
	// included (5).
	LogMaxSize  int64
	LogMaxFiles int
	// RegistryConfigDir is the runtime's registry hosts directory
	// (containerd's config_path), where the agent writes RegistryMirrors
	// (registry -> mirror URLs) and, for the length of a group's own pull,
	// the plain-http or insecure transport it asks for when
	// AllowInsecureRegistries. AllowedLocalRegistries (host or host:port)
	// may be on the host's own addresses (loopback, link-local, its
	// interfaces'); other such registries are refused (pullguard.go).
	RegistryConfigDir       string
	RegistryMirrors         map[string][]string
	AllowInsecureRegistries bool
	AllowedLocalRegistries  []string
	Logger                  *slog.Logger
}

func (c *Config) validate() error {
	switch {
	case c.Client == nil:
		return errors.New("agent: a client of the server is required")
	case c.Runtime == nil:
		return errors.New("agent: a runtime is required")
	case c.Host.Metadata.Name == "":
		return errors.New("agent: --host-name is required")
	case c.LogDir == "":
		return errors.New("agent: --log-dir is required")
	case c.StateDir == "":
		return errors.New("agent: --state-dir is required")
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = 10 * time.Second
	}
	if c.ResyncInterval == 0 {
		c.ResyncInterval = 10 * time.Second
	}
	if c.EphemeralStorageBase == 0 {
		c.EphemeralStorageBase = 30 << 30
	}
	if c.PidsLimit == 0 {
		c.PidsLimit = DefaultPidsLimit
	}
	if c.EvictionInterval == 0 {
		c.EvictionInterval = 10 * time.Second
	}
	if c.LogMaxSize == 0 {
		c.LogMaxSize = 10 << 20
	}
	if c.LogMaxFiles == 0 {
		c.LogMaxFiles = 5
	}
	if c.LogMaxFiles < 2 {
		return errors.New("agent: --log-max-files must be at least 2 (the live file and one rotated)")
	}
	if c.CNIConfDir != "" && (c.CNIBridge == "" || c.IPAMSocket == "") {
		return errors.New("agent: a CNI config dir needs a bridge name and an IPAM socket")
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Agent runs the groups of one host.
type Agent struct {
	cfg  Config
	name string

	mu        sync.Mutex
	groups    map[string]*apiv1.ContainerGroup // the server's view, from the watch
	reported  map[string]string                // last status sent, by group
	backoff   map[string]*backoffEntry         // by group/container
	queue     chan string
	pending   map[string]bool // queued
	active    map[string]bool // being reconciled
	dirty     map[string]bool // changed while being reconciled
	events    chan *apiv1.Event
	probes    probeState
	vswitches map[string]*apiv1.VSwitch
	relisting bool                                   // a fresh list is being replayed
	seen      map[string]bool                        // groups replayed so far
	waits     map[string]apiv1.ContainerStateWaiting // group/container that can't start, and why
	missing   map[string]time.Time                   // started groups whose sandbox is not listed, since

	pulls       *pullGuard           // one pull at a time per registry, unverified images (pullguard.go)
	lease       fence                // the host's lease and whether the agent fenced itself (fence.go)
	viewFloor   string               // the version of refreshView's list: older events add no group
	streamToken string               // the secret the server presents to the stream server
	cpuSamples  map[string]cpuSample // last CPU sample by group, for rates

	ready chan struct{}
	done  chan struct{}
	err   error
}

// New validates cfg.
func New(cfg Config) (*Agent, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Agent{
		cfg: cfg, name: cfg.Host.Metadata.Name,
		groups: map[string]*apiv1.ContainerGroup{}, reported: map[string]string{}, backoff: map[string]*backoffEntry{},
		queue: make(chan string, 4096), pending: map[string]bool{}, active: map[string]bool{}, dirty: map[string]bool{},
		events: make(chan *apiv1.Event, 1024), vswitches: map[string]*apiv1.VSwitch{}, waits: map[string]apiv1.ContainerStateWaiting{},
		missing: map[string]time.Time{}, cpuSamples: map[string]cpuSample{},
		probes: probeState{probers: map[string]*prober{}, ready: map[string]bool{}, started: map[string]bool{}},
		pulls:  newPullGuard(cfg.StateDir),
		ready:  make(chan struct{}), done: make(chan struct{}),
	}, nil
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
	ctx = log.With(log.WithLogger(ctx, a.cfg.Logger), "host", a.name)
	if len(a.cfg.RegistryMirrors) > 0 {
		if a.cfg.RegistryConfigDir == "" {
			return errors.New("registry mirrors need --registry-config-dir, the runtime's registry hosts directory")
		}
		if err := a.writeMirrors(); err != nil {
			return fmt.Errorf("registry mirrors: %w", err)
		}
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
	run(a.heartbeat)
	run(a.watchGroups)
	run(a.runtimeEvents)
	run(a.resync)
	run(a.sendEvents)
	run(a.housekeeping)
	if streamLn != nil {
		run(func(ctx context.Context) { a.serveStream(ctx, streamLn, streamTLS) })
	}
	if a.cfg.CNIConfDir != "" {
		run(func(ctx context.Context) {
			if err := a.serveIPAM(ctx); err != nil {
				log.G(ctx).Error("IPAM service for the CNI plugin", "err", err)
			}
		})
	}
	for i := 0; i < 4; i++ {
		run(a.worker)
	}
	wg.Wait()
	return nil
}

// watchGroups keeps a.groups equal to the server's groups on this host.
func (a *Agent) watchGroups(ctx context.Context) {
	a.cfg.Client.InformGroups(ctx, client.ListOptions{Host: a.name}, client.GroupHandler{
		// A fresh list replays every group: until it is done, a group not seen
		// yet is not gone (reconcile leaves its sandbox alone); once it is, the
		// groups not replayed are gone and get reconciled (removed).
		Relist: func() {
			a.mu.Lock()
			a.relisting, a.seen = true, map[string]bool{}
			a.mu.Unlock()
		},
		Relisted: func() {
			a.mu.Lock()
			var gone []string
			for id := range a.groups {
				if !a.seen[id] {
					delete(a.groups, id)
					gone = append(gone, id)
				}
			}
			a.relisting, a.seen = false, nil
			a.mu.Unlock()
			for _, id := range gone {
				a.enqueue(id)
			}
		},
		Synced: func() { close(a.ready) },
		Event: func(ev client.GroupEvent) {
			a.mu.Lock()
			cur := a.groups[ev.Object.Metadata.ID]
			switch {
			case ev.Type == apiv1.Deleted:
				delete(a.groups, ev.Object.Metadata.ID)
			case ev.Type != apiv1.Deleted && cur == nil && a.viewFloor != "" && !olderVersion(a.viewFloor, ev.Object.Metadata.ResourceVersion):
				// Not newer than the list refreshView read, which did not
				// have it: a group gone since.
			case cur != nil && olderVersion(ev.Object.Metadata.ResourceVersion, cur.Metadata.ResourceVersion):
				// An event older than the view (refreshView read ahead): the
				// group is there all the same.
				if a.relisting {
					a.seen[ev.Object.Metadata.ID] = true
				}
			default:
				a.groups[ev.Object.Metadata.ID] = ev.Object
				if a.relisting {
					a.seen[ev.Object.Metadata.ID] = true
				}
			}
			a.mu.Unlock()
			a.enqueue(ev.Object.Metadata.ID)
		},
		Error: func(err error) { log.G(ctx).Warn("watch groups", "err", err) },
	})
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
				if id := ev.GetPodSandboxStatus().GetLabels()[LabelGroup]; id != "" {
					a.enqueue(id)
				}
			}
		}
		cancel()
		sleep(ctx, time.Second)
	}
}

// resync reconciles every known group and every sandbox of the runtime.
// groupIDs are the groups of the agent's view.
func (a *Agent) groupIDs() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	ids := make([]string, 0, len(a.groups))
	for id := range a.groups {
		ids = append(ids, id)
	}
	return ids
}

func (a *Agent) resync(ctx context.Context) {
	t := time.NewTicker(a.cfg.ResyncInterval)
	defer t.Stop()
	for {
		ids := a.groupIDs()
		sbs, err := a.cfg.Runtime.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{LabelManaged: "true"}})
		if err == nil {
			for _, sb := range sbs {
				ids = append(ids, sb.Labels[LabelGroup])
			}
		}
		for _, id := range ids {
			a.enqueue(id)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// enqueue asks for a reconcile of group id. A group is reconciled by one
// worker at a time; a request during a reconcile runs it again afterwards.
func (a *Agent) enqueue(id string) {
	if id == "" {
		return
	}
	a.mu.Lock()
	if a.active[id] {
		a.dirty[id] = true
		a.mu.Unlock()
		return
	}
	if a.pending[id] {
		a.mu.Unlock()
		return
	}
	a.pending[id] = true
	a.mu.Unlock()
	a.queue <- id
}

func (a *Agent) enqueueAfter(ctx context.Context, id string, d time.Duration) {
	time.AfterFunc(d, func() {
		if ctx.Err() == nil {
			a.enqueue(id)
		}
	})
}

func (a *Agent) worker(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case id := <-a.queue:
			a.mu.Lock()
			delete(a.pending, id)
			a.active[id] = true
			a.mu.Unlock()
			err := a.reconcile(ctx, id)
			a.mu.Lock()
			delete(a.active, id)
			again := a.dirty[id]
			delete(a.dirty, id)
			a.mu.Unlock()
			if err != nil && ctx.Err() == nil {
				log.G(ctx).Warn("reconcile", "group", id, "err", err)
				a.enqueueAfter(ctx, id, time.Second)
			} else if again {
				a.enqueue(id)
			}
		}
	}
}

func (a *Agent) desired(id string) *apiv1.ContainerGroup {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.groups[id]
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
