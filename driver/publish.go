package driver

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	"github.com/v6bridge/v6bridge/netspec"
	"github.com/v6bridge/v6bridge/portfwd"
)

// Publishing. A published port (-p H:C, -p C, compose ports:) belongs to
// the container — its sandbox — not to one of its endpoints: the engine
// hands the port map to whichever endpoint's Join (or
// ProgramExternalConnectivity) it likes, in whichever order, and differently
// per engine generation. So:
//
//   - the sandbox's requests are kept on one of its endpoints, the carrier
//     (Endpoint.PortRequests, with the host ports picked for them in
//     Endpoint.Ports), which hands them to another endpoint of the sandbox
//     when it leaves;
//   - each host port leads to exactly one address of the container, the
//     target, chosen by a rule that does not depend on join order: its
//     address on a nat network, else public, else routed; ties by network
//     id (see target);
//   - a published container port is open directly on every public or routed
//     address of the container, unless it is published on a loopback or
//     link-local host address only (-p [::1]:5432:5432 is meant for the
//     host itself: it opens nothing else);
//   - host ports are held while the container has a target and released
//     when it has none (only internal networks left), the requests kept.
//
// The firewall gets, per endpoint, the host ports that lead to it and the
// container ports open on it (entry); a change of one endpoint updates all
// endpoints of its sandbox in one atomic batch, so a port moving from one
// address to another has no window where it is open twice or nowhere.

// PortRequest is a port the user asked to publish, before a host port is
// picked.
type PortRequest struct {
	Proto         uint8      `json:"proto"`
	HostAddr      netip.Addr `json:"host_addr,omitzero"`   // zero: every host address
	HostFirst     uint16     `json:"host_first,omitempty"` // 0: pick any free port
	HostLast      uint16     `json:"host_last,omitempty"`  // a range to pick one port from
	ContainerPort uint16     `json:"container_port"`
}

// ephemeralFirst and ephemeralLast bound the host ports v6bridge picks for
// -p CONTAINERPORT and -P, as Docker does.
const (
	ephemeralFirst = 49153
	ephemeralLast  = 65535
)

// AssignHostPorts turns requests into mappings, picking host ports for
// requests without one (or with a range) that taken does not report taken
// for the same protocol and host address. Consecutive requests become one
// mapping of a port range (-p 10000-20000:10000-20000 arrives as 10,001
// bindings and leaves as one range).
func AssignHostPorts(reqs []PortRequest, taken func(proto uint8, addr netip.Addr, port uint16) bool) ([]netspec.Mapping, error) {
	type key struct {
		proto uint8
		addr  netip.Addr
		port  uint16
	}
	mine := map[key]bool{}
	free := func(p uint8, a netip.Addr, port uint16) bool {
		return !mine[key{p, a, port}] && !taken(p, a, port)
	}
	out := make([]netspec.Mapping, 0, len(reqs))
	for _, r := range reqs {
		first, last := r.HostFirst, r.HostLast
		if first == 0 {
			first, last = ephemeralFirst, ephemeralLast
		}
		last = max(first, last)
		var port uint16
		for p := uint32(first); p <= uint32(last); p++ {
			if free(r.Proto, r.HostAddr, uint16(p)) {
				port = uint16(p)
				break
			}
		}
		if port == 0 {
			where := "any host address"
			if r.HostAddr.IsValid() {
				where = r.HostAddr.String()
			}
			if first == last {
				return nil, fmt.Errorf("host port %s/%d on %s is already published by another container: pick another host port", netspec.ProtoName(r.Proto), first, where)
			}
			return nil, fmt.Errorf("no free host port %s/%d-%d on %s: every one is published by another container", netspec.ProtoName(r.Proto), first, last, where)
		}
		mine[key{r.Proto, r.HostAddr, port}] = true
		out = append(out, netspec.Mapping{Proto: r.Proto, HostAddr: r.HostAddr, HostFirst: port, HostLast: port, ContainerFirst: r.ContainerPort})
	}
	return coalesce(out), nil
}

