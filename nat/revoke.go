package nat

import (
	"fmt"
	"net/netip"
	"slices"
)

// RevokeMatch says which part of a connection a Revocation looks at.
type RevokeMatch int

// What a Revocation matches.
const (
	// RevokeAddr: Addr is any address of the connection, either way: an
	// endpoint that is gone.
	RevokeAddr RevokeMatch = iota + 1
	// RevokeReplySrc: the answering side is Addr on Proto, port First to
	// Last, reached through a translated destination: connections through
	// a host port to a container port no longer published.
	RevokeReplySrc
	// RevokeOrigDst: the original destination is Addr on Proto, port First
	// to Last: a host port no longer forwarded to the container port that
	// still is published, or a container port no longer open directly.
	RevokeOrigDst
	// RevokeBypass: the original destination is Addr on Proto, port First
	// to Last, and the answer does not come from Target port To (+ the
	// offset in the range): connections to a host port newly forwarded to
	// Target that were tracked before (a UDP client that kept sending
	// while the container started) or while the port led elsewhere. The
	// kernel translates only a connection's first packet, so these would
	// never reach the container; the engine deletes them when it
	// publishes a port, and so does v6bridge.
	RevokeBypass
)

// Revocation selects connections that a change of the State no longer
// allows. The firewall only judges a connection's first packet; the
// connections a Revocation selects are deleted from conntrack after the
// change, so their next packet is judged again (and dropped) and an
// offloaded flow leaves the fast path at once.
type Revocation struct {
	Match       RevokeMatch
	Addr        netip.Addr
	Proto       uint8  // not for RevokeAddr
	First, Last uint16 // inclusive port range; not for RevokeAddr
	// Target and To are where host port First now leads (RevokeBypass).
	Target netip.Addr
	To     uint16
}

func (r Revocation) String() string {
	switch r.Match {
	case RevokeAddr:
		return "any " + r.Addr.String()
	case RevokeReplySrc:
		return fmt.Sprintf("to container %s %s/%d-%d", r.Addr, ProtoName(r.Proto), r.First, r.Last)
	case RevokeOrigDst:
		return fmt.Sprintf("to host %s %s/%d-%d", r.Addr, ProtoName(r.Proto), r.First, r.Last)
	case RevokeBypass:
		return fmt.Sprintf("to host %s %s/%d-%d not answered by %s", r.Addr, ProtoName(r.Proto), r.First, r.Last,
			netip.AddrPortFrom(r.Target, r.To))
	}
	return "invalid"
}

// ConnTuple is what a Revocation looks at in one connection: its original
// direction (as the first packet was sent) and its reply direction (after
// NAT: the source is who answers).
type ConnTuple struct {
	Proto              uint8
	OrigSrc, OrigDst   netip.AddrPort
	ReplySrc, ReplyDst netip.AddrPort
}

// Matches reports whether the revocation selects connection c.
func (r Revocation) Matches(c ConnTuple) bool {
	inRange := func(p uint16) bool { return p >= r.First && p <= r.Last }
	switch r.Match {
	case RevokeAddr:
		return c.OrigSrc.Addr() == r.Addr || c.OrigDst.Addr() == r.Addr || c.ReplySrc.Addr() == r.Addr || c.ReplyDst.Addr() == r.Addr
	case RevokeReplySrc:
		return c.Proto == r.Proto && c.ReplySrc.Addr() == r.Addr && inRange(c.ReplySrc.Port()) && c.OrigDst != c.ReplySrc
	case RevokeOrigDst:
		return c.Proto == r.Proto && c.OrigDst.Addr() == r.Addr && inRange(c.OrigDst.Port())
	case RevokeBypass:
		if c.Proto != r.Proto || c.OrigDst.Addr() != r.Addr || !inRange(c.OrigDst.Port()) {
			return false
		}
		return c.ReplySrc != netip.AddrPortFrom(r.Target, r.To+(c.OrigDst.Port()-r.First))
	}
	return false
}

// Revoked returns the revocations of a change from old to new: endpoints
// that are gone, container ports no longer published or open, host ports
// no longer forwarded to a container port that still is, and host ports
// newly forwarded (RevokeBypass).
func Revoked(old, new State) []Revocation {
	type entry struct {
		bridge string
		mode   Mode
		e      Endpoint
	}
	next := map[netip.Addr]entry{}
	for _, n := range new.Networks {
		for _, e := range n.Endpoints {
			next[e.Addr] = entry{n.Bridge, n.Mode, e}
		}
	}
	var out []Revocation
	type place struct {
		bridge string
		addr   netip.Addr
	}
	was := map[place]bool{}
	for _, n := range old.Networks {
		for _, e := range n.Endpoints {
			was[place{n.Bridge, e.Addr}] = true
		}
	}
	// New endpoints: connections that bypass the DNAT of their host ports.
	for _, n := range new.Networks {
		for _, e := range n.Endpoints {
			if n.Mode != ModeInternal && !was[place{n.Bridge, e.Addr}] {
				out = append(out, newlyForwarded(nil, new.HostAddrs, Endpoint{}, e)...)
			}
		}
	}
	for _, n := range old.Networks {
		for _, e := range n.Endpoints {
			nx, ok := next[e.Addr]
			if !ok || nx.bridge != n.Bridge {
				out = append(out, Revocation{Match: RevokeAddr, Addr: e.Addr})
				continue
			}
			if n.Mode == ModeInternal {
				continue
			}
			public := n.Mode == ModePublic || n.Mode == ModeRouted
			out = append(out, RevokedPorts(old.HostAddrs, new.HostAddrs, e, nx.e, public)...)
		}
	}
	return out
}

