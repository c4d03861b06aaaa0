package main

import (
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/agent"
	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/log"
	"github.com/eci-dev/eci/internal/runtime"
)

func newAgentCommand() *cobra.Command {
	var (
		cc                                 client.Config
		tokenFile, endpoint, zone, handler string
		cpu, memory                        float64
		reservedCPU, reservedMemory        float64
		pods                               int
		ephemeralGiB, logMaxMiB            float64
		mirrors                            []string
		cfg                                agent.Config
	)
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the host agent: make the container groups placed on this host real",
		Long: `eci agent runs on every host of the pool. It registers the host with the control
plane (capacity, zone, runtime handlers), keeps its lease, and watches the
container groups placed on it.

Each group becomes one pod sandbox through the Kubernetes CRI API on containerd
(CNI networking), then its init containers in order and its containers, restarted
by the restart policy with back-off. Status and events go back to the server as
soon as they change. A restarted agent adopts what runs and removes what no
longer has a group.

Sandboxes get exactly the IP the server allocated: the agent writes a bridge
network whose IPAM is the eci-ipam plugin (a small companion binary), which asks
the agent.

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
activeDeadlineSeconds work as the kubelet's.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if cc.Token == "" {
				cc.Token = os.Getenv("ECI_TOKEN")
			}
			if tokenFile != "" {
				data, err := os.ReadFile(tokenFile)
				if err != nil {
					return fmt.Errorf("--token-file: %w", err)
				}
				cc.Token = strings.TrimSpace(string(data))
			}
			c, err := client.New(cc)
			if err != nil {
				return err
			}
			rt, err := runtime.NewCRI(endpoint, log.G(ctx))
			if err != nil {
				return err
			}
			milli, mem, err := agent.MachineResources()
			if err != nil {
				return err
			}
			if cpu > 0 {
				milli = int64(cpu * 1000)
			}
			if memory > 0 {
				mem = int64(memory * 1024)
			}
			capacity := apiv1.Resources{MilliCPU: milli, MemoryMiB: mem, Pods: pods}
			alloc := capacity
			alloc.MilliCPU -= int64(reservedCPU * 1000)
			alloc.MemoryMiB -= int64(reservedMemory * 1024)
			if alloc.MilliCPU <= 0 || alloc.MemoryMiB <= 0 {
				return fmt.Errorf("--reserved-cpu/--reserved-memory leave nothing of %g vCPU / %g GiB", float64(milli)/1000, float64(mem)/1024)
			}
			if cfg.Host.Metadata.Name == "" {
				cfg.Host.Metadata.Name, _ = os.Hostname()
			}
			cfg.Host.Spec = apiv1.HostSpec{Zone: zone, Capacity: capacity, Allocatable: alloc, RuntimeHandlers: []string{handler}}
			if host, _, err := net.SplitHostPort(cfg.StreamAddress); err == nil && cfg.AdvertiseIP == "" {
				if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
					if cfg.AdvertiseIP, err = agent.HostIP(); err != nil {
						return err
					}
				}
			}
			for _, m := range mirrors {
				reg, url, ok := strings.Cut(m, "=")
				if !ok || reg == "" || (!strings.HasPrefix(url, "http://") && !strings.HasPrefix(url, "https://")) {
					return fmt.Errorf("--registry-mirror %q: want REGISTRY=URL, such as docker.io=https://mirror.example:5000", m)
				}
				if cfg.RegistryMirrors == nil {
					cfg.RegistryMirrors = map[string][]string{}
				}
				cfg.RegistryMirrors[reg] = append(cfg.RegistryMirrors[reg], url)
			}
			cfg.EphemeralStorageBase = uint64(ephemeralGiB * (1 << 30))
			cfg.LogMaxSize = int64(logMaxMiB * (1 << 20))
			cfg.Client, cfg.Runtime, cfg.Logger = c, rt, log.G(ctx)
			a, err := agent.New(cfg)
			if err != nil {
				return err
			}
			return a.Run(ctx)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&cc.Server, "server", "https://127.0.0.1:8443", "the eci server")
	fl.StringVar(&cc.Token, "token", "", "this host's token (default $ECI_TOKEN; eci token create --host NAME)")
	fl.StringVar(&tokenFile, "token-file", "", "read the token from this file")
	fl.StringVar(&cc.CAFile, "ca-file", "", "CA of the server's certificate")
	fl.StringVar(&cfg.Host.Metadata.Name, "host-name", "", "name of this host (default: the hostname)")
	fl.StringVar(&zone, "zone", "zone-a", "zone of this host")
	fl.Float64Var(&cpu, "cpu", 0, "vCPUs of this host (default: the machine's)")
	fl.Float64Var(&memory, "memory", 0, "GiB of memory of this host (default: the machine's)")
	fl.Float64Var(&reservedCPU, "reserved-cpu", 0, "vCPUs kept for the system, not given to groups")
	fl.Float64Var(&reservedMemory, "reserved-memory", 0.5, "GiB kept for the system, not given to groups")
	fl.IntVar(&pods, "max-groups", 110, "groups this host runs at most")
	fl.StringVar(&endpoint, "cri-endpoint", "unix:///run/containerd/containerd.sock", "the CRI runtime")
	fl.StringVar(&handler, "runtime-handler", "runc", "runtime handler the host offers")
	fl.StringVar(&cfg.CgroupParent, "cgroup-parent", "eci", "cgroup under which each group gets its own")
	fl.Int64Var(&cfg.PidsLimit, "pids-limit", agent.DefaultPidsLimit, "processes and threads one group may have together (its cgroup's pids.max; -1: no limit); the host's kernel.pid_max must leave room for every group's")
	fl.StringVar(&cfg.LogDir, "log-dir", "/var/log/eci/groups", "CRI log files, a directory per group")
	fl.StringVar(&cfg.StateDir, "state-dir", "/var/lib/eci/agent", "the groups' volumes (emptyDir, files payloads)")
	fl.StringVar(&cfg.CNIConfDir, "cni-conf-dir", "/etc/cni/net.d", "the runtime's CNI config dir, where the agent writes its network (empty: leave networking to the runtime's own config)")
	fl.StringVar(&cfg.CNIBridge, "cni-bridge", "eci0", "bridge of the groups' network")
	fl.StringVar(&cfg.IPAMSocket, "ipam-socket", "/run/eci/ipam.sock", "where the agent answers the eci-ipam CNI plugin (install _output/bin/eci-ipam into the runtime's CNI bin dir)")
	fl.StringVar(&cfg.StreamAddress, "stream-address", "0.0.0.0:10350", "where the agent serves logs, exec, attach, port-forward and stats to the server (TLS, its own CA registered with the host)")
	fl.StringVar(&cfg.AdvertiseIP, "advertise-address", "", "IP the server reaches the stream server at (default: the first global IPv4 of this host)")
	fl.Float64Var(&ephemeralGiB, "ephemeral-storage", 30, "GiB every group may write on this host (writable layers, disk emptyDirs, logs) before its extraEphemeralStorage; over it the group is evicted")
	fl.DurationVar(&cfg.EvictionInterval, "housekeeping-interval", 10*time.Second, "how often ephemeral storage is measured and logs rotated")
	fl.Float64Var(&logMaxMiB, "log-max-size", 10, "MiB a container's log file grows to before it is rotated")
	fl.IntVar(&cfg.LogMaxFiles, "log-max-files", 5, "log files kept per container, the live one included")
	fl.StringVar(&cfg.RegistryConfigDir, "registry-config-dir", "/etc/containerd/certs.d", "the runtime's registry hosts directory (containerd's config_path), where mirrors and the groups' plain-http/insecure registries are written")
	fl.StringArrayVar(&mirrors, "registry-mirror", nil, "REGISTRY=URL: pull REGISTRY's images from URL (repeat for several; an air-gapped site points docker.io at its own registry)")
	fl.BoolVar(&cfg.AllowInsecureRegistries, "allow-insecure-registries", false, "honour the groups' plainHttpRegistries/insecureRegistries (each for its own pulls only; images pulled so are pulled again over verified TLS for other groups)")
	fl.StringArrayVar(&cfg.AllowedLocalRegistries, "allowed-local-registry", nil, "HOST:PORT of a registry on this host's loopback or link-local addresses that groups may pull from (others are refused: the runtime would reach the host's own services); repeat for several")
	return cmd
}
