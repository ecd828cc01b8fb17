package driver

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/v6bridge/v6bridge/fwstate"
	"github.com/v6bridge/v6bridge/netspec"
	"github.com/v6bridge/v6bridge/portfwd"
)

// Publishing. A published port (-p H:C, -p C, compose ports:) belongs to
// the container — its sandbox — not to one of its endpoints: the engine
// hands the port map to whichever endpoint's Join (or
// ProgramExternalConnectivity) it likes, in whichever order, and differently
// per engine generation. So:
//
//   - the sandbox's requests are kept in a record of the sandbox (Sandbox:
//     PortRequests, with the host ports picked for them in Ports), made
//     when the engine first sends requests for it (later ones are ignored),
//     kept while any of its endpoints is in it, and deleted when the last
//     one leaves;
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
// The publisher keeps this: the sandbox records, the indexes of sandboxes
// and host ports, the choice of target, the host ports held, and the
// loopback forwards; the Driver changes an endpoint's Sandbox only through
// publisher.update, and never a sandbox record (sandbox.go persists them
// and undoes their changes).
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

// publisher keeps the published ports of the driver's sandboxes (see
// above). It reads the driver's networks and endpoints and is guarded by
// the driver's lock.
type publisher struct {
	networks  map[string]*Network  // the driver's records, read only
	endpoints map[string]*Endpoint // the driver's records, read only
	// sandboxes are the records of the sandboxes that publish, by key.
	sandboxes map[string]*Sandbox
	// Indexes, kept by update and updateSandbox, so a Join looks up what
	// it needs instead of scanning every endpoint.
	bySandbox map[string]map[string]*Endpoint // sandbox key -> endpoint id -> endpoint
	hostPorts map[hostPort]map[netip.Addr]int // host port held by a sandbox record -> host address (zero: all) -> mappings
}

func newPublisher(networks map[string]*Network, endpoints map[string]*Endpoint) *publisher {
	return &publisher{networks: networks, endpoints: endpoints, sandboxes: map[string]*Sandbox{},
		bySandbox: map[string]map[string]*Endpoint{}, hostPorts: map[hostPort]map[netip.Addr]int{}}
}

