package vservice

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// UDP has no connection to end: a client that keeps sending to a virtual
// port keeps the conntrack entry, and so the backend, it was first given,
// even after that backend left the port (a DNS server replaced). As
// kube-proxy does, the entries of a UDP virtual port that lead to a backend
// it no longer has are deleted after the sync that removed it: the next
// datagram picks a backend again.

// udpFlows are a ruleset's UDP virtual ports, "table|ip|port", with their
// backends ("ip:port").
type udpFlows map[string]map[string]bool

func udpOf(tables []Table) udpFlows {
	out := udpFlows{}
	for _, t := range tables {
		if len(t.Clients) == 0 {
			continue
		}
		for _, vs := range t.Services {
			for _, p := range vs.Spec.Ports {
				if p.Protocol != "UDP" {
					continue
				}
				key := fmt.Sprintf("%s|%s|%d", t.Key, vs.Spec.IP, p.Port)
				out[key] = map[string]bool{}
				for _, b := range p.Backends {
					out[key][net.JoinHostPort(b.IP, strconv.Itoa(int(b.Port)))] = true
				}
			}
		}
	}
	return out
}

// staleFlows are the conntrack filters of the UDP flows that were in before
// and lead nowhere in after: a backend gone from a port, or the port gone.
func staleFlows(before, after udpFlows) []netlink.CustomConntrackFilter {
	var out []netlink.CustomConntrackFilter
	for key, backends := range before {
		_, ip, port := splitFlowKey(key)
		for be := range backends {
			if after[key][be] {
				continue
			}
			host, _, _ := net.SplitHostPort(be)
			f := &netlink.ConntrackFilter{}
			if f.AddProtocol(unix.IPPROTO_UDP) != nil || f.AddIP(netlink.ConntrackOrigDstIP, net.ParseIP(ip)) != nil ||
				f.AddPort(netlink.ConntrackOrigDstPort, uint16(port)) != nil || f.AddIP(netlink.ConntrackReplySrcIP, net.ParseIP(host)) != nil {
				continue
			}
			out = append(out, f)
		}
	}
	return out
}

func splitFlowKey(key string) (table, ip string, port int) {
	parts := strings.Split(key, "|")
	port, _ = strconv.Atoi(parts[2])
	return parts[0], parts[1], port
}

// FlowsError is a sync whose rules were written but whose stale UDP flows
// were not all deleted (they are tried again with the next sync).
type FlowsError struct{ Err error }

func (e *FlowsError) Error() string {
	return "conntrack: delete the flows to UDP backends that went: " + e.Err.Error()
}

func (e *FlowsError) Unwrap() error { return e.Err }

// clearFlows deletes the conntrack entries the filters match. An
// interrupted dump (the table changed while it was read) may have left
// some: the caller tries them again.
func clearFlows(filters []netlink.CustomConntrackFilter) error {
	if len(filters) == 0 {
		return nil
	}
	if _, err := netlink.ConntrackDeleteFilters(netlink.ConntrackTable, unix.AF_INET, filters...); err != nil {
		return &FlowsError{Err: err}
	}
	return nil
}
