package ndpproto

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
// In native mode the filter also answers: a Neighbor Solicitation of the
// common shape (no extension headers, hop limit 255, a specified source,
// exactly one option, the Source Link-Layer Address) for an answered
// address, sent to the address or its solicited-node group, is turned into
// the Neighbor Advertisement the capture loop would send (the same bytes)
// and sent back out of the uplink, within the same budgets: the default
// router's reserve (its address and its MAC), a meter per solicitor whose
// overflow bucket takes the sources a full meter cannot hold, and a
// limit in all; an option naming no unicast MAC is not answered. The
// router's probes are answered in the softirq that received them,
// without waking a process. nftables cannot verify the ICMPv6 checksum:
// the answer, made by incremental updates, carries the solicitation's
// error, so a bad one yields an advertisement every receiver drops,
// charged to the sender's shared budgets (docs/ndp.md). Every other solicitation for an
// answered address (duplicate address detection, no or other options)
// passes to the capture loop as before.
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
	// Answer is how the filter answers in the kernel; nil: it does not.
	Answer *KernelAnswer
	// Answered are the addresses it answers for (with Answer).
	Answered map[netip.Addr]struct{}
}

// KernelAnswer is what the ingress filter's advertisements say and the
// budgets it answers within.
type KernelAnswer struct {
	// MAC is the uplink's: the Target Link-Layer Address option and the
	// frame's source. Solicitations from it are not answered.
	MAC [6]byte
	// Router sets the Router flag.
	Router bool
	// Source is the advertisements' IPv6 source; the zero Addr means the
	// target (DecideConfig.SourceFor).
	Source netip.Addr
	// SourceRate and TotalRate are answers per second to one solicitor
	// (burst twice) and in all (burst the same); 0 means no limit. The
	// solicitors the meter cannot hold (it is full) share one more
	// budget of SourceRate.
	SourceRate, TotalRate float64
	// Gateway, the default router, when known, is answered from a
	// reserve of RouterRate per
	// second (burst twice; 0: no limit) that the others cannot spend,
	// and spends nothing of theirs: a solicitation is the router's when
	// its source is one of Gateway's addresses and both its frame's
	// source and its Source Link-Layer Address option are Gateway's MAC.
	Gateway    RouterID
	RouterRate float64
}

// NewKernelAnswer returns the kernel's answers for cfg within the budgets
// of Config (0: the default, negative: no limit), or nil when cfg has no
// link-layer address to answer with. The router's reserve is set apart
// with Reserve.
func NewKernelAnswer(cfg DecideConfig, sourceRate, totalRate float64) *KernelAnswer {
	if len(cfg.LinkAddr) != 6 {
		return nil
	}
	a := &KernelAnswer{MAC: [6]byte(cfg.LinkAddr), Router: cfg.Router}
	// SourceFor falls back to the target; any address tells which.
	probe := netip.IPv6Loopback()
	if src := cfg.SourceFor(probe); src != probe {
		a.Source = src
	}
	src, total, _ := limitRates(sourceRate, totalRate, 0)
	a.SourceRate, a.TotalRate = max(src, 0), max(total, 0)
	return a
}

// Reserve sets apart a budget for router (Config.RouterRate: 0 the
// default, negative no limit); a router not Known gets none.
func (a *KernelAnswer) Reserve(router RouterID, rate float64) {
	if a == nil || !router.Known() {
		return
	}
	a.Gateway, a.RouterRate = router, max(routerRate(rate), 0)
}

