package nat

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// patchWorlds are desired states one after the other as a driver sees them:
// endpoints join and leave, ports get published and moved, a network comes
// and goes.
func patchWorlds() []State {
	pub := publicNet()
	more := publicNet()
	more.Endpoints = append(more.Endpoints, Endpoint{Addr: netip.MustParseAddr("2001:db8:1234:a1::111"), Ports: []Mapping{
		{Proto: ProtoUDP, HostFirst: 9000, HostLast: 9002, ContainerFirst: 9000},
	}, Open: []Port{{Proto: ProtoUDP, First: 9000, Last: 9002}}})
	moved := publicNet()
	moved.Endpoints[0].Ports[0].HostFirst, moved.Endpoints[0].Ports[0].HostLast = 8090, 8090 // same key set, new DNAT key
	retarget := publicNet()
	retarget.Endpoints[0].Ports[0].ContainerFirst = 8000 // same DNAT key, new value
	left := publicNet()
	left.Endpoints = nil
	return []State{
		{},
		state(pub),
		state(more),
		state(moved),
		state(retarget),
		state(left),
		state(natNet(), pub),
		state(internalNet(), natNet(), more),
		state(natNet(), left),
		state(pub),
	}
}

// TestDiffEqualsRebuild: for every pair of worlds, either Diff refuses (a
// rebuild) or the patched table equals the table built from scratch.
func TestDiffEqualsRebuild(t *testing.T) {
	ws := patchWorlds()
	for i, a := range ws {
		for j, b := range ws {
			ra, err := Build(a)
			if err != nil {
				t.Fatal(err)
			}
			rb, err := Build(b)
			if err != nil {
				t.Fatal(err)
			}
			p, ok := Diff(ra, rb)
			if !ok {
				continue
			}
			if diff := cmp.Diff(rb.String(), ApplyPatches(ra, p).String()); diff != "" {
				t.Errorf("world %d -> %d: patched table differs from a rebuild (-rebuild +patched):\n%s", i, j, diff)
			}
		}
	}
}

// TestDiffEndpointChangesArePatches: endpoints and ports change elements
// only; new networks (interval sets) and the empty table need a rebuild.
func TestDiffEndpointChangesArePatches(t *testing.T) {
	ws := patchWorlds()
	build := func(s State) *Ruleset {
		r, err := Build(s)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	for _, c := range []struct {
		from, to int
		ok       bool
	}{
		{1, 1, true}, {1, 2, true}, {2, 1, true}, {1, 3, true}, {1, 4, true}, {1, 5, true},
		{0, 1, false}, // the empty table has no chains
		{1, 6, false}, // a new network changes interval sets
		{5, 0, false},
	} {
		p, ok := Diff(build(ws[c.from]), build(ws[c.to]))
		if ok != c.ok {
			t.Errorf("%d -> %d: ok = %v, want %v", c.from, c.to, ok, c.ok)
			continue
		}
		if c.from == c.to && len(p) != 0 {
			t.Errorf("%d -> %d: no change gave patches %+v", c.from, c.to, p)
		}
	}
	// One more endpoint publishing a range of 3 ports touches only its own
	// elements, one each, whatever the range's length: published, open and
	// one dnat_range entry per host address.
	p, _ := Diff(build(ws[1]), build(ws[2]))
	n := 0
	for _, sp := range p {
		n += len(sp.Delete) + len(sp.Add)
	}
	if want := 1 + 1 + 2; n != want {
		t.Errorf("adding an endpoint with 3 ports changed %d elements, want %d: %+v", n, want, p)
	}
}
