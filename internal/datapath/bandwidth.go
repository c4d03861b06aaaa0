package datapath

import (
	"errors"
	"fmt"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Bandwidth limits an instance's traffic, in bits per second (0: no
// limit): Ingress what it receives, Egress what it sends.
type Bandwidth struct {
	Ingress, Egress uint64
}

// ShaperPrefix begins the name of the IFB device that shapes an
// instance's egress (the rest is its host end's).
const ShaperPrefix = "ecb-"

// shaperName is the IFB device of host end link.
func shaperName(link string) string { return ShaperPrefix + strings.TrimPrefix(link, InterfacePrefix) }

// shapeLatency bounds how long a packet may wait in a token bucket (as the
// CNI bandwidth plugin's).
const shapeLatency = 25 // ms

// setBandwidth shapes an instance's traffic on its host end link, as the
// CNI bandwidth plugin does, where the instance can't undo it: what the
// host sends into the link (the instance's ingress) through a token bucket
// on the link; what arrives from it (its egress) redirected to an IFB
// device of its own with a token bucket.
func setBandwidth(link netlink.Link, bw Bandwidth) error {
	if bw.Ingress > 0 {
		if err := tokenBucket(link.Attrs().Index, bw.Ingress); err != nil {
			return fmt.Errorf("ingress bandwidth of %s: %w", link.Attrs().Name, err)
		}
	}
	if bw.Egress == 0 {
		return nil
	}
	name := shaperName(link.Attrs().Name)
	_ = removeShaper(name) // a retried attach's
	if err := netlink.LinkAdd(&netlink.Ifb{LinkAttrs: netlink.LinkAttrs{Name: name, TxQLen: 1000}}); err != nil {
		return fmt.Errorf("egress shaper %s: %w", name, err)
	}
	ifb, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("egress shaper %s: %w", name, err)
	}
	if err := netlink.LinkSetUp(ifb); err != nil {
		return fmt.Errorf("%s up: %w", name, err)
	}
	if err := tokenBucket(ifb.Attrs().Index, bw.Egress); err != nil {
		return fmt.Errorf("egress bandwidth of %s: %w", link.Attrs().Name, err)
	}
	ingress := &netlink.Ingress{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: link.Attrs().Index, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_INGRESS}}
	if err := netlink.QdiscAdd(ingress); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("ingress qdisc of %s: %w", link.Attrs().Name, err)
	}
	filter := &netlink.U32{
		FilterAttrs: netlink.FilterAttrs{LinkIndex: link.Attrs().Index, Parent: ingress.Handle, Priority: 1, Protocol: unix.ETH_P_ALL},
		ClassId:     netlink.MakeHandle(1, 1),
		Actions:     []netlink.Action{netlink.NewMirredAction(ifb.Attrs().Index)},
	}
	if err := netlink.FilterAdd(filter); err != nil {
		return fmt.Errorf("redirect %s to %s: %w", link.Attrs().Name, name, err)
	}
	return nil
}

// tokenBucket puts a token bucket filter of rate bits/s at the root of
// link index, with a burst of 100 ms of it (32 KiB to 16 MiB).
func tokenBucket(index int, rate uint64) error {
	bytes := rate / 8
	burst := min(max(bytes/10, 32<<10), 16<<20)
	qdisc := &netlink.Tbf{
		QdiscAttrs: netlink.QdiscAttrs{LinkIndex: index, Handle: netlink.MakeHandle(1, 0), Parent: netlink.HANDLE_ROOT},
		Rate:       bytes,
		Buffer:     ticks(uint32(float64(burst) * float64(netlink.TIME_UNITS_PER_SEC) / float64(bytes))),
		Limit:      uint32(bytes*shapeLatency/1000 + burst),
	}
	return netlink.QdiscReplace(qdisc)
}

func ticks(usec uint32) uint32 { return uint32(float64(usec) * float64(netlink.TickInUsec())) }

// removeShaper deletes an IFB device (gone already: no error).
func removeShaper(name string) error {
	l, err := netlink.LinkByName(name)
	var notFound netlink.LinkNotFoundError
	if errors.As(err, &notFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("egress shaper %s: %w", name, err)
	}
	if err := netlink.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}

// SweepShapers deletes the egress shapers whose instance's link is gone
// (a sandbox deleted while the agent was down).
func SweepShapers() error {
	links, err := netlink.LinkList()
	if err != nil {
		return fmt.Errorf("the host's links: %w", err)
	}
	have := map[string]bool{}
	for _, l := range links {
		have[l.Attrs().Name] = true
	}
	var errs []error
	for _, l := range links {
		name := l.Attrs().Name
		if l.Type() == "ifb" && strings.HasPrefix(name, ShaperPrefix) && !have[InterfacePrefix+strings.TrimPrefix(name, ShaperPrefix)] {
			errs = append(errs, removeShaper(name))
		}
	}
	return errors.Join(errs...)
}