// PlanIngress returns the ingress filter for an uplink that answers for
// st's addresses and ranges and holds the addresses own; with answer, the
// filter answers for st's addresses itself. It filters nothing (no
// Served) when the uplink has no on-link prefix.
func PlanIngress(st *UplinkState, own []netip.Addr, answer *KernelAnswer) IngressFilter {
	f := IngressFilter{Allow: map[netip.Addr]struct{}{}}
	if answer != nil {
		a := *answer
		f.Answer, f.Answered = &a, make(map[netip.Addr]struct{}, len(st.Addrs))
		for a := range st.Addrs {
			f.Answered[a] = struct{}{}
		}
	}
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

// IngressDelta are the set elements an update changes: addresses to add
// to and delete from the allow set and the answer set, each sorted.
type IngressDelta struct {
	Add, Del             []netip.Addr
	AnswerAdd, AnswerDel []netip.Addr
}

// Empty reports whether the delta changes nothing.
func (d IngressDelta) Empty() bool {
	return len(d.Add)+len(d.Del)+len(d.AnswerAdd)+len(d.AnswerDel) == 0
}

// UpdateIngress brings have, what PlanIngress planned for the uplink
// before, to what it plans now that the addresses start were added to and
// stop removed from st (st holds the result), and returns what changed;
// own and answer are as for PlanIngress, own the same as have was planned
// with. It costs what start and stop hold, not what st does: attaching
// the thousandth container plans as little as the first. ok is false, and
// have unchanged, when the filter's rules would change (prefixes, ranges,
// answers): PlanIngress then.
func UpdateIngress(have *IngressFilter, st *UplinkState, own []netip.Addr, answer *KernelAnswer, start, stop []netip.Addr) (d IngressDelta, ok bool) {
	rules := PlanIngress(&UplinkState{OnLink: st.OnLink, Ranges: st.Ranges}, nil, answer)
	if !have.SameRules(rules) {
		return d, false
	}
	allowed := func(a netip.Addr) bool {
		if _, ok := st.Addrs[a]; ok {
			return true
		}
		if _, ok := rules.Allow[a]; ok { // a subnet-router anycast address
			return true
		}
		return slices.ContainsFunc(own, func(o netip.Addr) bool { return o.WithZone("") == a })
	}
	for _, a := range start {
		if _, in := have.Allow[a]; !in && allowed(a) {
			have.Allow[a] = struct{}{}
			d.Add = append(d.Add, a)
		}
		if have.Answer == nil {
			continue
		}
		if _, live := st.Addrs[a]; live {
			if _, in := have.Answered[a]; !in {
				have.Answered[a] = struct{}{}
				d.AnswerAdd = append(d.AnswerAdd, a)
			}
		}
	}
	for _, a := range stop {
		if _, in := have.Allow[a]; in && !allowed(a) {
			delete(have.Allow, a)
			d.Del = append(d.Del, a)
		}
		if _, live := st.Addrs[a]; live {
			continue
		}
		if _, in := have.Answered[a]; in {
			delete(have.Answered, a)
			d.AnswerDel = append(d.AnswerDel, a)
		}
	}
	sortAddrs(d.Add, d.Del, d.AnswerAdd, d.AnswerDel)
	return d, true
}

// SameRules reports whether f and g need the same rules (they may differ
// in Allow, which is a set updated in place).
func (f IngressFilter) SameRules(g IngressFilter) bool {
	sameAnswer := f.Answer == g.Answer || (f.Answer != nil && g.Answer != nil && *f.Answer == *g.Answer)
	return sameAnswer && slices.Equal(f.Served, g.Served) && slices.Equal(f.Ranges, g.Ranges)
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

// AllowDiff returns the addresses to add to and delete from have to get
// want, each sorted.
func AllowDiff(have, want map[netip.Addr]struct{}) (add, del []netip.Addr) {
	add, del = setDiff(want, have)
	sortAddrs(add, del)
	return add, del
}

// AnswerKeys are the keys of the kernel's answer set for target: the
// solicitation's IPv6 destination (the target's solicited-node group or
// the target) and the target, concatenated.
func AnswerKeys(target netip.Addr) [2][32]byte {
	var k [2][32]byte
	t := target.As16()
	g := SNMOf(target).As16()
	copy(k[0][:16], g[:])
	copy(k[0][16:], t[:])
	copy(k[1][:16], t[:])
	copy(k[1][16:], t[:])
	return k
}

// CloneIngress copies f deeply, so the copy stays as it is when f's maps
// and slices change.
func CloneIngress(f IngressFilter) IngressFilter {
	g := IngressFilter{Served: slices.Clone(f.Served), Ranges: slices.Clone(f.Ranges), Allow: maps.Clone(f.Allow), Answered: maps.Clone(f.Answered)}
	if f.Answer != nil {
		a := *f.Answer
		g.Answer = &a
	}
	return g
}
