package agent

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/datapath"
)

// The agent logs to the logger of Run's context (internal/log), as every
// daemon of eci does.

// Config of an agent.
type Config struct {
	// Client talks to the server with this host's token.
	Client *client.Client
	// Runtime runs the groups (runtime.NewCRI for containerd).
	Runtime Runtime
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
	// GroupsCPUWeight, when set, is the CPU weight of CgroupParent (1 to
	// 10000, cgroup v2's units; 100 is the default), so that the groups
	// together yield to the control path on a shared host (cpuweight.go).
	GroupsCPUWeight int
	// DefaultRuntimeHandler runs the groups that name no runtime handler
	// (--runtime-handler, when given); empty: the runtime's default.
	DefaultRuntimeHandler string
	// GPUDevices are the host's GPUs, as CDI device names the runtime
	// knows (nvidia.com/gpu=0: DiscoverGPUs); Host's capacity counts them.
	GPUDevices []string
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
	// CNIConfDir, when set, receives the network config whose plugin is
	// eci-cni, which asks the agent to attach each sandbox (with exactly the
	// server's address); NetworkName names that network and the agent's
	// nftables tables, CNISocket is where the agent answers the plugin.
	CNIConfDir  string
	NetworkName string
	CNISocket   string
	// TunnelIP is this host's address on the network between the pool's
	// hosts (the underlay): the host registers it and routes the other
	// hosts' instances through a VXLAN tunnel from it (overlay.go). Invalid
	// (unset): the host routes only its own instances.
	TunnelIP netip.Addr
	// ProtectedNetworks are what no packet through a NAT gateway or from an
	// EIP reaches, beside the pool's hosts and the server (the storage the
	// hosts mount volumes from, a management network): packets from there
	// carry the host's address.
	ProtectedNetworks []netip.Prefix
	// MTU of the instances' links; 0: the tunnel IP's interface's, less the
	// tunnel's 50 bytes (1500 without a tunnel).
	MTU int
	// VirtualServices programs the virtual IPs of the tables the groups
	// name (nftables, services.go); only with a CNI config dir.
	VirtualServices bool
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
	// ImageCacheInterval is how often the host's image caches are pulled,
	// pruned and reported (15 s); ImageCacheMinFreePercent the share of
	// the image filesystem a cache's pull leaves free (15).
	ImageCacheInterval       time.Duration
	ImageCacheMinFreePercent int
	// ImageCacheBytes bounds what the caches' images take on the host
	// together (0: only each cache's own imageCacheSize): past it, the
	// least recently matched caches are dropped from the host.
	// ImageCachePruneGrace is how long an image no cache of the host keeps
	// any more stays (a cache moved to another host, a host cordoned for a
	// while) before the agent removes it.
	ImageCacheBytes      uint64
	ImageCachePruneGrace time.Duration
	// DataCacheBytes bounds what the data caches fetched ahead take on the
	// host together (100 GiB); a cache a group mounts is fetched past it.
	// AllowedLocalDataHosts (host or host:port) and AllowedDataNetworks may
	// be on the host's own, private or local addresses (others are
	// refused: datafetch.go).
	DataCacheBytes        uint64
	AllowedLocalDataHosts []string
	AllowedDataNetworks   []netip.Prefix
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
	RegistryConfigDir string
	RegistryMirrors   map[string][]string
	// ResolvConf is the resolv.conf whose nameservers, search path and
	// options groups that bring no DNS settings get (dnsPolicy Default), as
	// the kubelet's --resolv-conf; empty: none, such groups resolve nothing
	// (dns.go). A test bed gives its own or none: never the machine's.
	ResolvConf              string
	AllowInsecureRegistries bool
	AllowedLocalRegistries  []string
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
	case c.Host.Spec.Allocatable.GPU > len(c.GPUDevices):
		return fmt.Errorf("agent: the host offers %d GPUs, but knows %d GPU devices", c.Host.Spec.Allocatable.GPU, len(c.GPUDevices))
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
	if c.ImageCacheInterval == 0 {
		c.ImageCacheInterval = 15 * time.Second
	}
	if c.DataCacheBytes == 0 {
		c.DataCacheBytes = 100 << 30
	}
	if c.GroupsCPUWeight < 0 || c.GroupsCPUWeight > MaxCPUWeight {
		return fmt.Errorf("agent: --groups-cpu-weight %d: allowed: 1 to %d (0: leave the cgroup's weight as it is)", c.GroupsCPUWeight, MaxCPUWeight)
	}
	if c.ImageCacheMinFreePercent < 0 || c.ImageCacheMinFreePercent > 99 {
		return fmt.Errorf("image cache minimum free share %d%%: allowed: 0 to 99", c.ImageCacheMinFreePercent)
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
	if c.TunnelIP.IsValid() && c.CNIConfDir == "" {
		return errors.New("agent: --tunnel-ip needs --cni-conf-dir: the tunnels route the instances the agent attaches")
	}
	if c.TunnelIP.IsValid() && (!c.TunnelIP.Is4() || !c.TunnelIP.IsGlobalUnicast()) {
		return fmt.Errorf("agent: --tunnel-ip %s: allowed: a unicast IPv4 address of this host", c.TunnelIP)
	}
	if dev := datapath.TunnelDevice(c.NetworkName, apiv1.MaxVNI); c.TunnelIP.IsValid() && len(dev) > 15 {
		return fmt.Errorf("agent: --network-name %q: allowed with a tunnel: at most 7 characters (the tunnels are named like %s, 15 at most)", c.NetworkName, dev)
	}
	if c.MTU != 0 && (c.MTU < 1280 || c.MTU > 9000) {
		return fmt.Errorf("agent: --mtu %d: allowed: 0 (derived) or 1280 to 9000", c.MTU)
	}
	if c.CNIConfDir != "" && (c.NetworkName == "" || c.CNISocket == "") {
		return errors.New("agent: a CNI config dir needs a network name and a CNI socket")
	}
	return nil
}

// DefaultConfig is an agent's configuration before the operator's flags:
// the one place its defaults are written (eci agent's flags start from it,
// eci up and the tests' agents too). Client, Runtime and Host are left to
// the caller (Machine.Host builds the last).
func DefaultConfig() Config {
	return Config{
		CgroupParent:         "eci",
		PidsLimit:            DefaultPidsLimit,
		LogDir:               "/var/log/eci/groups",
		StateDir:             "/var/lib/eci/agent",
		HeartbeatInterval:    10 * time.Second,
		ResyncInterval:       10 * time.Second,
		CNIConfDir:           "/etc/cni/net.d",
		NetworkName:          "eci0",
		CNISocket:            "/run/eci/cni.sock",
		VirtualServices:      true,
		StreamAddress:        "0.0.0.0:10350",
		EphemeralStorageBase: 30 << 30,
		EvictionInterval:     10 * time.Second,
		// Image caches: 15% of the image filesystem left free, 100 GiB for
		// the caches together, an image no cache keeps removed after
		// 10 minutes.
		ImageCacheMinFreePercent: 15, ImageCacheBytes: 100 << 30, ImageCachePruneGrace: 10 * time.Minute,
		LogMaxSize:        10 << 20,
		LogMaxFiles:       5,
		RegistryConfigDir: "/etc/containerd/certs.d",
		ResolvConf:        "/etc/resolv.conf",
	}
}

// Machine is what the operator says of a host: its name and zone, and what
// of the machine's vCPUs and memory groups may have.
type Machine struct {
	Name string // default: the hostname
	Zone string
	// CPU (vCPUs) and MemoryGiB replace the machine's own when positive;
	// Overcommit (> 1) then multiplies them (eci up on a small machine).
	CPU, MemoryGiB float64
	Overcommit     float64
	// ReservedCPU and ReservedMemoryGiB are kept for the system: capacity
	// minus them is what groups may be given (allocatable).
	ReservedCPU, ReservedMemoryGiB float64
	MaxGroups                      int
	// RuntimeHandler is the host's default runtime handler (runc);
	// RuntimeHandlers the others it offers, named as in the runtime's
	// config (kata, gvisor): groups asking for one (a pod's
	// runtimeClassName) are placed only on hosts that offer it.
	RuntimeHandler  string
	RuntimeHandlers []string
	// GPUModel names the model of its GPUs, for prices (--gpu-model).
	GPUModel string
	// WarmPoolSize is how many ready sandboxes the host keeps on each of
	// WarmPoolVSwitches (empty: every vSwitch of its zone without IPv6);
	// an operator may set another size (eci hosts warm-pool).
	WarmPoolSize      int
	WarmPoolVSwitches []string
}

// DefaultMachine is a host as eci agent's flags describe it before the
// operator's: the machine's vCPUs and memory, half a GiB kept for the
// system, at most 110 groups (the kubelet's pods), runc.
func DefaultMachine() Machine {
	return Machine{Zone: "zone-a", ReservedMemoryGiB: 0.5, MaxGroups: 110, RuntimeHandler: "runc"}
}

// Host is the host the agent registers for m: capacity from the machine (or
// m's figures), allocatable after the reserve.
func (m Machine) Host() (apiv1.Host, error) {
	milli, mem, err := MachineResources()
	if err != nil {
		return apiv1.Host{}, err
	}
	if m.CPU > 0 {
		milli = int64(m.CPU * 1000)
	}
	if m.MemoryGiB > 0 {
		mem = int64(m.MemoryGiB * 1024)
	}
	if m.Overcommit > 1 {
		milli, mem = int64(float64(milli)*m.Overcommit), int64(float64(mem)*m.Overcommit)
	}
	switch {
	case m.MaxGroups < 1:
		return apiv1.Host{}, fmt.Errorf("--max-groups %d: allowed: 1 or more", m.MaxGroups)
	case m.RuntimeHandler == "":
		return apiv1.Host{}, errors.New("--runtime-handler: a runtime handler is required (runc)")
	case m.Zone == "":
		return apiv1.Host{}, errors.New("--zone: a zone is required")
	}
	if m.Name == "" {
		if m.Name, err = os.Hostname(); err != nil {
			return apiv1.Host{}, fmt.Errorf("host name: %w", err)
		}
	}
	capacity := apiv1.Resources{MilliCPU: milli, MemoryMiB: mem, Pods: m.MaxGroups}
	alloc := capacity
	alloc.MilliCPU -= int64(m.ReservedCPU * 1000)
	alloc.MemoryMiB -= int64(m.ReservedMemoryGiB * 1024)
	if alloc.MilliCPU <= 0 || alloc.MemoryMiB <= 0 {
		return apiv1.Host{}, fmt.Errorf("--reserved-cpu/--reserved-memory leave nothing of %g vCPU / %g GiB", float64(milli)/1000, float64(mem)/1024)
	}
	if m.WarmPoolSize < 0 || m.WarmPoolSize > apiv1.MaxWarmPoolSize {
		return apiv1.Host{}, fmt.Errorf("--warm-pool-size %d: allowed: 0 to %d", m.WarmPoolSize, apiv1.MaxWarmPoolSize)
	}
	h := apiv1.Host{
		Metadata: apiv1.ObjectMeta{Name: m.Name},
		Spec:     apiv1.HostSpec{Zone: m.Zone, Capacity: capacity, Allocatable: alloc, RuntimeHandlers: m.handlers(), GPUModel: m.GPUModel},
	}
	if m.WarmPoolSize > 0 || len(m.WarmPoolVSwitches) > 0 {
		h.Spec.WarmPool = &apiv1.WarmPoolSpec{Size: m.WarmPoolSize, VSwitchIDs: m.WarmPoolVSwitches}
	}
	return h, nil
}

// handlers are the host's runtime handlers, its default first, each once.
func (m Machine) handlers() []string {
	out := []string{m.RuntimeHandler}
	for _, h := range m.RuntimeHandlers {
		if !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	return out
}

// ParseMirrors reads REGISTRY=URL pairs (--registry-mirror) into
// RegistryMirrors' form.
func ParseMirrors(pairs []string) (map[string][]string, error) {
	var out map[string][]string
	for _, m := range pairs {
		reg, url, ok := strings.Cut(m, "=")
		if !ok || reg == "" || (!strings.HasPrefix(url, "http://") && !strings.HasPrefix(url, "https://")) {
			return nil, fmt.Errorf("--registry-mirror %q: want REGISTRY=URL, such as docker.io=https://mirror.example:5000", m)
		}
		if out == nil {
			out = map[string][]string{}
		}
		out[reg] = append(out[reg], url)
	}
	return out, nil
}
