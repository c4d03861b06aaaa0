package main

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/eci-dev/eci/internal/agent"
	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/log"
	"github.com/eci-dev/eci/internal/runtime"
)

// agentHelp is the command's help.
const agentHelp = `eci agent runs on every host of the pool. It registers the host with the control
plane (capacity, zone, runtime handlers), keeps its lease, and watches the
container groups placed on it.

Each group becomes one pod sandbox through the Kubernetes CRI API on containerd
(CNI networking), then its init containers in order and its containers, restarted
by the restart policy with back-off. Status and events go back to the server as
soon as they change. A restarted agent adopts what runs and removes what no
longer has a group.

Sandboxes get exactly the IP the server allocated: the agent writes a network
whose plugin is eci-cni (a small companion binary), which asks the agent to
attach the sandbox: a veth pair with the group's address, routed by the host
(no bridge; docs/networking.md).

Volumes: emptyDir (on disk) and files payloads (configMaps, secrets of a virtual
node), written atomically and updated in place. Startup, liveness and readiness
probes (exec, httpGet, tcpSocket, grpc) as the kubelet runs them.

Each group's cgroup carries its size and a bound on its processes
(--pids-limit); the supported security context subset is applied, with the
capabilities and seccomp profile the API allows (docs/security.md).

Logs, exec, attach, port-forward and stats are served to the server (never to
users directly) on --stream-address: TLS with a CA of the agent's own and a
secret, both registered with the host. Groups writing more than their
ephemeral storage are evicted; container logs are rotated by size.

Images are pulled with the group's registry credentials. The plain-http and
insecure registries a group names (only with --allow-insecure-registries) are
written to the runtime's registry hosts directory for that group's own pull
alone, and the agent's registry mirrors for good (never over the operator's
own settings). Registries on the host's loopback or link-local addresses are
refused unless allowed by name. Lifecycle hooks, terminationGracePeriodSeconds and
activeDeadlineSeconds work as the kubelet's.`

