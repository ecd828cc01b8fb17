package nat

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// randomUpdate picks an endpoint of one of the networks and gives it random
// ports (often clashing with another endpoint's) and addresses on other
// networks (sometimes one Validate refuses), or removes it.
func randomUpdate(r *rand.Rand, nets []Network) EndpointUpdate {
	n := nets[r.IntN(len(nets))]
	a := n.Subnet.Addr()
	for range 2 + r.IntN(6) {
		a = a.Next()
	}
	u := EndpointUpdate{Bridge: n.Bridge, Addr: a}
	if r.IntN(4) == 0 {
		u.Remove = true
		return u
	}
	for range r.IntN(3) {
		first := uint16(8000 + r.IntN(12))
		m := Mapping{Proto: []uint8{ProtoTCP, ProtoUDP}[r.IntN(2)], HostFirst: first, HostLast: first + uint16(r.IntN(2)), ContainerFirst: uint16(80 + r.IntN(3))}
		if r.IntN(5) == 0 { // wider than Model indexes port by port
			m.HostFirst = uint16(7950 + r.IntN(100))
			m.HostLast = m.HostFirst + wideSpan + uint16(r.IntN(50))
			m.ContainerFirst = m.HostFirst
		}
		if r.IntN(3) == 0 {
			m.HostAddr = []netip.Addr{hostA, hostB}[r.IntN(2)]
		}
		u.Ports = append(u.Ports, m)
	}
	for range r.IntN(3) {
		first := uint16(80 + r.IntN(4))
		u.Open = append(u.Open, Port{Proto: []uint8{ProtoTCP, ProtoUDP}[r.IntN(2)], First: first, Last: first + uint16(r.IntN(3))})
	}
	for range r.IntN(3) {
		o := nets[r.IntN(len(nets))] // its own or an internal one: refused
		b := o.Subnet.Addr()
		for range 2 + r.IntN(6) {
			b = b.Next()
		}
		if !slices.Contains(u.Also, b) {
			u.Also = append(u.Also, b)
		}
	}
	return u
}

// stateWith is the from-scratch view of us applied to s, as a driver would
// build it.
func stateWith(s State, us []EndpointUpdate) State {
	s = State{Uplinks: s.Uplinks, HostAddrs: s.HostAddrs, Networks: slices.Clone(s.Networks)}
	for i, n := range s.Networks { // sorted as Model.State sorts them
		s.Networks[i].Endpoints = slices.SortedFunc(slices.Values(n.Endpoints), func(a, b Endpoint) int { return a.Addr.Compare(b.Addr) })
	}
	for _, u := range us {
		for i, n := range s.Networks {
			if n.Bridge != u.Bridge {
				continue
			}
			eps := slices.DeleteFunc(slices.Clone(n.Endpoints), func(e Endpoint) bool { return e.Addr == u.Addr })
			if !u.Remove {
				eps = append(eps, Endpoint{Addr: u.Addr, Ports: u.Ports, Open: u.Open, Also: u.Also})
			}
			slices.SortFunc(eps, func(a, b Endpoint) int { return a.Addr.Compare(b.Addr) })
			s.Networks[i].Endpoints = eps
		}
	}
	return s
}

// TestModelUpdateEqualsRebuild applies random endpoint changes to a Model:
// each change is accepted exactly when Validate accepts the state built
// from scratch, and then the patches applied to the old table give the
// table Build makes of that state; a refused change leaves the model as it
// was.
func TestModelUpdateEqualsRebuild(t *testing.T) {
	nets := []Network{internalNet(), natNet(), publicNet()}
	s := stateWith(state(nets...), nil)
	m, err := NewModel(s)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(6, 1000))
	accepted := 0
	for step := range 3000 {
		us := []EndpointUpdate{randomUpdate(r, nets)}
		if r.IntN(3) == 0 {
			if v := randomUpdate(r, nets); v.Addr != us[0].Addr {
				us = append(us, v)
			}
		}
		want := stateWith(s, us)
		verr := Validate(want)
		before, err := Build(s)
		if err != nil {
			t.Fatal(err)
		}
		patches, err := m.Update(us)
		if (err != nil) != (verr != nil) {
			t.Fatalf("step %d %+v: Update error %v, Validate of the rebuilt state %v", step, us, err, verr)
		}
		if err != nil {
			// Which of two reasons comes first may differ; with good
			// other addresses the kind of refusal must agree.
			if errors.Is(verr, ErrPortConflict) != errors.Is(err, ErrPortConflict) && !badAlso(want) {
				t.Fatalf("step %d: Update error %v, Validate %v", step, err, verr)
			}
			if diff := cmp.Diff(s, m.State(), addrCmp, cmpopts.EquateEmpty()); diff != "" {
				t.Fatalf("step %d: refused update changed the model (-before +after):\n%s", step, diff)
			}
			continue
		}
		accepted++
		s = want
		if diff := cmp.Diff(s, m.State(), addrCmp, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("step %d: model differs from the rebuilt state (-rebuilt +model):\n%s", step, diff)
		}
		after, err := Build(s)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(after.String(), ApplyPatches(before, patches).String()); diff != "" {
			t.Fatalf("step %d %+v: patched table differs from a rebuild (-rebuild +patched):\n%s", step, us, diff)
		}
		// The model's own indexes agree with a model built from scratch.
		fresh, err := NewModel(s)
		if err != nil {
			t.Fatal(err)
		}
		if m.elements != fresh.elements || len(m.ports) != len(fresh.ports) || len(m.owner) != len(fresh.owner) || len(m.also) != len(fresh.also) {
			t.Fatalf("step %d: indexes: elements %d/%d ports %d/%d owners %d/%d others %d/%d (updated/fresh)", step,
				m.elements, fresh.elements, len(m.ports), len(fresh.ports), len(m.owner), len(fresh.owner), len(m.also), len(fresh.also))
		}
	}
	if accepted < 300 {
		t.Errorf("only %d of 3000 random changes accepted: the test exercises too little", accepted)
	}
}

func TestModelUpdateUnknownNetwork(t *testing.T) {
	m, err := NewModel(state(publicNet()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Update([]EndpointUpdate{{Bridge: "v6b-none", Addr: hostA}}); err == nil {
		t.Error("update of an unknown network accepted")
	}
}

// badAlso reports whether Validate refuses s for its endpoints' other
// addresses: it refuses s without any published port.
func badAlso(s State) bool {
	s.Networks = slices.Clone(s.Networks)
	for i, n := range s.Networks {
		eps := slices.Clone(n.Endpoints)
		for j := range eps {
			eps[j].Ports = nil
		}
		s.Networks[i].Endpoints = eps
	}
	return Validate(s) != nil
}

var addrCmp = cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})
