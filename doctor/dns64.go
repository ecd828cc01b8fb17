package doctor

import (
	"fmt"
	"net/netip"
	"strings"
)

// DNS64 is what the host's resolver said about ipv4only.arpa (RFC 7050)
// and whether the NAT64 prefix it revealed is reachable.
type DNS64 struct {
	// Resolver is the nameserver asked (the first of resolv.conf).
	Resolver string `json:"resolver,omitempty"`
	// Err is why the resolver could not be asked; NoAAAA is set when it
	// answered without AAAA records (no DNS64).
	Err    string `json:"error,omitempty"`
	NoAAAA bool   `json:"no_aaaa,omitempty"`
	// Synthesized are the AAAA records of ipv4only.arpa, Prefixes the
	// NAT64 prefixes found in them.
	Synthesized []netip.Addr   `json:"synthesized,omitempty"`
	Prefixes    []netip.Prefix `json:"prefixes,omitempty"`
	// Via is the route to the first prefix ("eth0 via fe80::1"), RouteErr
	// why there is none.
	Via      string `json:"via,omitempty"`
	RouteErr string `json:"route_error,omitempty"`
	// Probe is the IPv4 host:port connected to through the prefix (the
	// --nat64-probe setting), ProbeErr why that failed.
	Probe    string `json:"probe,omitempty"`
	ProbeErr string `json:"probe_error,omitempty"`
}

// wellKnownIPv4 are ipv4only.arpa's addresses, which a DNS64 embeds in the
// AAAA records it synthesises (RFC 7050).
var wellKnownIPv4 = []netip.Addr{netip.MustParseAddr("192.0.0.170"), netip.MustParseAddr("192.0.0.171")}

// nat64Lengths are the prefix lengths of RFC 6052, most common first.
var nat64Lengths = []int{96, 64, 56, 48, 40, 32}

// v4Octets are the positions of the IPv4 address's four octets inside the
// IPv6 address for each prefix length (RFC 6052 section 2.2; octet 8, the
// "u" octet, is always skipped).
var v4Octets = map[int][4]int{
	32: {4, 5, 6, 7},
	40: {5, 6, 7, 9},
	48: {6, 7, 9, 10},
	56: {7, 9, 10, 11},
	64: {9, 10, 11, 12},
	96: {12, 13, 14, 15},
}

// NAT64Prefix finds the NAT64 prefix in a synthesised AAAA record of
// ipv4only.arpa: the RFC 6052 length at which it embeds 192.0.0.170 or
// 192.0.0.171 (RFC 7050 section 3).
func NAT64Prefix(a netip.Addr) (netip.Prefix, bool) {
	if !a.Is6() || a.Is4In6() {
		return netip.Prefix{}, false
	}
	b := a.As16()
	for _, l := range nat64Lengths {
		pos := v4Octets[l]
		v4 := netip.AddrFrom4([4]byte{b[pos[0]], b[pos[1]], b[pos[2]], b[pos[3]]})
		if l != 96 && b[8] != 0 {
			continue
		}
		for _, w := range wellKnownIPv4 {
			if v4 == w {
				p, _ := a.Prefix(l)
				return p, true
			}
		}
	}
	return netip.Prefix{}, false
}

// Embed is the IPv6 address of IPv4 address v4 behind NAT64 prefix p
// (RFC 6052).
func Embed(p netip.Prefix, v4 netip.Addr) (netip.Addr, bool) {
	pos, ok := v4Octets[p.Bits()]
	if !ok || !p.Addr().Is6() || !v4.Is4() {
		return netip.Addr{}, false
	}
	b := p.Masked().Addr().As16()
	f := v4.As4()
	for i, o := range pos {
		b[o] = f[i]
	}
	return netip.AddrFrom16(b), true
}

func (f Facts) evaluateDNS64(add func(check string, s Status, summary, meaning, fix string)) {
	d := f.DNS64
	const fixDNS64 = "point /etc/resolv.conf (containers inherit it through the engine) at a DNS64 resolver whose NAT64 this host reaches: the provider's if it runs one, else a public DNS64+NAT64 service; or run NAT64 (Jool, tayga) with DNS64 (unbound, bind9 dns64) yourself"
	at := ""
	if d.Resolver != "" {
		at = " at " + d.Resolver
	}
	switch {
	case d.Resolver == "" && d.Err == "":
		// not gathered
	case d.NoAAAA:
		add("dns64", Warn, "the resolver"+at+" has no AAAA for ipv4only.arpa: no DNS64",
			"destinations with only IPv4 (github.com, ghcr.io, many APIs) have no IPv6 address: from this IPv6-only host and its containers they fail with 'network unreachable' or 'no address'",
			fixDNS64)
	case d.Err != "":
		add("dns64", Warn, "could not ask the resolver"+at+" for ipv4only.arpa: "+d.Err,
			"DNS64 is unknown; without it IPv4-only destinations fail from containers", "check /etc/resolv.conf and that its nameserver answers over IPv6")
	case len(d.Prefixes) == 0:
		add("dns64", Warn, fmt.Sprintf("ipv4only.arpa has AAAA %s%s, but no NAT64 prefix of RFC 6052 is in it", joinAddrs(d.Synthesized), at),
			"the resolver synthesises addresses in a form RFC 7050 cannot read; whether IPv4-only destinations work is unknown", "ask the resolver's operator which NAT64 prefix it uses")
	case d.RouteErr != "":
		add("dns64", Fail, fmt.Sprintf("DNS64%s gives NAT64 prefix %s, but there is no route to it: %s", at, d.Prefixes[0], d.RouteErr),
			"IPv4-only destinations resolve to addresses nothing reaches: connections hang instead of failing fast",
			"add the route the provider documents for its NAT64, or use a resolver whose NAT64 is reachable ("+fixDNS64+")")
	case d.ProbeErr != "":
		add("dns64", Fail, fmt.Sprintf("DNS64%s gives NAT64 prefix %s via %s, but %s does not answer through it: %s", at, d.Prefixes[0], d.Via, d.Probe, d.ProbeErr),
			"IPv4-only destinations resolve, but the NAT64 does not carry the traffic", "check the NAT64 (the provider's status page, or your Jool/tayga), or use another DNS64+NAT64")
	default:
		probe := ""
		if d.Probe != "" {
			probe = ", " + d.Probe + " answers through it"
		}
		var ps []string
		for _, p := range d.Prefixes {
			ps = append(ps, p.String())
		}
		add("dns64", OK, fmt.Sprintf("DNS64%s: NAT64 prefix %s via %s%s", at, strings.Join(ps, ", "), d.Via, probe), "", "")
	}
}
