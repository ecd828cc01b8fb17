package nat

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/v6bridge/v6bridge/fwstate"
)

// Model is a valid State indexed so that changing one endpoint costs what
// that endpoint contributes, not what the whole State holds: Update checks
// the endpoint against indexes of addresses and host ports (what Validate
// checks over the whole State) and returns the set elements to delete and
// add (what Diff of two Builds returns). The zero value is not usable; use
// NewModel.
type Model struct {
	uplinks   []string
	hostAddrs []netip.Addr
	networks  []Network // without Endpoints; sorted as the State was
	nets      map[string]*modelNet
	owner     map[netip.Addr]string   // endpoint address -> bridge
	also      map[alsoKey]netip.Addr  // bridge and another address of its endpoint's container -> endpoint address
	ports     map[protoPort][]portUse // host port use of mappings of at most wideSpan ports
	wide      []portUse               // wider mappings
	elements  int                     // countElements of the State
}

type modelNet struct {
	idx int // in Model.networks
	eps map[netip.Addr]Endpoint
}

type alsoKey struct {
	bridge string
	addr   netip.Addr
}

type protoPort struct {
	proto uint8
	port  uint16
}

// portUse is one endpoint publishing one host port (of mapping m).
type portUse struct {
	owner netip.Addr
	m     Mapping
}

// NewModel validates s and indexes it.
func NewModel(s State) (*Model, error) {
	if err := Validate(s); err != nil {
		return nil, err
	}
	m := &Model{
		uplinks:   slices.Clone(s.Uplinks),
		hostAddrs: slices.Clone(s.HostAddrs),
		nets:      map[string]*modelNet{},
		owner:     map[netip.Addr]string{},
		also:      map[alsoKey]netip.Addr{},
		ports:     map[protoPort][]portUse{},
	}
	for i, n := range s.Networks {
		eps := n.Endpoints
		n.Endpoints = nil
		n.Allow = slices.Clone(n.Allow)
		m.networks = append(m.networks, n)
		mn := &modelNet{idx: i, eps: make(map[netip.Addr]Endpoint, len(eps))}
		m.nets[n.Bridge] = mn
		m.elements += countElements(State{HostAddrs: s.HostAddrs, Networks: []Network{n}})
		for _, e := range eps {
			m.set(mn, n, cloneEndpoint(e))
		}
	}
	return m, nil
}

// State returns the State the model holds: networks in their order,
// endpoints sorted by address. Build(m.State()) is the ruleset after every
// patch Update returned so far.
func (m *Model) State() State {
	s := State{Uplinks: slices.Clone(m.uplinks), HostAddrs: slices.Clone(m.hostAddrs)}
	for _, n := range m.networks {
		mn := m.nets[n.Bridge]
		n.Allow = slices.Clone(n.Allow)
		n.Endpoints = make([]Endpoint, 0, len(mn.eps))
		for _, e := range mn.eps {
			n.Endpoints = append(n.Endpoints, cloneEndpoint(e))
		}
		slices.SortFunc(n.Endpoints, func(a, b Endpoint) int { return a.Addr.Compare(b.Addr) })
		s.Networks = append(s.Networks, n)
	}
	return s
}