// coalesce sorts mappings and joins those that continue each other (same
// protocol and host address, host and container ports both one further).
func coalesce(ms []netspec.Mapping) []netspec.Mapping {
	slices.SortFunc(ms, func(a, b netspec.Mapping) int {
		return cmp.Or(cmp.Compare(a.Proto, b.Proto), a.HostAddr.Compare(b.HostAddr), cmp.Compare(a.HostFirst, b.HostFirst))
	})
	var out []netspec.Mapping
	for _, m := range ms {
		if n := len(out); n > 0 {
			l := &out[n-1]
			if l.Proto == m.Proto && l.HostAddr == m.HostAddr && uint32(l.HostLast)+1 == uint32(m.HostFirst) &&
				uint32(l.ContainerFirst)+uint32(l.HostLast-l.HostFirst)+1 == uint32(m.ContainerFirst) {
				l.HostLast = m.HostLast
				continue
			}
		}
		out = append(out, m)
	}
	return out
}

// openPorts returns the container ports that are open directly on the
// container's public and routed addresses: those of every mapping but the
// ones bound to a loopback or link-local host address.
func openPorts(ms []netspec.Mapping) []netspec.Port {
	var out []netspec.Port
	for _, m := range ms {
		if m.HostAddr.IsLoopback() || m.HostAddr.IsLinkLocalUnicast() {
			continue
		}
		out = append(out, netspec.Port{Proto: m.Proto, First: m.ContainerFirst, Last: m.ContainerFirst + (m.HostLast - m.HostFirst)})
	}
	return out
}

// hostOnly reports whether m is published on the host's loopback address
// only: the forwarder (package portfwd) forwards it, the firewall has no part in it (a DNAT from
// ::1 to a container cannot leave the loopback device).
func hostOnly(m netspec.Mapping) bool { return m.HostAddr.IsLoopback() }

// natMappings returns the mappings of ms that the firewall publishes.
func natMappings(ms []netspec.Mapping) []netspec.Mapping {
	if !slices.ContainsFunc(ms, hostOnly) {
		return ms
	}
	out := make([]netspec.Mapping, 0, len(ms))
	for _, m := range ms {
		if !hostOnly(m) {
			out = append(out, m)
		}
	}
	return out
}

// forwards returns what the forwarder forwards: every port of the host-only
// mappings of each sandbox, to the sandbox's target address.
func (d *Driver) forwards() []portfwd.Forward {
	var out []portfwd.Forward
	for _, c := range d.endpoints {
		if !c.Joined || !slices.ContainsFunc(c.Ports, hostOnly) {
			continue
		}
		t := d.target(c.Sandbox)
		if t == nil {
			continue
		}
		for _, m := range c.Ports {
			if !hostOnly(m) {
				continue
			}
			for i := 0; i <= int(m.HostLast-m.HostFirst); i++ {
				out = append(out, portfwd.Forward{
					Proto:  m.Proto,
					Listen: netip.AddrPortFrom(m.HostAddr, m.HostFirst+uint16(i)),
					To:     netip.AddrPortFrom(t.Addr.Addr(), m.ContainerFirst+uint16(i)),
				})
			}
		}
	}
	return out
}

// modeRank orders the modes a host port prefers to lead to; -1: never.
func modeRank(m netspec.Mode) int {
	switch m {
	case netspec.ModeNAT:
		return 0
	case netspec.ModePublic:
		return 1
	case netspec.ModeRouted:
		return 2
	}
	return -1
}

// publishable reports whether a published port can lead to e.
func (d *Driver) publishable(e *Endpoint) bool {
	return e.Joined && e.Addr.IsValid() && modeRank(d.networks[e.NetworkID].Mode) >= 0
}

// target returns the endpoint of the sandbox the host ports lead to: the
// publishable one with the best mode rank, ties by network id, then
// endpoint id. nil: none.
func (d *Driver) target(sandbox string) *Endpoint {
	var best *Endpoint
	for _, e := range d.bySandbox[sandbox] {
		if !d.publishable(e) {
			continue
		}
		if best == nil {
			best = e
			continue
		}
		if c := cmp.Or(
			cmp.Compare(modeRank(d.networks[e.NetworkID].Mode), modeRank(d.networks[best.NetworkID].Mode)),
			cmp.Compare(e.NetworkID, best.NetworkID),
			cmp.Compare(e.ID, best.ID),
		); c < 0 {
			best = e
		}
	}
	return best
}

