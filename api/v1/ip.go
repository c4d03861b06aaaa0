package v1

import "net/netip"

func parseIP(s string) (netip.Addr, error) { return netip.ParseAddr(s) }
