package ndp

import (
	"maps"
	"net/netip"
	"slices"
)

// The ingress filter: an nftables netdev table per uplink whose ingress
// chain drops Neighbor Solicitations for addresses of the uplink's on-link
// prefixes that nobody here answers for, before the IPv6 stack sees them.
//
// The capture filter keeps such a flood out of userspace, but not out of
// the kernel: every multicast solicitation is checked against the
// uplink's multicast list, one entry at a time, and the responder joins a
// solicited-node group per live address, so a flood for random addresses
// of the /64 costs softirq time that grows with the number of containers.
// Dropped at ingress, it costs one set lookup. What passes: solicitations
// for the answered addresses and ranges, for the uplink's own addresses
// (tentative ones too, so duplicate address detection keeps working) and
// for each prefix's subnet-router anycast address, and everything outside
// the on-link prefixes. Packet sockets bound to ETH_P_IPV6, like the
// capture socket, see packets after ingress, so a new address is allowed
// before it is answered or announced.
//
// The table is created with the owner flag: it lives as long as the
// responder's netlink socket, so a crashed or stopped responder never
// leaves a filter that drops solicitations for addresses the host gains
// later.

// IngressFilter is what the ingress filter of one uplink holds.
type IngressFilter struct {
	// Served are the prefixes whose solicitations are filtered: the
	// uplink's on-link prefixes.
	Served []netip.Prefix
	// Ranges pass whole (ranges answered for).
	Ranges []netip.Prefix
	// Allow are the single addresses that pass.
	Allow map[netip.Addr]struct{}
}

// PlanIngress returns the ingress filter for an uplink that answers for
// st's addresses and ranges and holds the addresses own. It filters
// nothing (no Served) when the uplink has no on-link prefix.
func PlanIngress(st *UplinkState, own []netip.Addr) IngressFilter {
	f := IngressFilter{Allow: map[netip.Addr]struct{}{}}
	for _, p := range st.OnLink {
		if p.Addr().Is6() && !p.Addr().Is4In6() && p.Bits() > 0 {
			f.Served = append(f.Served, p.Masked())
			f.Allow[p.Masked().Addr()] = struct{}{} // subnet-router anycast
		}
	}
	slices.SortFunc(f.Served, comparePrefix)
	f.Served = slices.Compact(f.Served)
	f.Ranges = slices.Clone(st.Ranges)
	slices.SortFunc(f.Ranges, comparePrefix)
	for a := range st.Addrs {
		f.Allow[a] = struct{}{}
	}
	for _, a := range own {
		f.Allow[a.WithZone("")] = struct{}{}
	}
	return f
}

// SameRules reports whether f and g need the same rules (they may differ
// in Allow, which is a set updated in place).
func (f IngressFilter) SameRules(g IngressFilter) bool {
	return slices.Equal(f.Served, g.Served) && slices.Equal(f.Ranges, g.Ranges)
}

// Drops reports whether the filter drops a solicitation for target.
func (f IngressFilter) Drops(target netip.Addr) bool {
	if _, ok := f.Allow[target]; ok {
		return false
	}
	for _, p := range f.Ranges {
		if p.Contains(target) {
			return false
		}
	}
	for _, p := range f.Served {
		if p.Contains(target) {
			return true
		}
	}
	return false
}

// allowDiff returns the addresses to add to and delete from have to get
// want, each sorted.
func allowDiff(have, want map[netip.Addr]struct{}) (add, del []netip.Addr) {
	for a := range want {
		if _, ok := have[a]; !ok {
			add = append(add, a)
		}
	}
	for a := range have {
		if _, ok := want[a]; !ok {
			del = append(del, a)
		}
	}
	slices.SortFunc(add, netip.Addr.Compare)
	slices.SortFunc(del, netip.Addr.Compare)
	return add, del
}

func cloneIngress(f IngressFilter) IngressFilter {
	return IngressFilter{Served: slices.Clone(f.Served), Ranges: slices.Clone(f.Ranges), Allow: maps.Clone(f.Allow)}
}
