package agent

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/log"
	"github.com/eci-dev/eci/internal/resolvconf"
)

// A group's resolv.conf, as the kubelet makes a pod's: dnsPolicy None, the
// group's DNSConfig alone (a virtual node's ClusterFirst arrives so,
// composed); Default, the host's DNS settings (--resolv-conf, as the
// kubelet's flag) with the group's DNSConfig merged in, as the kubelet's
// appendDNSConfig does; no policy, the DNSConfig alone if there is one,
// else the host's (what groups stored before the field had). The runtime is
// never left to pick: given no DNS settings, containerd copies the machine's own /etc/resolv.conf into the
// sandbox (and 1.x does so for empty ones too), and an instance would send
// its lookups to the machine's resolver. A group with nothing gets a
// resolv.conf with no nameserver (its resolver then asks the instance's own
// loopback).
//
// What --resolv-conf says (read and merged by internal/resolvconf) is read
// again when the file changes (the kubelet reads it for every pod); a read
// that fails keeps the last good one.

// hostResolv is --resolv-conf, read when it changes.
type hostResolv struct {
	path string

	mu      sync.Mutex
	cfg     *apiv1.DNSConfig
	modTime time.Time
	size    int64
	lastErr string // warned once until it changes
}

// load reads the file now: at the agent's start, where an unreadable file
// is an error.
func (h *hostResolv) load() error {
	if h.path == "" {
		h.cfg = &apiv1.DNSConfig{}
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
func (h *hostResolv) get(ctx context.Context) *apiv1.DNSConfig {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.path == "" {
		return h.cfg
	}
	fi, err := os.Stat(h.path)
	if err == nil && (!fi.ModTime().Equal(h.modTime) || fi.Size() != h.size) {
		var cfg *apiv1.DNSConfig
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

// readResolvConf reads --resolv-conf (resolvconf.Read).
func readResolvConf(path string) (*apiv1.DNSConfig, error) {
	cfg, err := resolvconf.Read(path)
	if err != nil {
		return nil, fmt.Errorf("--resolv-conf: %w", err)
	}
	return cfg, nil
}

// dnsConfigOf is the CRI DNS settings of group g; never empty (see above).
// Reconciles call it only to make a sandbox: the file is not looked at
// otherwise.
func (a *Agent) dnsConfigOf(ctx context.Context, g *apiv1.ContainerGroup) *runtimeapi.DNSConfig {
	var base *apiv1.DNSConfig
	if alone := g.Spec.DNSPolicy == apiv1.DNSNone || (g.Spec.DNSPolicy == "" && g.Spec.DNSConfig != nil); !alone {
		base = a.hostDNS.get(ctx)
	}
	d := resolvconf.Merge(base, g.Spec.DNSConfig)
	out := &runtimeapi.DNSConfig{
		Servers:  d.Nameservers[:min(len(d.Nameservers), apiv1.MaxNameservers)],
		Searches: d.Searches[:min(len(d.Searches), apiv1.MaxDNSSearches)],
	}
	for _, o := range d.Options {
		opt := o.Name
		if o.Value != "" {
			opt += ":" + o.Value
		}
		out.Options = append(out.Options, opt)
	}
	if len(out.Servers) == 0 && len(out.Searches) == 0 && len(out.Options) == 0 {
		// Something the runtime writes, so that it never copies the
		// machine's own resolv.conf: the resolver's default, spelled out.
		out.Options = []string{"ndots:1"}
	}
	return out
}