func newAgentCommand() *cobra.Command {
	var (
		src           client.Source
		endpoint      string
		ephemeralGiB  float64
		imageCacheGiB float64
		logMaxMiB     float64
		mirrors       []string
		cdiDirs       []string
		gpuKind       string
		cfg           = agent.DefaultConfig()
		m             = agent.DefaultMachine()
	)
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the host agent: make the container groups placed on this host real",
		Long:  agentHelp,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c, err := src.New()
			if err != nil {
				return err
			}
			rt, err := runtime.NewCRI(endpoint, log.G(ctx))
			if err != nil {
				return err
			}
			if cfg.Host, err = m.Host(); err != nil {
				return err
			}
			if cmd.Flags().Changed("runtime-handler") {
				cfg.DefaultRuntimeHandler = m.RuntimeHandler
			}
			gpus, err := agent.DiscoverGPUs(cdiDirs, gpuKind)
			if err != nil {
				return err
			}
			cfg.UseGPUs(gpus)
			if host, _, err := net.SplitHostPort(cfg.StreamAddress); err == nil && cfg.AdvertiseIP == "" {
				if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
					if cfg.AdvertiseIP, err = agent.HostIP(); err != nil {
						return err
					}
				}
			}
			if cfg.RegistryMirrors, err = agent.ParseMirrors(mirrors); err != nil {
				return err
			}
			cfg.EphemeralStorageBase = uint64(ephemeralGiB * (1 << 30))
			if imageCacheGiB < 0 {
				return fmt.Errorf("--image-cache-size %v: allowed: 0 (no bound) or more GiB", imageCacheGiB)
			}
			cfg.ImageCacheBytes = uint64(imageCacheGiB * (1 << 30))
			cfg.LogMaxSize = int64(logMaxMiB * (1 << 20))
			cfg.Client, cfg.Runtime = c, rt
			a, err := agent.New(cfg)
			if err != nil {
				return err
			}
			return a.Run(ctx)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&src.Server, "server", "https://127.0.0.1:8443", "the eci server")
	fl.StringVar(&src.Token, "token", "", "this host's token (default $ECI_TOKEN; eci token create --host NAME)")
	fl.StringVar(&src.TokenFile, "token-file", "", "read the token from this file")
	fl.StringVar(&src.CAFile, "ca-file", "", "CA of the server's certificate")
	fl.StringVar(&m.Name, "host-name", "", "name of this host (default: the hostname)")
	fl.StringVar(&m.Zone, "zone", m.Zone, "zone of this host")
	fl.Float64Var(&m.CPU, "cpu", 0, "vCPUs of this host (default: the machine's)")
	fl.Float64Var(&m.MemoryGiB, "memory", 0, "GiB of memory of this host (default: the machine's)")
	fl.Float64Var(&m.ReservedCPU, "reserved-cpu", 0, "vCPUs kept for the system, not given to groups")
	fl.Float64Var(&m.ReservedMemoryGiB, "reserved-memory", m.ReservedMemoryGiB, "GiB kept for the system, not given to groups")
	fl.IntVar(&m.MaxGroups, "max-groups", m.MaxGroups, "groups this host runs at most")
	fl.StringVar(&endpoint, "cri-endpoint", "unix:///run/containerd/containerd.sock", "the CRI runtime")
	fl.StringVar(&m.RuntimeHandler, "runtime-handler", m.RuntimeHandler, "the host's default runtime handler: when given, groups naming none run with it; unset, with the runtime's own default (offered as runc)")
	fl.Func("runtime-handlers", "other runtime handlers the host offers, comma-separated, named as in the runtime's config (kata,gvisor): a pod's RuntimeClass names one", func(v string) error {
		m.RuntimeHandlers = append(m.RuntimeHandlers, strings.Split(v, ",")...)
		return nil
	})
	fl.IntVar(&m.WarmPoolSize, "warm-pool-size", 0, "ready sandboxes (network, address, pause, cgroup) this host keeps on each vSwitch of --warm-pool-vswitches, so that a group placed on one only starts its containers; each holds an address the server reserves (docs/fast-start.md)")
	fl.StringSliceVar(&m.WarmPoolVSwitches, "warm-pool-vswitches", nil, "the vSwitches of the warm pool, comma-separated (default: every vSwitch of the host's zone without IPv6)")
	fl.StringSliceVar(&cdiDirs, "cdi-spec-dirs", []string{"/etc/cdi", "/var/run/cdi"}, "the runtime's CDI spec directories (containerd's cdi_spec_dirs), where the host's GPUs are found")
	fl.StringVar(&m.GPUModel, "gpu-model", "", "the model of the host's GPUs (nvidia-t4), which a price book may price apart (gpuModels)")
	fl.StringVar(&gpuKind, "gpu-cdi-kind", "nvidia.com/gpu", "the CDI kind of the host's GPUs: each device of that kind in --cdi-spec-dirs is a GPU groups may be given (nvidia-ctk cdi generate writes them)")
	fl.StringVar(&cfg.CgroupParent, "cgroup-parent", cfg.CgroupParent, "cgroup under which each group gets its own")
	fl.IntVar(&cfg.GroupsCPUWeight, "groups-cpu-weight", 0, "CPU weight of the groups' parent cgroup (1-10000, cgroup v2 units, 100 the kernel's default; on cgroup v1 cpu.shares = weight*1024/100): below 100 the groups yield to the control path and other services of a shared host while the CPU is contended; 0 leaves it as it is")
	fl.Int64Var(&cfg.PidsLimit, "pids-limit", cfg.PidsLimit, "processes and threads one group may have together (its cgroup's pids.max; -1: no limit); the host's kernel.pid_max must leave room for every group's")
	fl.StringVar(&cfg.LogDir, "log-dir", cfg.LogDir, "CRI log files, a directory per group")
	fl.StringVar(&cfg.StateDir, "state-dir", cfg.StateDir, "the groups' volumes (emptyDir, files payloads)")
	fl.StringVar(&cfg.CNIConfDir, "cni-conf-dir", cfg.CNIConfDir, "the runtime's CNI config dir, where the agent writes its network (empty: leave networking to the runtime's own config)")
	fl.StringVar(&cfg.NetworkName, "network-name", cfg.NetworkName, "name of the groups' network: its CNI network and the agent's nftables tables")
	fl.BoolVar(&cfg.VirtualServices, "virtual-services", cfg.VirtualServices, "program the virtual IPs (Services) of the tables the groups name, in nftables (needs nft)")
	fl.Func("nat-protected", "a CIDR no instance reaches through a NAT gateway from this host's address (repeatable; the pool's hosts and the server always are): NFS servers, a management network", func(s string) error {
		p, err := netip.ParsePrefix(s)
		if err != nil || !p.Addr().Is4() {
			return fmt.Errorf("allowed: an IPv4 CIDR such as 198.18.0.0/24")
		}
		cfg.ProtectedNetworks = append(cfg.ProtectedNetworks, p.Masked())
		return nil
	})
	fl.Func("tunnel-ip", "this host's address on the network between the pool's hosts: the host registers it and reaches the other hosts' instances through a VXLAN tunnel (UDP 4789) from it (empty: this host's instances reach only each other)", func(s string) (err error) {
		cfg.TunnelIP, err = netip.ParseAddr(s)
		return err
	})
	fl.IntVar(&cfg.MTU, "mtu", cfg.MTU, "MTU of the instances' links (0: the tunnel IP's interface's less 50, or 1500 without a tunnel)")
	fl.StringVar(&cfg.CNISocket, "cni-socket", cfg.CNISocket, "where the agent answers the eci-cni CNI plugin (install _output/bin/eci-cni into the runtime's CNI bin dir)")
	fl.StringVar(&cfg.StreamAddress, "stream-address", cfg.StreamAddress, "where the agent serves logs, exec, attach, port-forward and stats to the server (TLS, its own CA registered with the host)")
	fl.StringVar(&cfg.AdvertiseIP, "advertise-address", "", "IP the server reaches the stream server at (default: the first global IPv4 of this host)")
	fl.Float64Var(&ephemeralGiB, "ephemeral-storage", float64(cfg.EphemeralStorageBase)/(1<<30), "GiB every group may write on this host (writable layers, disk emptyDirs, logs) before its extraEphemeralStorage; over it the group is evicted")
	fl.Float64Var(&imageCacheGiB, "image-cache-size", float64(cfg.ImageCacheBytes)/(1<<30), "GiB the image caches' images may take on this host together (0: each cache's own imageCacheSize only); past it the least recently matched caches are not kept here")
	fl.IntVar(&cfg.ImageCacheMinFreePercent, "image-cache-min-free", cfg.ImageCacheMinFreePercent, "no image cache pulls while the image filesystem has less than this percent free (0-99)")
	fl.DurationVar(&cfg.ImageCachePruneGrace, "image-cache-prune-grace", cfg.ImageCachePruneGrace, "how long an image no cache of this host keeps any more stays before it is removed")
	fl.DurationVar(&cfg.EvictionInterval, "housekeeping-interval", cfg.EvictionInterval, "how often ephemeral storage is measured and logs rotated")
	fl.Float64Var(&logMaxMiB, "log-max-size", float64(cfg.LogMaxSize)/(1<<20), "MiB a container's log file grows to before it is rotated")
	fl.IntVar(&cfg.LogMaxFiles, "log-max-files", cfg.LogMaxFiles, "log files kept per container, the live one included")
	fl.StringVar(&cfg.ResolvConf, "resolv-conf", cfg.ResolvConf, "the resolv.conf of groups with no DNS of their own (dnsPolicy Default, or ClusterFirst with no cluster DNS), as the kubelet's; empty: no nameserver (never the runtime's copy of this machine's)")
	fl.StringVar(&cfg.RegistryConfigDir, "registry-config-dir", cfg.RegistryConfigDir, "the runtime's registry hosts directory (containerd's config_path), where mirrors and the groups' plain-http/insecure registries are written")
	fl.StringArrayVar(&mirrors, "registry-mirror", nil, "REGISTRY=URL: pull REGISTRY's images from URL (repeat for several; an air-gapped site points docker.io at its own registry)")
	fl.BoolVar(&cfg.AllowInsecureRegistries, "allow-insecure-registries", false, "honour the groups' plainHttpRegistries/insecureRegistries (each for its own pulls only; images pulled so are pulled again over verified TLS for other groups)")
	fl.StringArrayVar(&cfg.AllowedLocalRegistries, "allowed-local-registry", nil, "HOST:PORT of a registry on this host's loopback or link-local addresses that groups may pull from (others are refused: the runtime would reach the host's own services); repeat for several")
	dataCacheFlags(fl, &cfg)
	return cmd
}