// Update applies us and returns the element changes that turn Build of the
// model before into Build of the model after, one patch per set that
// changes. us is checked as a whole: an endpoint may take a host port that
// another update of us releases. An update that Validate would refuse (an
// address outside its subnet or on another network, a bad mapping, a host
// port another endpoint publishes, too many elements) is an error and
// leaves the model as it was. Each address may appear once in us.
func (m *Model) Update(us []EndpointUpdate) ([]SetPatch, error) {
	seen := make(map[netip.Addr]bool, len(us))
	for _, u := range us {
		if seen[u.Addr] {
			return nil, fmt.Errorf("endpoint %s: updated twice in one change", u.Addr)
		}
		seen[u.Addr] = true
		if _, ok := m.nets[u.Bridge]; !ok {
			return nil, fmt.Errorf("endpoint %s: unknown network %q", u.Addr, u.Bridge)
		}
	}
	// Take every changed endpoint out first, then put the new entries in,
	// each checked against the others already in.
	undo := m.snapshot(us)
	var dels, adds endpointSets
	olds := make([]endpointSets, len(us))
	for i, u := range us {
		mn := m.nets[u.Bridge]
		n := m.networks[mn.idx]
		if old, had := mn.eps[u.Addr]; had && n.Mode != ModeInternal {
			endpointElements(m.hostAddrs, n, old, &olds[i])
		}
		m.unset(mn, n, u.Addr)
	}
	for i, u := range us {
		mn := m.nets[u.Bridge]
		n := m.networks[mn.idx]
		var w endpointSets
		if !u.Remove {
			e := Endpoint{Addr: u.Addr, Ports: slices.Clone(u.Ports), Open: slices.Clone(u.Open), Also: slices.Clone(u.Also)}
			if err := m.check(n, e); err != nil {
				m.revert(us, undo)
				return nil, fmt.Errorf("network %q: %w", n.Bridge, err)
			}
			m.set(mn, n, e)
			if n.Mode != ModeInternal {
				endpointElements(m.hostAddrs, n, e, &w)
			}
		}
		for k := range w {
			p := diffElements(Set{Elements: sortElements(olds[i][k])}, Set{Elements: sortElements(w[k])})
			dels[k] = append(dels[k], p.Delete...)
			adds[k] = append(adds[k], p.Add...)
		}
	}
	if m.elements > maxElements {
		c := m.elements
		m.revert(us, undo)
		return nil, fmt.Errorf("the published and allowed ports expand to %d set elements: accepted are at most %d", c, maxElements)
	}
	var patches []SetPatch
	for i, def := range endpointSetDefs() {
		if len(dels[i])+len(adds[i]) > 0 {
			patches = append(patches, SetPatch{Set: def, Delete: dels[i], Add: adds[i]})
		}
	}
	return patches, nil
}

// snapshot returns the updates that restore the entries us is about to
// change, for a caller that must undo a successful Update.
func (m *Model) snapshot(us []EndpointUpdate) []EndpointUpdate {
	out := make([]EndpointUpdate, 0, len(us))
	for i := len(us) - 1; i >= 0; i-- {
		u := us[i]
		mn, ok := m.nets[u.Bridge]
		if !ok {
			continue
		}
		if e, had := mn.eps[u.Addr]; had {
			out = append(out, EndpointUpdate{Bridge: u.Bridge, Addr: u.Addr, Ports: slices.Clone(e.Ports), Open: slices.Clone(e.Open), Also: slices.Clone(e.Also)})
		} else {
			out = append(out, EndpointUpdate{Bridge: u.Bridge, Addr: u.Addr, Remove: true})
		}
	}
	return out
}

// revert takes the entries of us out and puts back those of undo
// (snapshot's result before the change): they were valid together.
func (m *Model) revert(us, undo []EndpointUpdate) {
	for _, u := range us {
		mn := m.nets[u.Bridge]
		m.unset(mn, m.networks[mn.idx], u.Addr)
	}
	for _, u := range undo {
		if !u.Remove {
			mn := m.nets[u.Bridge]
			m.set(mn, m.networks[mn.idx], Endpoint{Addr: u.Addr, Ports: u.Ports, Open: u.Open, Also: u.Also})
		}
	}
}

