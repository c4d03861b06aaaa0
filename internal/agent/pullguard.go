package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
)

// A registry's transport in containerd's hosts directory is the host's: a
// file saying "plain HTTP" or "skip TLS verification" applies to every pull
// from that registry, whoever asks. So a group's wish never outlives its own
// pull: the agent pulls one image at a time per registry, writes the
// group's setting just before its pull and removes it just after, and no
// other group's pull runs in between. An image pulled without TLS checks may
// not be what the registry holds (anyone on the path could have served it):
// it is marked, and a group that did not ask for that transport pulls it
// again over verified TLS before it runs (a tampered copy is never another
// group's image). The marks survive an agent restart.
//
// Registries on the host's loopback or link-local addresses (localhost,
// 127.0.0.0/8, ::1, 169.254.0.0/16, fe80::/10: the host's own services, a
// cloud's metadata service) are refused: the runtime would connect to them
// for a tenant. The operator allows a local registry by name
// (--allowed-local-registry).

// pullGuard orders pulls per registry and remembers images pulled without
// verified TLS. Pulls over the host's own transport share a registry's lock
// (they run together); a pull that changes the transport holds it alone.
type pullGuard struct {
	mu      sync.Mutex
	locks   map[string]*sync.RWMutex // by registry
	tainted map[string]bool          // image references pulled over plain HTTP or without TLS checks
	file    string                   // where tainted is kept
}

func newPullGuard(stateDir string) *pullGuard {
	g := &pullGuard{locks: map[string]*sync.RWMutex{}, tainted: map[string]bool{}}
	if stateDir != "" {
		g.file = filepath.Join(stateDir, "images-pulled-unverified.json")
		if data, err := os.ReadFile(g.file); err == nil {
			var refs []string
			if json.Unmarshal(data, &refs) == nil {
				for _, r := range refs {
					g.tainted[r] = true
				}
			}
		}
	}
	return g
}

// registryLock is registry reg's lock.
func (g *pullGuard) registryLock(reg string) *sync.RWMutex {
	g.mu.Lock()
	defer g.mu.Unlock()
	l, ok := g.locks[reg]
	if !ok {
		l = &sync.RWMutex{}
		g.locks[reg] = l
	}
	return l
}

// lock takes registry reg for one pull: alone when it changes the
// registry's transport, shared otherwise.
func (g *pullGuard) lock(reg string, alone bool) func() {
	l := g.registryLock(reg)
	if alone {
		l.Lock()
		return l.Unlock
	}
	l.RLock()
	return l.RUnlock
}

// tryLock takes registry reg alone if no pull holds it.
func (g *pullGuard) tryLock(reg string) (func(), bool) {
	l := g.registryLock(reg)
	if !l.TryLock() {
		return nil, false
	}
	return l.Unlock, true
}

// isTainted tells whether image was last pulled without verified TLS.
func (g *pullGuard) isTainted(image string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.tainted[imageKey(image)]
}

// mark records how image was last pulled (tainted: without verified TLS).
func (g *pullGuard) mark(image string, tainted bool) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	key := imageKey(image)
	if g.tainted[key] == tainted {
		return nil
	}
	if tainted {
		g.tainted[key] = true
	} else {
		delete(g.tainted, key)
	}
	if g.file == "" {
		return nil
	}
	refs := make([]string, 0, len(g.tainted))
	for r := range g.tainted {
		refs = append(refs, r)
	}
	slices.Sort(refs)
	data, _ := json.Marshal(refs)
	if err := os.MkdirAll(filepath.Dir(g.file), 0o700); err != nil {
		return err
	}
	tmp := g.file + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, g.file)
}

// imageKey is an image reference as the runtime names it.
func imageKey(image string) string {
	if ref, err := name.ParseReference(image, name.WeakValidation); err == nil {
		return ref.Name()
	}
	return image
}

// checkLocalRegistry refuses a registry on the host's own addresses
// (loopback, link-local, unspecified, or an address of one of the host's
// interfaces: the node's, a vSwitch gateway on the bridge) unless the
// operator allowed it by name ("host" or "host:port"). A name that does not
// resolve is refused too (the check must not fail open). The runtime
// resolves the name again when it connects: a name whose answers change
// between the two (DNS rebinding) is not caught here; a host that must be
// sure filters the runtime's connections to its own addresses.
func (a *Agent) checkLocalRegistry(ctx context.Context, reg string) error {
	host := reg
	if h, _, err := net.SplitHostPort(reg); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if slices.Contains(a.cfg.AllowedLocalRegistries, reg) || slices.Contains(a.cfg.AllowedLocalRegistries, host) {
		return nil
	}
	if _, mirrored := a.cfg.RegistryMirrors[reg]; mirrored || a.operatorConfigured(reg) {
		return nil // the runtime goes where the operator said, not to reg
	}
	var addrs []netip.Addr
	switch ip, err := netip.ParseAddr(host); {
	case err == nil:
		addrs = []netip.Addr{ip}
	case strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost"):
		addrs = []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	default:
		ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		if err != nil || len(ips) == 0 {
			return fmt.Errorf("registry %s: its name does not resolve on this host (%v): refused until it does", reg, err)
		}
		addrs = ips
	}
	own := hostAddrs()
	for _, ip := range addrs {
		ip = ip.Unmap()
		if hostOwnAddr(ip, own) {
			return fmt.Errorf("registry %s is on this host's own or link-local addresses (%s): refused, the runtime would reach the host's services for a tenant (the operator allows a local registry with --allowed-local-registry)", reg, ip)
		}
	}
	return nil
}

// hostAddrs are the addresses of the host's interfaces.
func hostAddrs() map[netip.Addr]bool {
	out := map[netip.Addr]bool{}
	ifaddrs, err := net.InterfaceAddrs()
	if err != nil {
		return out
	}
	for _, a := range ifaddrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out[p.Addr().Unmap()] = true
		}
	}
	return out
}

var errNoRegistryDir = errors.New("plainHttpRegistries/insecureRegistries: this host's agent has no --registry-config-dir")

// operatorConfigured tells whether the operator's own hosts.toml (not one
// the agent wrote) says where the runtime pulls reg from.
func (a *Agent) operatorConfigured(reg string) bool {
	path, ok := a.registryHostsFile(reg)
	if !ok {
		return false
	}
	cur, err := os.ReadFile(path)
	return err == nil && !bytes.HasPrefix(cur, []byte(markGroup))
}
