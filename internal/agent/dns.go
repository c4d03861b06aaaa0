package agent

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// A group's resolv.conf, as the kubelet makes a pod's: the group's own DNS
// settings (a virtual node's cluster DNS, or dnsPolicy None's dnsConfig),
// else the host's as --resolv-conf gives them (dnsPolicy Default; empty:
// none). The runtime never picks one itself: given no DNS settings, or empty
// ones, containerd copies the machine's /etc/resolv.conf into the sandbox,
// and an instance would send its lookups to the machine's own resolver. A
// group with nothing gets a resolv.conf with no nameserver (its resolver
// then asks the instance's own loopback).

// Limits of the resolver, as the kubelet applies them.
const (
	maxNameservers = 3
	maxSearches    = 32
)

// hostDNS is what --resolv-conf says: the DNS settings of groups that bring
// none. Empty path: none.
func readResolvConf(path string) (*runtimeapi.DNSConfig, error) {
	cfg := &runtimeapi.DNSConfig{}
	if path == "" {
		return cfg, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--resolv-conf: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "nameserver":
			if len(cfg.Servers) < maxNameservers {
				cfg.Servers = append(cfg.Servers, f[1])
			}
		case "search":
			cfg.Searches = f[1:] // the last search line wins, as the resolver reads it
		case "options":
			cfg.Options = append(cfg.Options, f[1:]...)
		}
	}
	if len(cfg.Searches) > maxSearches {
		cfg.Searches = cfg.Searches[:maxSearches]
	}
	return cfg, nil
}

// dnsConfigOf is the CRI DNS settings of group g: its own, else the host's;
// never empty (see above).
func (a *Agent) dnsConfigOf(g *apiv1.ContainerGroup) *runtimeapi.DNSConfig {
	out := &runtimeapi.DNSConfig{}
	if d := g.Spec.DNSConfig; d != nil {
		out.Servers, out.Searches = d.Nameservers, d.Searches
		for _, o := range d.Options {
			opt := o.Name
			if o.Value != "" {
				opt += ":" + o.Value
			}
			out.Options = append(out.Options, opt)
		}
	} else if h := a.hostDNS; h != nil {
		out.Servers, out.Searches, out.Options = h.Servers, h.Searches, h.Options
	}
	if len(out.Servers) == 0 && len(out.Searches) == 0 && len(out.Options) == 0 {
		// Something the runtime writes, so that it does not copy the
		// machine's own resolv.conf: the resolver's default, spelled out.
		out.Options = []string{"ndots:1"}
	}
	return out
}