// check does for one endpoint what Validate does for a State.
func (m *Model) check(n Network, e Endpoint) error {
	a, ports := e.Addr, e.Ports
	if err := validateEndpoint(n, e); err != nil {
		return err
	}
	if err := validateAlso(m.networks, n, e); err != nil {
		return err
	}
	for _, o := range e.Also {
		if b, ok := m.also[alsoKey{n.Bridge, o}]; ok && b != a {
			return alsoTwiceError(e.Addr, o, b)
		}
	}
	if b, ok := m.owner[a]; ok && b != n.Bridge {
		return fmt.Errorf("endpoint %s also on network %q", a, b)
	}
	if n.Mode == ModeInternal {
		return nil
	}
	// Against the other endpoints' host ports, then among its own: the
	// same rule as CheckConflicts (fwstate.Conflict), the existing owner
	// named first.
	check := func(use portUse, p Mapping) error {
		if use.owner == a {
			return nil
		}
		return fwstate.Conflict(use.owner, use.m, a, p)
	}
	for _, p := range ports {
		for _, use := range m.wide {
			if err := check(use, p); err != nil {
				return err
			}
		}
		if span(p) <= len(m.ports) {
			for port := int(p.HostFirst); port <= int(p.HostLast); port++ {
				for _, use := range m.ports[protoPort{p.Proto, uint16(port)}] {
					if err := check(use, p); err != nil {
						return err
					}
				}
			}
			continue
		}
		// A range wider than the ports in use: walk those instead.
		for k, uses := range m.ports {
			if k.proto == p.Proto && k.port >= p.HostFirst && k.port <= p.HostLast {
				for _, use := range uses {
					if err := check(use, p); err != nil {
						return err
					}
				}
			}
		}
	}
	for j := range ports {
		for i := 0; i < j; i++ {
			if ports[i] == ports[j] {
				continue
			}
			if err := fwstate.Conflict(a, ports[i], a, ports[j]); err != nil {
				return err
			}
		}
	}
	return nil
}

func (m *Model) set(mn *modelNet, n Network, e Endpoint) {
	a := e.Addr
	mn.eps[a] = e
	m.owner[a] = n.Bridge
	for _, o := range e.Also {
		m.also[alsoKey{n.Bridge, o}] = a
	}
	if n.Mode == ModeInternal {
		return
	}
	m.elements += endpointCount(m.hostAddrs, e)
	for _, p := range e.Ports {
		if span(p) > wideSpan {
			m.wide = append(m.wide, portUse{owner: a, m: p})
			continue
		}
		for port := int(p.HostFirst); port <= int(p.HostLast); port++ {
			k := protoPort{p.Proto, uint16(port)}
			m.ports[k] = append(m.ports[k], portUse{owner: a, m: p})
		}
	}
}

func (m *Model) unset(mn *modelNet, n Network, a netip.Addr) {
	e, ok := mn.eps[a]
	if !ok {
		return
	}
	delete(mn.eps, a)
	delete(m.owner, a)
	for _, o := range e.Also {
		delete(m.also, alsoKey{n.Bridge, o})
	}
	if n.Mode == ModeInternal {
		return
	}
	m.elements -= endpointCount(m.hostAddrs, e)
	m.wide = slices.DeleteFunc(m.wide, func(u portUse) bool { return u.owner == a })
	for _, p := range e.Ports {
		if span(p) > wideSpan {
			continue
		}
		for port := int(p.HostFirst); port <= int(p.HostLast); port++ {
			k := protoPort{p.Proto, uint16(port)}
			uses := slices.DeleteFunc(m.ports[k], func(u portUse) bool { return u.owner == a })
			if len(uses) == 0 {
				delete(m.ports, k)
			} else {
				m.ports[k] = uses
			}
		}
	}
}

// wideSpan is the widest host port range Model indexes port by port; wider
// ones (a media server's 10,000 ports) are kept in a list checked as a
// whole, so publishing them costs what one port costs.
const wideSpan = 64

func span(p Mapping) int { return int(p.HostLast-p.HostFirst) + 1 }

// endpointCount is countElements for one endpoint.
func endpointCount(hostAddrs []netip.Addr, e Endpoint) int {
	return countElements(State{HostAddrs: hostAddrs, Networks: []Network{{Mode: ModePublic, Endpoints: []Endpoint{e}}}})
}

func cloneEndpoint(e Endpoint) Endpoint {
	return Endpoint{Addr: e.Addr, Ports: slices.Clone(e.Ports), Open: slices.Clone(e.Open), Also: slices.Clone(e.Also)}
}

// ErrNoModel is returned by Table.UpdateEndpoints before the first Apply.
var ErrNoModel = errors.New("firewall state not applied yet")