// gibBytes is a flag given in GiB (fractions allowed) kept in bytes.
type gibBytes struct{ p *uint64 }

func (g gibBytes) String() string {
	if g.p == nil {
		return "0"
	}
	return strconv.FormatFloat(float64(*g.p)/(1<<30), 'f', -1, 64)
}

func (g gibBytes) Set(s string) error {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v <= 0 || v > 1<<20 {
		return fmt.Errorf("%q: allowed: a number of GiB above 0", s)
	}
	*g.p = uint64(v * (1 << 30))
	return nil
}

func (gibBytes) Type() string { return "GiB" }

// dataCacheFlags are the agent's flags of data caches.
func dataCacheFlags(fl *pflag.FlagSet, cfg *agent.Config) {
	cfg.DataCacheBytes = 100 << 30
	fl.Var(gibBytes{&cfg.DataCacheBytes}, "data-cache-size", "GiB the data caches fetched ahead may take on this host together (a cache a group mounts is fetched past it)")
	fl.StringArrayVar(&cfg.AllowedLocalDataHosts, "allowed-local-data-host", nil, "HOST or HOST:PORT that data caches may be fetched from whatever its address (by default only public addresses are: not this host's own, loopback, link-local, private or reserved ones); repeat for several")
	fl.Func("allowed-data-network", "a CIDR of private or local addresses data caches may be fetched from (the site's own data servers); repeatable", func(s string) error {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return fmt.Errorf("allowed: a CIDR such as 198.18.0.0/24")
		}
		cfg.AllowedDataNetworks = append(cfg.AllowedDataNetworks, p.Masked())
		return nil
	})
}
