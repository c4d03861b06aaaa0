package agent

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/log"
)

// A group's resolv.conf, as the kubelet makes a pod's: dnsPolicy None, the
// group's DNSConfig alone (a virtual node's ClusterFirst arrives so,
// composed); Default, the host's DNS settings (--resolv-conf, as the
// kubelet's flag) with the group's DNSConfig merged in, as the kubelet's
// appendDNSConfig does; no policy, the DNSConfig alone if there is one,
// else the host's (what groups stored before the field had). The runtime is never left to pick: given no DNS
// settings, containerd copies the machine's own /etc/resolv.conf into the
// sandbox (and 1.x does so for empty ones too), and an instance would send
// its lookups to the machine's resolver. A group with nothing gets a
// resolv.conf with no nameserver (its resolver then asks the instance's own
// loopback).
//
// What --resolv-conf says is read again when the file changes (the kubelet
// reads it for every pod); a read that fails keeps the last good one.
// Loopback nameservers in it (systemd-resolved's 127.0.0.53 stub) are
// dropped, as Docker does: inside an instance, loopback is the instance's.

// Limits of the resolver, as the kubelet applies them.
const (
	maxNameservers = 3
	maxSearches    = 32
	maxResolvConf  = 10 << 20 // the kubelet's read limit
)

// hostResolv is --resolv-conf, read when it changes.
type hostResolv struct {
	path string

	mu      sync.Mutex
	cfg     *runtimeapi.DNSConfig
	modTime time.Time
	size    int64
	lastErr string // warned once until it changes
}

// load reads the file now: at the agent's start, where an unreadable file
// is an error.
func (h *hostResolv) load() error {
	if h.path == "" {
		h.cfg = &runtimeapi.DNSConfig{}
		return nil
	}
	fi, err := os.Stat(h.path)
	if err != nil {
		return fmt.Errorf("--resolv-conf: %w", err)
	}
	cfg, err := readResolvConf(h.path)
	if err != nil {
		return err
	}
	h.cfg, h.modTime, h.size = cfg, fi.ModTime(), fi.Size()
	return nil
}

// get is the host's DNS settings, read again if the file changed.
func (h *hostResolv) get(ctx context.Context) *runtimeapi.DNSConfig {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.path == "" {
		return h.cfg
	}
	fi, err := os.Stat(h.path)
	if err == nil && (!fi.ModTime().Equal(h.modTime) || fi.Size() != h.size) {
		var cfg *runtimeapi.DNSConfig
		if cfg, err = readResolvConf(h.path); err == nil {
			h.cfg, h.modTime, h.size = cfg, fi.ModTime(), fi.Size()
		}
	}
	switch {
	case err != nil && err.Error() != h.lastErr:
		log.G(ctx).Warn("--resolv-conf can't be read: groups get what it said last", "err", err)
		h.lastErr = err.Error()
	case err == nil:
		h.lastErr = ""
	}
	return h.cfg
}

// readResolvConf reads a resolv.conf as the resolver does: nameservers (at
// most 3, loopback ones dropped), the last search line (a bare one clears
// it; "." and trailing dots dropped, as the kubelet does), options.
func readResolvConf(path string) (*runtimeapi.DNSConfig, error) {
	cfg := &runtimeapi.DNSConfig{}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--resolv-conf: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxResolvConf+1))
	if err != nil {
		return nil, fmt.Errorf("--resolv-conf: %w", err)
	}
	if len(data) > maxResolvConf {
		return nil, fmt.Errorf("--resolv-conf %s: %d bytes is too large; allowed: at most %d", path, len(data), maxResolvConf)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "nameserver":
			if ip, err := netip.ParseAddr(f[len(f)-1]); err == nil && len(f) == 2 && !ip.Unmap().IsLoopback() &&
				len(cfg.Servers) < maxNameservers && !slices.Contains(cfg.Servers, ip.String()) {
				cfg.Servers = append(cfg.Servers, ip.String())
			}
		case "search":
			cfg.Searches = nil // the last search line wins
			for _, s := range f[1:] {
				if s = strings.TrimSuffix(s, "."); s != "" {
					cfg.Searches = append(cfg.Searches, s)
				}
			}
		case "options":
			for _, o := range f[1:] { // one of a name, the last, as the resolver takes it
				name, value, _ := strings.Cut(o, ":")
				cfg.Options = setOption(cfg.Options, apiv1.DNSOption{Name: name, Value: value})
			}
		}
	}
	if len(cfg.Searches) > maxSearches {
		cfg.Searches = cfg.Searches[:maxSearches]
	}
	return cfg, nil
}

// dnsConfigOf is the CRI DNS settings of group g; never empty (see above).
func (a *Agent) dnsConfigOf(ctx context.Context, g *apiv1.ContainerGroup) *runtimeapi.DNSConfig {
	out := &runtimeapi.DNSConfig{}
	alone := g.Spec.DNSPolicy == apiv1.DNSNone || (g.Spec.DNSPolicy == "" && g.Spec.DNSConfig != nil)
	if !alone {
		h := a.hostDNS.get(ctx)
		out.Servers = append(out.Servers, h.Servers...)
		out.Searches = append(out.Searches, h.Searches...)
		out.Options = append(out.Options, h.Options...)
	}
	if d := g.Spec.DNSConfig; d != nil {
		out.Servers = appendNew(out.Servers, d.Nameservers...)
		out.Searches = appendNew(out.Searches, d.Searches...)
		for _, o := range d.Options {
			out.Options = setOption(out.Options, o)
		}
	}
	out.Servers = out.Servers[:min(len(out.Servers), maxNameservers)]
	out.Searches = out.Searches[:min(len(out.Searches), maxSearches)]
	if len(out.Servers) == 0 && len(out.Searches) == 0 && len(out.Options) == 0 {
		// Something the runtime writes, so that it never copies the
		// machine's own resolv.conf: the resolver's default, spelled out.
		out.Options = []string{"ndots:1"}
	}
	return out
}

// appendNew appends the values of add that list has not.
func appendNew(list []string, add ...string) []string {
	for _, v := range add {
		found := false
		for _, have := range list {
			found = found || have == v
		}
		if !found {
			list = append(list, v)
		}
	}
	return list
}

// setOption replaces the option of o's name in opts, or appends o.
func setOption(opts []string, o apiv1.DNSOption) []string {
	v := o.Name
	if o.Value != "" {
		v += ":" + o.Value
	}
	for i, have := range opts {
		if name, _, _ := strings.Cut(have, ":"); name == o.Name {
			opts[i] = v
			return opts
		}
	}
	return append(opts, v)
}
