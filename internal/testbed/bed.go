package testbed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// Options says which parts of the bed to start.
type Options struct {
	Kube       bool // etcd + kube-apiserver + kube-controller-manager + kube-scheduler
	Containerd bool // containerd with its CRI plugin and a CNI network
	Registry   bool // an in-process OCI registry with the test images pushed
	// Addons pushes the cluster addons' images (CoreDNS, MetricsServer:
	// the binaries of hack/build-coredns.sh and build-metrics-server.sh) to
	// the registry too: Registry.CoreDNS, Registry.MetricsServer.
	Addons bool
	// Kubelet adds a real node: the upstream kubelet on the bed's containerd
	// (needs Kube and Containerd). KubeletMaxPods caps its pods (default 110).
	Kubelet        bool
	KubeletMaxPods int32
	// Hosts makes a pool of that many hosts (Bed.Hosts): network
	// namespaces joined by an underlay bridge, each with its own
	// containerd; the registry then listens on the underlay's gateway
	// (unless RegistryAddr says otherwise), where the hosts reach it.
	Hosts int

	// BaseDir holds the slots' directories; DefaultBaseDir when empty.
	BaseDir string
	// RegistryAddr is where the registry listens; a free loopback port when empty.
	RegistryAddr string
	// SharedRegistry is another bed's registry: this bed starts none and its
	// containerd pulls from that one (two beds whose pods name the same
	// images, as a cluster whose real node and virtual node both run them).
	SharedRegistry *Registry
	// Logger receives progress lines; slog's default when nil.
	Logger *slog.Logger
}

// Bed is a running test bed. Fields of parts that were not asked for are nil.
type Bed struct {
	Dir     string
	Slot    int
	Network Network
	// CgroupParent is the cgroup under which this bed's pods must live, so that
	// Stop can remove everything they leave.
	CgroupParent string

	Kube       *Kube
	Containerd *Containerd
	Registry   *Registry
	Kubelet    *Kubelet
	Hosts      []*Host

	log       *slog.Logger
	slot      *slot
	mu        sync.Mutex
	sharedDir bool // b.Dir is a shared mount (containerd.go)
	stops     []namedStop
	stopOnce  sync.Once
	stopErr   error
}

type namedStop struct {
	name string
	fn   func() error
}

// Start checks the machine, claims a slot and starts the parts asked for. On
// error everything started so far is stopped again.
func Start(ctx context.Context, opts Options) (b *Bed, err error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.BaseDir == "" {
		opts.BaseDir = DefaultBaseDir
	}
	if opts.Kubelet && (!opts.Kube || !opts.Containerd) {
		return nil, errors.New("testbed: Options.Kubelet needs Kube and Containerd too")
	}
	if err := checkMachine(opts, os.Geteuid()); err != nil {
		return nil, err
	}
	s, err := claimSlot(opts.BaseDir)
	if err != nil {
		return nil, err
	}
	b = &Bed{
		Dir: s.dir, Slot: s.index, Network: networkFor(s.index), slot: s,
		CgroupParent: "/" + s.cgroupName(), log: opts.Logger.With("bed", s.index),
	}
	defer func() {
		if err != nil {
			if serr := b.Stop(); serr != nil {
				err = fmt.Errorf("%w (and stopping the partial bed: %v)", err, serr)
			}
			b = nil
		}
	}()
	if opts.Hosts > 0 {
		if err = b.createUnderlay(); err != nil {
			return b, err
		}
		if opts.RegistryAddr == "" {
			opts.RegistryAddr = b.Network.UnderlayGateway.String() + ":0"
		}
	}
	if opts.SharedRegistry != nil {
		b.Registry = opts.SharedRegistry
	} else if opts.Registry || opts.Containerd || opts.Hosts > 0 {
		if b.Registry, err = b.startRegistry(ctx, opts.RegistryAddr, opts.Addons); err != nil {
			return b, fmt.Errorf("registry: %w", err)
		}
	}
	if opts.Kube {
		if err = b.createNodeLink(); err != nil {
			return b, err
		}
		if b.Kube, err = b.startKube(ctx); err != nil {
			return b, fmt.Errorf("kubernetes control plane: %w", err)
		}
	}
	if opts.Containerd {
		if b.Containerd, err = b.startContainerd(ctx); err != nil {
			return b, fmt.Errorf("containerd: %w", err)
		}
	}
	if opts.Kubelet {
		if b.Kubelet, err = b.startKubelet(ctx, opts.KubeletMaxPods); err != nil {
			return b, fmt.Errorf("kubelet: %w", err)
		}
	}
	for i := range opts.Hosts {
		h, err := b.addHost(ctx, i+1)
		if err != nil {
			return b, fmt.Errorf("pool host %d: %w", i+1, err)
		}
		b.Hosts = append(b.Hosts, h)
	}
	b.log.Info("test bed ready", "dir", b.Dir)
	return b, nil
}