// carrier returns the endpoint of the sandbox that keeps its port
// requests, or nil.
func (d *Driver) carrier(sandbox string) *Endpoint {
	var c *Endpoint
	for _, e := range d.bySandbox[sandbox] {
		if len(e.PortRequests) > 0 && (c == nil || e.ID < c.ID) {
			c = e
		}
	}
	return c
}

// entry returns what the firewall holds for e: the host ports that lead to
// it and the container ports open on it.
func (d *Driver) entry(e *Endpoint) ([]netspec.Mapping, []netspec.Port) {
	if !d.publishable(e) || e.Sandbox == "" {
		return nil, nil
	}
	c := d.carrier(e.Sandbox)
	if c == nil || len(c.Ports) == 0 {
		return nil, nil
	}
	var ports []netspec.Mapping
	if d.target(e.Sandbox) == e {
		ports = c.Ports
	}
	var open []netspec.Port
	if m := d.networks[e.NetworkID].Mode; m == netspec.ModePublic || m == netspec.ModeRouted {
		open = openPorts(c.Ports)
	}
	return ports, open
}

// settle holds host ports for the sandbox's requests while it has a target
// and releases them when it has none. It changes only the carrier's Ports.
func (d *Driver) settle(sandbox string) error {
	c := d.carrier(sandbox)
	if c == nil {
		return nil
	}
	has := d.target(sandbox) != nil
	switch {
	case has && len(c.Ports) == 0:
		ports, err := AssignHostPorts(c.PortRequests, d.portTaken)
		if err != nil {
			return err
		}
		d.unindex(c)
		c.Ports = ports
		d.index(c)
	case !has && len(c.Ports) > 0:
		d.unindex(c)
		c.Ports = nil
		d.index(c)
	}
	return nil
}

// handOver moves e's port requests and host ports to another endpoint of
// its sandbox (the target if any, else the lowest id), before e leaves it.
func (d *Driver) handOver(e *Endpoint) {
	if len(e.PortRequests) == 0 || e.Sandbox == "" {
		return
	}
	var to *Endpoint
	if t := d.target(e.Sandbox); t != nil && t != e {
		to = t
	} else {
		for _, o := range d.bySandbox[e.Sandbox] {
			if o != e && (to == nil || o.ID < to.ID) {
				to = o
			}
		}
	}
	d.unindex(e)
	if to != nil {
		d.unindex(to)
		to.PortRequests, to.Ports = e.PortRequests, e.Ports
		d.index(to)
	}
	e.PortRequests, e.Ports = nil, nil
	d.index(e)
}

// portTaken reports whether a host port is published already for the
// protocol and an overlapping host address (zero means all).
func (d *Driver) portTaken(proto uint8, addr netip.Addr, port uint16) bool {
	byAddr := d.hostPorts[hostPort{proto, port}]
	if len(byAddr) == 0 {
		return false
	}
	if !addr.IsValid() {
		return true
	}
	return byAddr[addr] > 0 || byAddr[netip.Addr{}] > 0
}

// index adds e to the sandbox and host port indexes; unindex takes it out.
// Call unindex before changing e's Sandbox or Ports and index after.
func (d *Driver) index(e *Endpoint) {
	d.held.hold(e)
	if e.Sandbox != "" {
		m := d.bySandbox[e.Sandbox]
		if m == nil {
			m = map[string]*Endpoint{}
			d.bySandbox[e.Sandbox] = m
		}
		m[e.ID] = e
	}
	for _, p := range e.Ports {
		for port := int(p.HostFirst); port <= int(p.HostLast); port++ {
			k := hostPort{p.Proto, uint16(port)}
			m := d.hostPorts[k]
			if m == nil {
				m = map[netip.Addr]int{}
				d.hostPorts[k] = m
			}
			m[p.HostAddr]++
		}
	}
}

