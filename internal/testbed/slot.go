package testbed

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/eci-dev/eci/internal/datapath"
	"github.com/eci-dev/eci/internal/vservice"
)

// MaxSlots is how many beds can run on one machine at once.
const MaxSlots = 64

// DefaultBaseDir holds one directory per slot.
const DefaultBaseDir = "/var/lib/eci-testbed"

// Network is the address plan of one slot, all inside 198.18.0.0/15 (RFC 2544's
// benchmarking range), so that no test ever touches a real network:
//
//	198.18.S.0/24       Kubernetes service CIDR
//	198.18.(64+S).0/24  node link: the veth pair whose host end carries NodeIP;
//	                    198.18.(64+S).200 is LocalAddr
//	198.19.S.0/24       containerd's CNI pod network (bridge ecibrS)
//	198.19.(128+S).0/24 a vSwitch for eci's own tests (network eciagS: an
//	                    agent's CNI network and nftables tables)
//	198.19.(64+4S).0/22 a larger vSwitch for bursts of up to 1,022 groups,
//	                    slots 0-15 only (same network)
//	198.18.(128+4S).0/22 a second service range (a ServiceCIDR object a
//	                    benchmark of 1,000 Services adds), slots 0-15 only
//	198.18.(192+S).0/24 the underlay of a pool of hosts (bridge eciulS
//	                    with .1; host i's tunnel IP .(10+i))
type Network struct {
	ServiceCIDR netip.Prefix
	NodeCIDR    netip.Prefix
	NodeIP      netip.Addr
	PodCIDR     netip.Prefix
	Bridge      string // CNI bridge of containerd's pod network
	NodeLink    string // host end of the node veth pair (carries NodeIP)
	NodePeer    string // other end of the node veth pair
	// VSwitchCIDR is for an eci vSwitch in tests; AgentNetwork names the
	// network of an eci agent of this bed (its CNI network and nftables
	// tables).
	VSwitchCIDR  netip.Prefix
	AgentNetwork string
	// VSwitchIPv6CIDR is an IPv6 range (2001:2::/48, for benchmarks) for a
	// dual-stack vSwitch in tests.
	VSwitchIPv6CIDR netip.Prefix
	// LargeVSwitchCIDR is a /22 for bursts of more groups than VSwitchCIDR
	// holds; only slots 0-15 have one (invalid otherwise).
	LargeVSwitchCIDR netip.Prefix
	// UnderlayCIDR joins a pool's hosts (Options.Hosts): the bed's end
	// (bridge UnderlayBridge) has UnderlayGateway, where the pool's server
	// and registry listen.
	UnderlayCIDR    netip.Prefix
	UnderlayGateway netip.Addr
	// EIPRange is the underlay's upper half, for the server's EIPs (the
	// hosts are low in it).
	EIPRange       netip.Prefix
	UnderlayBridge string
	// LocalAddr is an address a test may put on the host's loopback, to
	// serve on an address of the host that is not a loopback one (a
	// private registry).
	LocalAddr netip.Addr
	// LargeServiceCIDR is a /22 a test may add to the cluster's service
	// ranges (a ServiceCIDR object); only slots 0-15 have one.
	LargeServiceCIDR netip.Prefix
}

func networkFor(slot int) Network {
	s := byte(slot)
	n := Network{
		ServiceCIDR:     netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, s, 0}), 24),
		NodeCIDR:        netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, 64 + s, 0}), 24),
		NodeIP:          netip.AddrFrom4([4]byte{198, 18, 64 + s, 1}),
		PodCIDR:         netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 19, s, 0}), 24),
		Bridge:          fmt.Sprintf("ecibr%d", slot),
		NodeLink:        fmt.Sprintf("ecind%d", slot),
		NodePeer:        fmt.Sprintf("ecinp%d", slot),
		VSwitchCIDR:     netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 19, 128 + s, 0}), 24),
		AgentNetwork:    fmt.Sprintf("eciag%d", slot),
		VSwitchIPv6CIDR: netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0, 0x02, 0, 0, 0, 0x80 + s}), 64),
		LocalAddr:       netip.AddrFrom4([4]byte{198, 18, 64 + s, 200}),
		UnderlayCIDR:    netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, 192 + s, 0}), 24),
		UnderlayGateway: netip.AddrFrom4([4]byte{198, 18, 192 + s, 1}),
		EIPRange:        netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, 192 + s, 128}), 25),
		UnderlayBridge:  fmt.Sprintf("eciul%d", slot),
	}
	if slot < 16 {
		n.LargeVSwitchCIDR = netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 19, 64 + 4*s, 0}), 22)
		n.LargeServiceCIDR = netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, 128 + 4*s, 0}), 22)
	}
	return n
}

// slot is one bed's claim on a slot: the lock file stays open (and so locked)
// as long as the bed lives; the kernel drops the lock when the process dies.
type slot struct {
	index int
	dir   string
	lock  *os.File
	mu    sync.Mutex
}

// cgroupName is the cgroup (in every hierarchy) under which the slot's pods live.
func (s *slot) cgroupName() string { return fmt.Sprintf("eci-bed-%d", s.index) }

// claimFromTop makes claimSlot search from the last slot down. A test that
// kills a bed and then claims its slot again sets it, so that the beds other
// test processes start meanwhile (from the first slot up) do not take the
// slot it waits for.
var claimFromTop bool

// claimSlot takes the first free slot, cleaning what a dead owner left in it.
func claimSlot(base string) (*slot, error) {
	if err := os.MkdirAll(base, 0o755); err != nil {
		return nil, fmt.Errorf("test bed base dir %s: %w", base, err)
	}
	for n := 0; n < MaxSlots; n++ {
		i := n
		if claimFromTop {
			i = MaxSlots - 1 - n
		}
		s, err := tryClaimSlot(base, i)
		if err != nil {
			return nil, err
		}
		if s != nil {
			return s, nil
		}
	}
	return nil, fmt.Errorf("all %d test bed slots under %s are in use", MaxSlots, base)
}

