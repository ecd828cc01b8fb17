package ndpproto

import (
	"net/netip"
	"slices"
)

// The planner: pure decisions of what each uplink answers for and what
// the kernel must hold for it, from the targets and what the uplinks hold
// now. The responder applies a plan with its backend (groups or proxy
// entries), then records what succeeded in the same UplinkState, so a
// failed step shows up as a difference the next plan repeats.

// UplinkState is what an uplink answers for and holds in the kernel.
type UplinkState struct {
	// OnLink are the uplink's on-link prefixes (from its addresses).
	OnLink []netip.Prefix
	// Addrs and Ranges are answered on this uplink.
	Addrs  map[netip.Addr]struct{}
	Ranges []netip.Prefix
	// Groups are the solicited-node groups joined (native mode).
	Groups map[netip.Addr]struct{}
	// Proxies are the kernel proxy-neighbour entries installed (kernel
	// mode, and native mode's hand-over entries to take back).
	Proxies map[netip.Addr]struct{}
	// Refs counts the addresses of Addrs per solicited-node group.
	Refs map[netip.Addr]int
}

// NewUplinkState returns an empty state with its maps made.
func NewUplinkState() *UplinkState {
	return &UplinkState{Addrs: map[netip.Addr]struct{}{}, Groups: map[netip.Addr]struct{}{},
		Proxies: map[netip.Addr]struct{}{}, Refs: map[netip.Addr]int{}}
}

// ApplyAddrs records p's addresses and ranges in u (the groups and proxy
// entries are recorded by whoever installs them).
func (u *UplinkState) ApplyAddrs(p UplinkPlan) {
	for _, a := range p.Stop {
		if _, ok := u.Addrs[a]; !ok {
			continue
		}
		delete(u.Addrs, a)
		g := SNMOf(a)
		if u.Refs[g]--; u.Refs[g] <= 0 {
			delete(u.Refs, g)
		}
	}
	for _, a := range p.Start {
		if _, ok := u.Addrs[a]; ok {
			continue
		}
		u.Addrs[a] = struct{}{}
		u.Refs[SNMOf(a)]++
	}
	u.Ranges = slices.Clone(p.Ranges)
}

// UplinkPlan is what changes on one uplink.
type UplinkPlan struct {
	// Stop and Start are the addresses it stops and starts answering for.
	Stop, Start []netip.Addr
	// Ranges are its ranges from now on (native mode only).
	Ranges []netip.Prefix
	// Join and Leave are solicited-node groups (native mode).
	Join, Leave []netip.Addr
	// AddProxy and DelProxy are proxy-neighbour entries (kernel mode; in
	// native mode only deletions, of entries left by a hand-over).
	AddProxy, DelProxy []netip.Addr
}

// Plan is what changes on all uplinks, in uplink order, and the addresses
// to announce with unsolicited advertisements.
type Plan struct {
	Uplinks  []UplinkPlan
	Announce []netip.Addr
}

// Empty reports whether p changes nothing.
func (p Plan) Empty() bool {
	for _, u := range p.Uplinks {
		if len(u.Stop)+len(u.Start)+len(u.Join)+len(u.Leave)+len(u.AddProxy)+len(u.DelProxy) > 0 {
			return false
		}
	}
	return true
}

func onLinks(ups []*UplinkState) [][]netip.Prefix {
	out := make([][]netip.Prefix, len(ups))
	for i, u := range ups {
		out[i] = u.OnLink
	}
	return out
}