// RevokedPorts returns the revocations of an endpoint of a nat, public
// or routed network (public: the latter two) changing from old to new:
// each container port no longer published (its connections through a host
// port), each host port no longer forwarded to a container port still
// published, on public networks each container port no longer open
// directly, and each host port newly forwarded (connections that bypass
// its DNAT, RevokeBypass; old is the zero Endpoint for a new endpoint).
// oldHosts and newHosts are the host addresses a mapping without one
// stands for, before and after.
func RevokedPorts(oldHosts, newHosts []netip.Addr, old, new Endpoint, public bool) []Revocation {
	type cport struct {
		proto uint8
		port  uint16
	}
	type hport struct {
		host  netip.Addr
		proto uint8
		port  uint16
		to    uint16
	}
	addr := old.Addr
	published := map[cport]bool{}
	forwarded := map[hport]bool{}
	open := map[cport]bool{}
	for _, m := range new.Ports {
		hosts := m.Hosts(newHosts)
		for hp, cp := range m.Ports() {
			published[cport{m.Proto, cp}] = true
			for _, h := range hosts {
				forwarded[hport{h, m.Proto, hp, cp}] = true
			}
		}
	}
	for _, p := range new.Open {
		for port := int(p.First); port <= int(p.Last); port++ {
			open[cport{p.Proto, uint16(port)}] = true
		}
	}
	var out []Revocation
	// add appends port to the last revocation when it continues its range.
	add := func(match RevokeMatch, a netip.Addr, proto uint8, port uint16) {
		if k := len(out) - 1; k >= 0 && out[k].Match == match && out[k].Addr == a && out[k].Proto == proto && out[k].Last+1 == port {
			out[k].Last = port
			return
		}
		out = append(out, Revocation{Match: match, Addr: a, Proto: proto, First: port, Last: port})
	}
	for _, m := range old.Ports {
		hosts := m.Hosts(oldHosts)
		for hp, cp := range m.Ports() {
			c := cport{m.Proto, cp}
			if !published[c] {
				add(RevokeReplySrc, addr, c.proto, c.port)
				continue
			}
			for _, h := range hosts {
				if !forwarded[hport{h, m.Proto, hp, c.port}] {
					add(RevokeOrigDst, h, m.Proto, hp)
				}
			}
		}
	}
	out = append(out, newlyForwarded(oldHosts, newHosts, old, new)...)
	if public {
		for _, p := range old.Open {
			for port := int(p.First); port <= int(p.Last); port++ {
				if !open[cport{p.Proto, uint16(port)}] {
					add(RevokeOrigDst, addr, p.Proto, uint16(port))
				}
			}
		}
	}
	return slices.CompactFunc(out, func(a, b Revocation) bool { return a == b })
}

// revocations returns the revocations of applying us to the model, before
// Update does: endpoints removed, ports no longer published, and host
// ports newly forwarded.
func (m *Model) revocations(us []EndpointUpdate) []Revocation {
	var out []Revocation
	for _, u := range us {
		mn, ok := m.nets[u.Bridge]
		if !ok {
			continue
		}
		old, had := mn.eps[u.Addr]
		mode := m.networks[mn.idx].Mode
		switch {
		case !had && !u.Remove && mode != ModeInternal:
			out = append(out, newlyForwarded(nil, m.hostAddrs, Endpoint{}, Endpoint{Addr: u.Addr, Ports: u.Ports})...)
		case !had:
		case u.Remove:
			out = append(out, Revocation{Match: RevokeAddr, Addr: u.Addr})
		case mode != ModeInternal:
			public := mode == ModePublic || mode == ModeRouted
			out = append(out, RevokedPorts(m.hostAddrs, m.hostAddrs, old, Endpoint{Addr: u.Addr, Ports: u.Ports, Open: u.Open}, public)...)
		}
	}
	return out
}

// newlyForwarded returns a RevokeBypass for each host port new forwards
// that old did not forward to the same address and port, ranges kept
// whole where host and container ports run together.
func newlyForwarded(oldHosts, newHosts []netip.Addr, old, new Endpoint) []Revocation {
	type hport struct {
		host  netip.Addr
		proto uint8
		port  uint16
	}
	type dest struct {
		addr netip.Addr
		port uint16
	}
	before := map[hport]dest{}
	for _, m := range old.Ports {
		for _, h := range m.Hosts(oldHosts) {
			for hp, cp := range m.Ports() {
				before[hport{h, m.Proto, hp}] = dest{old.Addr, cp}
			}
		}
	}
	var out []Revocation
	for _, m := range new.Ports {
		for _, h := range m.Hosts(newHosts) {
			for port, to := range m.Ports() {
				if d, ok := before[hport{h, m.Proto, port}]; ok && d == (dest{new.Addr, to}) {
					continue
				}
				if k := len(out) - 1; k >= 0 && out[k].Addr == h && out[k].Proto == m.Proto && out[k].Last+1 == port && out[k].To+(port-out[k].First) == to {
					out[k].Last = port
					continue
				}
				out = append(out, Revocation{Match: RevokeBypass, Addr: h, Proto: m.Proto, First: port, Last: port, Target: new.Addr, To: to})
			}
		}
	}
	return out
}