// tryClaimSlot takes slot i if no live process holds it (nil, nil otherwise),
// cleaning what a dead owner left in it.
func tryClaimSlot(base string, i int) (*slot, error) {
	f, err := os.OpenFile(filepath.Join(base, fmt.Sprintf("slot-%d.lock", i)), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, nil
	}
	s := &slot{index: i, dir: filepath.Join(base, fmt.Sprintf("slot-%d", i)), lock: f}
	if err := s.clean(); err != nil {
		f.Close()
		return nil, fmt.Errorf("clean stale test bed slot %d: %w", i, err)
	}
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

// recordPID notes a child's pid and binary so that a later owner can kill it.
func (s *slot) recordPID(pid int, bin string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, err := os.OpenFile(filepath.Join(s.dir, "pids"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return
	}
	fmt.Fprintf(f, "%d %s\n", pid, bin)
	f.Close()
}

// clean removes everything an earlier owner of the slot may have left: its
// processes, its network links, its cgroups and its directory. It is also the
// last step of a normal Stop, so both paths are the same code.
func (s *slot) clean() error {
	if f, err := os.Open(filepath.Join(s.dir, "pids")); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) != 2 {
				continue
			}
			if pid, err := strconv.Atoi(fields[0]); err == nil {
				killRecorded(pid, fields[1], s.dir)
			}
		}
		f.Close()
	}
	n := networkFor(s.index)
	if err := removeHosts(s.index); err != nil {
		return err
	}
	natSide, _ := datapath.NATDevices(n.AgentNetwork) // its peer goes with it
	for _, link := range []string{n.Bridge, n.NodeLink, n.AgentNetwork, n.UnderlayBridge, natSide} {
		if linkExists(link) {
			if out, err := exec.Command("ip", "link", "del", link).CombinedOutput(); err != nil {
				return fmt.Errorf("delete link %s: %w: %s", link, err, out)
			}
		}
	}
	if err := removeAttachments(n); err != nil {
		return err
	}
	// The agent's nftables tables go with its network.
	for _, table := range agentTables(n.AgentNetwork) {
		if !nftTableExists(table) {
			continue
		}
		if out, err := exec.Command("nft", "delete", "table", table.family, table.name).CombinedOutput(); err != nil {
			return fmt.Errorf("delete nftables table %s: %w: %s", table, err, out)
		}
	}
	if err := removeCgroups(s.cgroupName()); err != nil {
		return err
	}
	if err := unmountUnder(s.dir); err != nil {
		return err
	}
	if err := os.RemoveAll(s.dir); err != nil {
		return fmt.Errorf("remove %s: %w", s.dir, err)
	}
	return nil
}

func (s *slot) release() {
	if s.lock != nil {
		s.lock.Close()
		s.lock = nil
	}
}

// nftTable is an nftables table: its family and name.
type nftTable struct{ family, name string }

func (t nftTable) String() string { return t.family + " " + t.name }

// agentTables are the nftables tables of an agent's network: virtual
// services, VPCs, security groups (family ip before IPv6, inet now), NAT
// gateway.
func agentTables(network string) []nftTable {
	inet := string(datapath.InetFamily)
	return []nftTable{{"ip", vservice.TableFor(network)}, {inet, datapath.IsolationTable(network)}, {inet, datapath.FirewallTable(network)},
		{"ip", datapath.IsolationTable(network)}, {"ip", datapath.FirewallTable(network)}, {"ip", datapath.NATTable(network)}}
}

func nftTableExists(t nftTable) bool {
	return exec.Command("nft", "list", "table", t.family, t.name).Run() == nil
}

// removeAttachments deletes the instances' interfaces a dead agent of the
// slot left (their sandboxes' namespaces outlived it): those the host
// routes an address of the slot's vSwitches to (internal/datapath's routes).
func removeAttachments(n Network) error {
	out, err := exec.Command("ip", "-o", "-4", "route", "show", "table", "all", "proto", strconv.Itoa(int(datapath.RouteProtocol))).Output()
	if err != nil {
		return fmt.Errorf("list instance routes: %w", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line) // 198.19.130.5 dev eci0123456789ab scope link
		if len(f) < 3 || f[1] != "dev" {
			continue
		}
		ip, err := netip.ParseAddr(f[0])
		if err != nil || !(n.VSwitchCIDR.Contains(ip) || n.LargeVSwitchCIDR.IsValid() && n.LargeVSwitchCIDR.Contains(ip)) {
			continue
		}
		if out, err := exec.Command("ip", "link", "del", f[2]).CombinedOutput(); err != nil && linkExists(f[2]) {
			return fmt.Errorf("delete link %s: %w: %s", f[2], err, out)
		}
	}
	return nil
}

func linkExists(name string) bool {
	_, err := os.Stat(filepath.Join("/sys/class/net", name))
	return err == nil
}

// unmountUnder lazily unmounts every mount of this mount namespace below dir
// (deepest first). Mounts made by containerd live in its private namespace and
// die with it; this catches anything that leaked into the host's.
func unmountUnder(dir string) error {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	var targets []string
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) > 4 && (fields[4] == dir || strings.HasPrefix(fields[4], dir+"/")) {
			targets = append(targets, fields[4])
		}
	}
	for i := len(targets) - 1; i >= 0; i-- {
		if err := syscall.Unmount(targets[i], syscall.MNT_DETACH); err != nil && err != syscall.EINVAL && err != syscall.ENOENT {
			return fmt.Errorf("unmount %s: %w", targets[i], err)
		}
	}
	return nil
}
