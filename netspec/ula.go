package netspec

import "net/netip"

// The one place that decides what a unique local address is (RFC 4193).
// Two rules, kept apart on purpose:
//
//   - fc00::/7 is every unique local address: not routed on the internet.
//     A prefix or address in it is never public (IsPublic: PUBLIC_PREFIX,
//     the uplink's global addresses; what migrate calls a nat network).
//   - fd00::/8 is its locally assigned half, the one a host may pick itself
//     with a random 40-bit global ID: the only accepted ULA_PREFIX.
//     fc00::/8 is left to a central allocator RFC 4193 never defined.
var (
	ula      = netip.MustParsePrefix("fc00::/7")
	localULA = netip.MustParsePrefix("fd00::/8")
)

// IsULA reports whether a is a unique local address (fc00::/7). An
// IPv4-mapped address never is.
func IsULA(a netip.Addr) bool {
	return a.Is6() && !a.Is4In6() && ula.Contains(a.WithZone(""))
}

// IsPublic reports whether a is an IPv6 address the internet may route:
// global unicast (not link-local, multicast, loopback or unspecified), not
// a ULA and not IPv4-mapped. PUBLIC_PREFIX and the uplink's global
// addresses are public.
func IsPublic(a netip.Addr) bool {
	return a.Is6() && !a.Is4In6() && a.IsGlobalUnicast() && !IsULA(a)
}

// IsLocalULA reports whether p lies inside fd00::/8, the locally assigned
// ULAs (a prefix of /8 or longer whose address is in fd00::/8).
func IsLocalULA(p netip.Prefix) bool {
	return p.IsValid() && p.Bits() >= localULA.Bits() && localULA.Contains(p.Addr())
}