// onStop registers fn to run at Stop, in reverse order of registration.
func (b *Bed) onStop(name string, fn func() error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.stops = append(b.stops, namedStop{name, fn})
}

// Stop stops every part, removes every trace of the bed (processes, links,
// cgroups, mounts, its directory) and frees its slot. Safe to call twice.
func (b *Bed) Stop() error {
	b.stopOnce.Do(func() {
		b.mu.Lock()
		stops := b.stops
		b.stops = nil
		b.mu.Unlock()
		var errs []error
		for i := len(stops) - 1; i >= 0; i-- {
			if err := stops[i].fn(); err != nil {
				errs = append(errs, fmt.Errorf("stop %s: %w", stops[i].name, err))
			}
		}
		if err := b.slot.clean(); err != nil {
			errs = append(errs, err)
		}
		b.slot.release()
		b.stopErr = errors.Join(errs...)
	})
	return b.stopErr
}

// checkMachine fails early, saying what to run, when the machine can't host a bed.
func checkMachine(opts Options, euid int) error {
	if euid != 0 {
		return errors.New("the test bed needs root (it runs containerd, creates network links and cgroups): run the tests as root, e.g. sudo make test")
	}
	var missing []string
	need := []string{"ip", "unshare", "nsenter", "mount"}
	if opts.Containerd || opts.Hosts > 0 {
		need = append(need, "runc")
	}
	for _, bin := range need {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, bin)
		}
	}
	if opts.Containerd || opts.Hosts > 0 {
		if _, err := containerdBinary(); err != nil {
			return err
		}
		if _, err := os.Stat(filepath.Join(cniBinDir, "bridge")); err != nil {
			missing = append(missing, "CNI plugins in "+cniBinDir)
		}
	}
	if opts.Containerd || opts.Registry || opts.Hosts > 0 {
		if _, err := os.Stat(busyboxPath); err != nil {
			missing = append(missing, busyboxPath+" (busybox-static)")
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing on this machine: %s; run hack/install-deps.sh (make deps)", strings.Join(missing, ", "))
	}
	if opts.Kube {
		if _, err := KubeBinDir(); err != nil {
			return err
		}
	}
	return nil
}

// RepoRoot finds the eci checkout around the working directory (tests run in
// their package's folder).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.HasPrefix(string(data), "module github.com/eci-dev/eci\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the eci source tree (no go.mod of github.com/eci-dev/eci above the working directory)")
		}
		dir = parent
	}
}

// freePort returns a loopback TCP port that was free a moment ago, taken
// below the kernel's range of ephemeral ports when it can: a port of that
// range can be given to any outgoing connection between the moment it is
// found free and the one its component listens on it (the bed's
// kube-scheduler once failed to start so: "address already in use").
func freePort() (int, error) {
	if lo, hi, ok := belowEphemeral(); ok {
		for range 100 {
			p := lo + rand.IntN(hi-lo)
			if l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p))); err == nil {
				_ = l.Close()
				return p, nil
			}
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// belowEphemeral is a range of up to 10,000 ports just below the kernel's
// ephemeral ports (ip_local_port_range), from 1024 at the lowest.
func belowEphemeral() (lo, hi int, ok bool) {
	data, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, 0, false
	}
	f := strings.Fields(string(data))
	if len(f) != 2 {
		return 0, 0, false
	}
	start, err := strconv.Atoi(f[0])
	if err != nil || start <= 2048 {
		return 0, 0, false
	}
	return max(1024, start-10000), start, true
}

// checkPortFree gives a clear error when addr is already taken.
func checkPortFree(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("address %s is already in use (another bed or service listens there): stop it or choose another address: %w", addr, err)
	}
	return l.Close()
}

// createNodeLink creates the veth pair whose host end carries the node IP: the
// kube-apiserver advertises it (a loopback address is refused for the
// kubernetes Service's endpoints) and a real kubelet would register with it.
func (b *Bed) createNodeLink() error {
	n := b.Network
	cmds := [][]string{
		{"link", "add", n.NodeLink, "type", "veth", "peer", "name", n.NodePeer},
		{"addr", "add", n.NodeIP.String() + "/24", "dev", n.NodeLink},
		{"link", "set", n.NodeLink, "up"},
		{"link", "set", n.NodePeer, "up"},
	}
	for _, c := range cmds {
		if out, err := exec.Command("ip", c...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %w: %s", strings.Join(c, " "), err, out)
		}
	}
	return nil
}