func (d *Driver) unindex(e *Endpoint) {
	d.held.unhold(e)
	if m := d.bySandbox[e.Sandbox]; m != nil && m[e.ID] == e {
		delete(m, e.ID)
		if len(m) == 0 {
			delete(d.bySandbox, e.Sandbox)
		}
	}
	for _, p := range e.Ports {
		for port := int(p.HostFirst); port <= int(p.HostLast); port++ {
			k := hostPort{p.Proto, uint16(port)}
			m := d.hostPorts[k]
			if m[p.HostAddr]--; m[p.HostAddr] <= 0 {
				delete(m, p.HostAddr)
			}
			if len(m) == 0 {
				delete(d.hostPorts, k)
			}
		}
	}
}

// saved is an endpoint's record before a change, to undo it.
type saved struct {
	e    *Endpoint
	prev Endpoint
}

// save records the endpoints of the sandboxes and the endpoints es as they
// are, before a change that may touch any of them.
func (d *Driver) save(sandboxes []string, es ...*Endpoint) []saved {
	var out []saved
	seen := map[*Endpoint]bool{}
	add := func(e *Endpoint) {
		if e != nil && !seen[e] {
			seen[e] = true
			out = append(out, saved{e: e, prev: cloneEndpoint(*e)})
		}
	}
	for _, e := range es {
		add(e)
	}
	for _, sb := range sandboxes {
		for _, e := range d.sortedSandbox(sb) {
			add(e)
		}
	}
	return out
}

// restoreAll sets the endpoints back to their saved records, keeping the
// indexes.
func (d *Driver) restoreAll(ss []saved) {
	for _, s := range ss {
		d.unindex(s.e)
	}
	for _, s := range ss {
		*s.e = cloneEndpoint(s.prev)
		d.index(s.e)
	}
}

// persistChanged writes the records of the saved endpoints that changed.
func (d *Driver) persistChanged(ss []saved) error {
	for _, s := range ss {
		if d.endpoints[s.e.ID] != s.e || sameEndpoint(*s.e, s.prev) {
			continue
		}
		if err := d.cfg.Store.PutEndpoint(s.e); err != nil {
			return fmt.Errorf("save endpoint %s: %w", short(s.e.ID, 12), err)
		}
	}
	return nil
}

func (d *Driver) sortedSandbox(sb string) []*Endpoint {
	out := make([]*Endpoint, 0, len(d.bySandbox[sb]))
	for _, e := range d.bySandbox[sb] {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b *Endpoint) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

func cloneEndpoint(e Endpoint) Endpoint {
	e.PortRequests = slices.Clone(e.PortRequests)
	e.Ports = slices.Clone(e.Ports)
	return e
}

func sameEndpoint(a, b Endpoint) bool {
	return a.ID == b.ID && a.Sandbox == b.Sandbox && a.Joined == b.Joined && a.DefaultRoute == b.DefaultRoute &&
		slices.Equal(a.PortRequests, b.PortRequests) && slices.Equal(a.Ports, b.Ports)
}

func formatMappings(ms []netspec.Mapping) string {
	s := ""
	for i, m := range ms {
		if i > 0 {
			s += ","
		}
		host := "[::]"
		if m.HostAddr.IsValid() {
			host = "[" + m.HostAddr.String() + "]"
		}
		hp, cp := fmt.Sprint(m.HostFirst), fmt.Sprint(m.ContainerFirst)
		if m.HostLast > m.HostFirst {
			hp += fmt.Sprintf("-%d", m.HostLast)
			cp += fmt.Sprintf("-%d", m.ContainerFirst+(m.HostLast-m.HostFirst))
		}
		s += fmt.Sprintf("%s:%s->%s/%s", host, hp, cp, netspec.ProtoName(m.Proto))
	}
	return s
}

func formatOpen(ps []netspec.Port) string {
	s := ""
	for i, p := range ps {
		if i > 0 {
			s += ","
		}
		s += fmt.Sprint(p.First)
		if p.Last > p.First {
			s += fmt.Sprintf("-%d", p.Last)
		}
		s += "/" + netspec.ProtoName(p.Proto)
	}
	return s
}