// PlanTargets plans the move of every uplink to answering for exactly t in
// mode: each address on the uplink Assign picks, ranges likewise (native
// mode only; the kernel proxies single addresses). In native mode the
// groups follow the addresses and every proxy entry is removed (a
// previous run's hand-over); in kernel mode the entries follow the
// addresses. Off mode plans nothing. Lists are sorted.
func PlanTargets(mode string, t Targets, ups []*UplinkState) Plan {
	p := Plan{Uplinks: make([]UplinkPlan, len(ups))}
	if mode == ModeOff || len(ups) == 0 {
		return p
	}
	links := onLinks(ups)
	want := make([]map[netip.Addr]struct{}, len(ups))
	for i := range ups {
		want[i] = map[netip.Addr]struct{}{}
	}
	for a := range t.addrs {
		want[Assign(netip.PrefixFrom(a, 128), links)][a] = struct{}{}
	}
	if mode == ModeNative {
		for _, r := range t.ranges {
			i := Assign(r, links)
			p.Uplinks[i].Ranges = append(p.Uplinks[i].Ranges, r)
		}
	}
	for i, u := range ups {
		up := &p.Uplinks[i]
		for a := range u.Addrs {
			if _, ok := want[i][a]; !ok {
				up.Stop = append(up.Stop, a)
			}
		}
		for a := range want[i] {
			if _, ok := u.Addrs[a]; !ok {
				up.Start = append(up.Start, a)
			}
		}
		switch mode {
		case ModeNative:
			groups := map[netip.Addr]struct{}{}
			for a := range want[i] {
				groups[SNMOf(a)] = struct{}{}
			}
			up.Join, up.Leave = setDiff(groups, u.Groups)
			_, up.DelProxy = setDiff(nil, u.Proxies)
		case ModeKernel:
			up.AddProxy, up.DelProxy = setDiff(want[i], u.Proxies)
		}
		sortAddrs(up.Stop, up.Start, up.Join, up.Leave, up.AddProxy, up.DelProxy)
		p.Announce = append(p.Announce, up.Start...)
	}
	slices.SortFunc(p.Announce, netip.Addr.Compare)
	return p
}

// PlanUpdate plans adding the single addresses add and removing remove
// (an address in both ends up added) at the cost of what changes: groups
// are counted from the addresses sharing them (refs: uplink -> group ->
// addresses answered there, UplinkState.Refs), not recomputed. Removing an
// address that is not answered is nothing.
func PlanUpdate(mode string, add, remove []netip.Addr, ups []*UplinkState) Plan {
	p := Plan{Uplinks: make([]UplinkPlan, len(ups))}
	if mode == ModeOff || len(ups) == 0 {
		return p
	}
	adding := map[netip.Addr]bool{}
	for _, a := range add {
		adding[a] = true
	}
	delta := make([]map[netip.Addr]int, len(ups)) // group -> change of refs
	for i := range ups {
		delta[i] = map[netip.Addr]int{}
	}
	for _, a := range remove {
		if adding[a] {
			continue
		}
		for i, u := range ups {
			if _, ok := u.Addrs[a]; !ok || slices.Contains(p.Uplinks[i].Stop, a) {
				continue
			}
			p.Uplinks[i].Stop = append(p.Uplinks[i].Stop, a)
			delta[i][SNMOf(a)]--
			if _, ok := u.Proxies[a]; ok && mode == ModeKernel {
				p.Uplinks[i].DelProxy = append(p.Uplinks[i].DelProxy, a)
			}
		}
	}
	links := onLinks(ups)
	for a := range adding {
		i := Assign(netip.PrefixFrom(a, 128), links)
		if _, ok := ups[i].Addrs[a]; ok {
			continue
		}
		p.Uplinks[i].Start = append(p.Uplinks[i].Start, a)
		delta[i][SNMOf(a)]++
		if _, ok := ups[i].Proxies[a]; !ok && mode == ModeKernel {
			p.Uplinks[i].AddProxy = append(p.Uplinks[i].AddProxy, a)
		}
		p.Announce = append(p.Announce, a)
	}
	for i, u := range ups {
		up := &p.Uplinks[i]
		up.Ranges = slices.Clone(u.Ranges)
		if mode == ModeNative {
			for g, d := range delta[i] {
				n := u.Refs[g] + d
				_, joined := u.Groups[g]
				switch {
				case n > 0 && !joined:
					up.Join = append(up.Join, g)
				case n <= 0 && joined:
					up.Leave = append(up.Leave, g)
				}
			}
		}
		sortAddrs(up.Stop, up.Start, up.Join, up.Leave, up.AddProxy, up.DelProxy)
	}
	slices.SortFunc(p.Announce, netip.Addr.Compare)
	return p
}

// setDiff returns what is in want but not in have, and the reverse.
func setDiff(want, have map[netip.Addr]struct{}) (add, del []netip.Addr) {
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
	return add, del
}

func sortAddrs(lists ...[]netip.Addr) {
	for _, l := range lists {
		slices.SortFunc(l, netip.Addr.Compare)
	}
}