// hostPort is a published host port of one protocol.
type hostPort struct {
	proto uint8
	port  uint16
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
func (p *publisher) forwards() []portfwd.Forward {
	var out []portfwd.Forward
	for key, s := range p.sandboxes {
		if !slices.ContainsFunc(s.Ports, hostOnly) {
			continue
		}
		t := p.target(key)
		if t == nil {
			continue
		}
		for _, m := range s.Ports {
			if !hostOnly(m) {
				continue
			}
			for hp, cp := range m.Ports() {
				out = append(out, portfwd.Forward{
					Proto:  m.Proto,
					Listen: netip.AddrPortFrom(m.HostAddr, hp),
					To:     netip.AddrPortFrom(t.Addr.Addr(), cp),
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
func (p *publisher) publishable(e *Endpoint) bool {
	return e.Joined && e.Addr.IsValid() && modeRank(p.networks[e.NetworkID].Mode) >= 0
}

// target returns the endpoint of the sandbox the host ports lead to: the
// publishable one with the best mode rank, ties by network id, then
// endpoint id. nil: none.
func (p *publisher) target(sandbox string) *Endpoint {
	var best *Endpoint
	for _, e := range p.bySandbox[sandbox] {
		if !p.publishable(e) {
			continue
		}
		if best == nil {
			best = e
			continue
		}
		if c := cmp.Or(
			cmp.Compare(modeRank(p.networks[e.NetworkID].Mode), modeRank(p.networks[best.NetworkID].Mode)),
			cmp.Compare(e.NetworkID, best.NetworkID),
			cmp.Compare(e.ID, best.ID),
		); c < 0 {
			best = e
		}
	}
	return best
}

// entry returns what the firewall holds for e: the host ports that lead to
// it and the container ports open on it.
func (p *publisher) entry(e *Endpoint) ([]netspec.Mapping, []netspec.Port) {
	if !p.publishable(e) || e.Sandbox == "" {
		return nil, nil
	}
	s := p.sandboxes[e.Sandbox]
	if s == nil || len(s.Ports) == 0 {
		return nil, nil
	}
	var ports []netspec.Mapping
	if p.target(e.Sandbox) == e {
		ports = s.Ports
	}
	var open []netspec.Port
	if m := p.networks[e.NetworkID].Mode; m == netspec.ModePublic || m == netspec.ModeRouted {
		open = openPorts(s.Ports)
	}
	return ports, open
}

// request gives e's sandbox a record with the port requests ports, unless
// it has one already (the first the engine sent count).
func (p *publisher) request(e *Endpoint, ports []PortRequest) {
	if len(ports) == 0 || e.Sandbox == "" || p.sandboxes[e.Sandbox] != nil {
		return
	}
	p.sandboxes[e.Sandbox] = &Sandbox{Key: e.Sandbox, PortRequests: slices.Clone(ports)}
}

// requested reports whether the sandbox has port requests.
func (p *publisher) requested(sandbox string) bool { return p.sandboxes[sandbox] != nil }

// holdOrReleasePorts holds host ports for the sandbox's requests while it
// has a target and releases them when it has none. It changes only the
// Ports of the sandbox's record.
func (p *publisher) holdOrReleasePorts(sandbox string) error {
	s := p.sandboxes[sandbox]
	if s == nil {
		return nil
	}
	has := p.target(sandbox) != nil
	switch {
	case has && len(s.Ports) == 0:
		ports, err := AssignHostPorts(s.PortRequests, p.portTaken)
		if err != nil {
			return err
		}
		p.updateSandbox(s, func() { s.Ports = ports })
	case !has && len(s.Ports) > 0:
		p.updateSandbox(s, func() { s.Ports = nil })
	}
	return nil
}

// forget deletes the record of the sandbox when no endpoint is in it any
// more: a container that joins again starts over with the requests the
// engine sends then.
func (p *publisher) forget(sandbox string) {
	s := p.sandboxes[sandbox]
	if s == nil || len(p.bySandbox[sandbox]) > 0 {
		return
	}
	p.unindexSandbox(s)
	delete(p.sandboxes, sandbox)
}

// portTaken reports whether a host port is held already for the protocol
// and a host address (zero means all) that fwstate.Conflict, the one rule
// for host ports published twice, says addr overlaps. The index finds the
// host addresses holding the port.
func (p *publisher) portTaken(proto uint8, addr netip.Addr, port uint16) bool {
	want := netspec.Mapping{Proto: proto, HostAddr: addr, HostFirst: port, HostLast: port}
	for held := range p.hostPorts[hostPort{proto, port}] {
		if fwstate.Conflict(netip.Addr{}, netspec.Mapping{Proto: proto, HostAddr: held, HostFirst: port, HostLast: port}, netip.Addr{}, want) != nil {
			return true
		}
	}
	return false
}

// index adds e to the sandbox index; unindex takes it out. A change of e's
// Sandbox goes through update, which calls both.
func (p *publisher) index(e *Endpoint) {
	if e.Sandbox == "" {
		return
	}
	m := p.bySandbox[e.Sandbox]
	if m == nil {
		m = map[string]*Endpoint{}
		p.bySandbox[e.Sandbox] = m
	}
	m[e.ID] = e
}

func (p *publisher) unindex(e *Endpoint) {
	if m := p.bySandbox[e.Sandbox]; m != nil && m[e.ID] == e {
		delete(m, e.ID)
		if len(m) == 0 {
			delete(p.bySandbox, e.Sandbox)
		}
	}
}

// update changes e's Sandbox by change, keeping the indexes: every such
// change goes through it.
func (p *publisher) update(e *Endpoint, change func()) {
	p.unindex(e)
	change()
	p.index(e)
}

// indexSandbox adds the host ports s holds to the host port index;
// unindexSandbox takes them out. A change of s.Ports goes through
// updateSandbox, which calls both.
func (p *publisher) indexSandbox(s *Sandbox) {
	for _, mp := range s.Ports {
		for port := int(mp.HostFirst); port <= int(mp.HostLast); port++ {
			k := hostPort{mp.Proto, uint16(port)}
			m := p.hostPorts[k]
			if m == nil {
				m = map[netip.Addr]int{}
				p.hostPorts[k] = m
			}
			m[mp.HostAddr]++
		}
	}
}

func (p *publisher) unindexSandbox(s *Sandbox) {
	for _, mp := range s.Ports {
		for port := int(mp.HostFirst); port <= int(mp.HostLast); port++ {
			k := hostPort{mp.Proto, uint16(port)}
			m := p.hostPorts[k]
			if m[mp.HostAddr]--; m[mp.HostAddr] <= 0 {
				delete(m, mp.HostAddr)
			}
			if len(m) == 0 {
				delete(p.hostPorts, k)
			}
		}
	}
}

// updateSandbox changes s.Ports by change, keeping the host port index.
func (p *publisher) updateSandbox(s *Sandbox, change func()) {
	p.unindexSandbox(s)
	change()
	p.indexSandbox(s)
}

func (p *publisher) sortedSandbox(sb string) []*Endpoint {
	return sortedBy(p.bySandbox[sb], func(e *Endpoint) string { return e.ID })
}

// formatMappings and formatOpen write mappings and open ports as the log
// shows them: "[::]:8081->80/tcp,[::1]:5432->5432/tcp" and "80/tcp,9000-9010/udp".
func formatMappings(ms []netspec.Mapping) string {
	return joinEach(ms, func(m netspec.Mapping) string {
		host := "[::]"
		if m.HostAddr.IsValid() {
			host = "[" + m.HostAddr.String() + "]"
		}
		last := m.HostLast - m.HostFirst
		return fmt.Sprintf("%s:%s->%s/%s", host, portRange(m.HostFirst, m.HostFirst+last),
			portRange(m.ContainerFirst, m.ContainerFirst+last), netspec.ProtoName(m.Proto))
	})
}

func formatOpen(ps []netspec.Port) string {
	return joinEach(ps, func(p netspec.Port) string { return portRange(p.First, p.Last) + "/" + netspec.ProtoName(p.Proto) })
}

// portRange is "80" or "9000-9010".
func portRange(first, last uint16) string {
	if last > first {
		return fmt.Sprintf("%d-%d", first, last)
	}
	return fmt.Sprint(first)
}

// joinEach joins f of each of xs with commas.
func joinEach[T any](xs []T, f func(T) string) string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = f(x)
	}
	return strings.Join(out, ",")
}
