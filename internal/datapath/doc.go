// Package datapath is the host side of an instance's network: the veth
// pair that is the instance's interface, its address and routes inside the
// sandbox, and the host's /32 route back to it (veth.go). The host routes
// every packet of an instance, as a cloud's vSwitch does: there is no
// bridge, so an instance shares no L2 segment with another, sees only its
// gateway on its link (ARP or not, it can take over nobody's address), and
// strict reverse-path filtering drops what it sends from an address that
// is not its own (docs/networking.md).
package datapath
