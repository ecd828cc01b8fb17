package link

import (
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// addrPrefix converts a netlink address to an IPv6 address with its
// prefix length, host bits kept.
func addrPrefix(a netlink.Addr) (netip.Prefix, bool) {
	if a.IPNet == nil {
		return netip.Prefix{}, false
	}
	return netipPrefix(a.IP, a.Mask)
}

func netipPrefix(ip net.IP, mask net.IPMask) (netip.Prefix, bool) {
	addr, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, bits := mask.Size()
	if bits == 0 {
		return netip.Prefix{}, false
	}
	if addr.Is4In6() && bits == 32 {
		addr = addr.Unmap()
	}
	return netip.PrefixFrom(addr, ones), true
}

// ipNet converts p to the *net.IPNet netlink wants, host bits kept.
func ipNet(p netip.Prefix) *net.IPNet {
	bits := 128
	if p.Addr().Is4() {
		bits = 32
	}
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), bits)}
}
