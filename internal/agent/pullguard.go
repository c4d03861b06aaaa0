package agent

import (
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
// verified TLS.
type pullGuard struct {
	mu      sync.Mutex
	locks   map[string]*sync.Mutex // by registry
	active  map[string]bool        // registries whose transport a pull has changed now
	tainted map[string]bool        // image references pulled over plain HTTP or without TLS checks
	file    string                 // where tainted is kept
}

func newPullGuard(stateDir string) *pullGuard {
	g := &pullGuard{locks: map[string]*sync.Mutex{}, active: map[string]bool{}, tainted: map[string]bool{}}
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

// lock takes registry reg for one pull.
func (g *pullGuard) lock(reg string) func() {
	g.mu.Lock()
	l, ok := g.locks[reg]
	if !ok {
		l = &sync.Mutex{}
		g.locks[reg] = l
	}
	g.mu.Unlock()
	l.Lock()
	return l.Unlock
}

func (g *pullGuard) setActive(reg string, on bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if on {
		g.active[reg] = true
	} else {
		delete(g.active, reg)
	}
}

func (g *pullGuard) isActive(reg string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.active[reg]
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

// checkLocalRegistry refuses a registry on the host's loopback or
// link-local addresses unless the operator allowed it by name.
func (a *Agent) checkLocalRegistry(ctx context.Context, reg string) error {
	if slices.Contains(a.cfg.AllowedLocalRegistries, reg) {
		return nil
	}
	host := reg
	if h, _, err := net.SplitHostPort(reg); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	var addrs []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{ip}
	} else if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		addrs = []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	} else if ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host); err == nil {
		addrs = ips
	}
	for _, ip := range addrs {
		ip = ip.Unmap()
		if ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsUnspecified() {
			return fmt.Errorf("registry %s is on the host's own or link-local addresses (%s): refused, the runtime would reach the host's services for a tenant (the operator allows a local registry with --allowed-local-registry)", reg, ip)
		}
	}
	return nil
}

var errNoRegistryDir = errors.New("plainHttpRegistries/insecureRegistries: this host's agent has no --registry-config-dir")
