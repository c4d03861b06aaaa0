// Package resolvconf reads a resolv.conf and merges DNS settings as the
// kubelet does (its parseResolvConf and appendDNSConfig): what the agent
// does with the host's file and a group's settings, and the virtual node
// with a cluster's DNS and a pod's.
package resolvconf

import (
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strings"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// maxSize is the most of a file read (the kubelet's limit).
const maxSize = 10 << 20

// Read reads a resolv.conf as the resolver does: nameservers (at most 3,
// repeats once, loopback ones dropped: inside an instance loopback is the
// instance's own, not systemd-resolved's stub), the last search line (a bare
// one clears it; "." and trailing dots dropped, as the kubelet does), every
// option (the last of a name). domain lines are ignored, as by the kubelet.
func Read(path string) (*apiv1.DNSConfig, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxSize {
		return nil, fmt.Errorf("%s: %d bytes is too large; allowed: at most %d", path, len(data), maxSize)
	}
	cfg := &apiv1.DNSConfig{}
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
				len(cfg.Nameservers) < apiv1.MaxNameservers {
				cfg.Nameservers = appendNew(cfg.Nameservers, ip.String())
			}
		case "search":
			cfg.Searches = nil // the last search line wins
			for _, s := range f[1:] {
				if s = strings.TrimSuffix(s, "."); s != "" {
					cfg.Searches = append(cfg.Searches, s)
				}
			}
		case "options":
			for _, o := range f[1:] {
				name, value, _ := strings.Cut(o, ":")
				cfg.Options = setOption(cfg.Options, apiv1.DNSOption{Name: name, Value: value})
			}
		}
	}
	cfg.Searches = cfg.Searches[:min(len(cfg.Searches), apiv1.MaxDNSSearches)]
	return cfg, nil
}

// Merge is base with add merged in, as the kubelet's appendDNSConfig:
// nameservers and searches appended without repeats, an option replacing
// base's of its name. Either may be nil; the result shares no slice with
// them.
func Merge(base, add *apiv1.DNSConfig) *apiv1.DNSConfig {
	out := &apiv1.DNSConfig{}
	for _, d := range []*apiv1.DNSConfig{base, add} {
		if d == nil {
			continue
		}
		out.Nameservers = appendNew(out.Nameservers, d.Nameservers...)
		out.Searches = appendNew(out.Searches, d.Searches...)
		for _, o := range d.Options {
			out.Options = setOption(out.Options, o)
		}
	}
	return out
}

// appendNew appends the values of add that list has not.
func appendNew(list []string, add ...string) []string {
	for _, v := range add {
		if !slices.Contains(list, v) {
			list = append(list, v)
		}
	}
	return list
}

// setOption replaces the option of o's name in opts, or appends o.
func setOption(opts []apiv1.DNSOption, o apiv1.DNSOption) []apiv1.DNSOption {
	for i := range opts {
		if opts[i].Name == o.Name {
			opts[i] = o
			return opts
		}
	}
	return append(opts, o)
}
