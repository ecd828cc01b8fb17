package driver

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/v6bridge/v6bridge/fwstate"
)

// TestIndexesEqualRebuild runs a random sequence of create, join, program,
// leave and delete over two networks and shared sandboxes, and after every
// step checks that the sandbox and host port indexes equal indexes rebuilt
// from the records, that the sandbox records are those on disk and live
// exactly while an endpoint is in their sandbox, and that the firewall and
// NDP state the updates left equal a whole-state sync from the records.
func TestIndexesEqualRebuild(t *testing.T) {
	r := newRig(t)
	nets := []struct{ id, subnet string }{
		{"neta", "2001:db8:1234:a1:1::/112"},
		{"netb", "fd00:1:2:3::/64"},
	}
	for _, n := range nets {
		if err := r.d.CreateNetwork(createReq(n.id, n.subnet, nil)); err != nil {
			t.Fatal(err)
		}
	}
	rnd := rand.New(rand.NewPCG(6, 6))
	published := 0
	for step := range 2000 {
		ni := rnd.IntN(len(nets))
		i := rnd.IntN(12)
		epID := fmt.Sprintf("ep-%d-%d", ni, i)
		addr := netip.MustParsePrefix(nets[ni].subnet).Addr()
		for range i + 2 {
			addr = addr.Next()
		}
		sandbox := fmt.Sprintf("sb%d", rnd.IntN(6))
		opts := portmap("", 8000+rnd.IntN(8), 80)
		if rnd.IntN(3) == 0 {
			opts = portmap("", 0, 80) // host port picked
		}
		var err error
		switch rnd.IntN(5) {
		case 0:
			_, err = r.d.CreateEndpoint(CreateEndpointRequest{NetworkID: nets[ni].id, EndpointID: epID, AddressIPv6: netip.PrefixFrom(addr, 64)})
		case 1:
			// The engine never puts two endpoints of one network into
			// one sandbox (a container joins a network once): the
			// firewall refuses two endpoints of a bridge answering for
			// the same address on another network.
			if slices.ContainsFunc(slices.Collect(maps.Values(r.d.pub.bySandbox[sandbox])), func(o *Endpoint) bool {
				return o.ID != epID && o.NetworkID == nets[ni].id
			}) {
				continue
			}
			_, err = r.d.Join(JoinRequest{NetworkID: nets[ni].id, EndpointID: epID, SandboxKey: sandbox, Ports: opts})
		case 2:
			err = r.d.ProgramExternalConnectivity(nets[ni].id, epID, opts)
		case 3:
			err = r.d.Leave(nets[ni].id, epID)
		case 4:
			err = r.d.DeleteEndpoint(nets[ni].id, epID)
		}
		// A refused step (port taken, unknown endpoint) must leave
		// everything consistent too.
		if e := r.d.endpoints[epID]; err == nil && e != nil && r.d.pub.sandboxes[e.Sandbox] != nil && len(r.d.pub.sandboxes[e.Sandbox].Ports) > 0 {
			published++
		}
		checkIndexes(t, step, r.d)
		checkSandboxRecords(t, step, r.d, r.store)
		want := r.d.firewallState()
		if diff := cmp.Diff(sortedState(want), sortedState(r.fw.last), cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{}), cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("step %d: firewall after updates differs from a whole sync (-whole +updated):\n%s", step, diff)
		}
		addrs, _ := r.d.ndpTargets()
		slices.SortFunc(addrs, netip.Addr.Compare)
		// A whole sync hands the targets in network order, an update
		// sorted: the set counts.
		got := slices.SortedFunc(slices.Values(r.nb.addrs), netip.Addr.Compare)
		if !slices.Equal(addrs, got) {
			t.Fatalf("step %d: ndp targets %v, whole sync %v", step, r.nb.addrs, addrs)
		}
	}
	if published < 100 {
		t.Errorf("only %d steps left an endpoint publishing: the test exercises too little", published)
	}
	if r.fw.updates == 0 {
		t.Error("no change went to the firewall as an endpoint update")
	}
}

func sortedState(s fwstate.State) fwstate.State {
	for i := range s.Networks {
		eps := slices.Clone(s.Networks[i].Endpoints)
		slices.SortFunc(eps, func(a, b fwstate.Endpoint) int { return a.Addr.Compare(b.Addr) })
		s.Networks[i].Endpoints = eps
	}
	return s
}

func checkIndexes(t *testing.T, step int, d *Driver) {
	t.Helper()
	sandboxes := map[string]map[string]*Endpoint{}
	ports := map[hostPort]map[netip.Addr]int{}
	fresh := &publisher{bySandbox: sandboxes, hostPorts: ports}
	var held heldAddrs
	for _, e := range d.endpoints {
		fresh.index(e)
		held.hold(e)
	}
	for _, s := range d.pub.sandboxes {
		fresh.indexSandbox(s)
	}
	ids := func(m map[string]map[string]*Endpoint) map[string][]string {
		out := map[string][]string{}
		for sb, es := range m {
			for id, e := range es {
				if e != d.endpoints[id] {
					t.Fatalf("step %d: sandbox index holds a stale endpoint %s", step, id)
				}
				out[sb] = append(out[sb], id)
			}
			slices.Sort(out[sb])
		}
		return out
	}
	if diff := cmp.Diff(ids(sandboxes), ids(d.pub.bySandbox), cmpopts.EquateEmpty()); diff != "" {
		t.Fatalf("step %d: sandbox index (-rebuilt +kept):\n%s", step, diff)
	}
	if diff := cmp.Diff(ports, d.pub.hostPorts, cmp.AllowUnexported(hostPort{}), cmpopts.EquateComparable(netip.Addr{}), cmpopts.EquateEmpty()); diff != "" {
		t.Fatalf("step %d: host port index (-rebuilt +kept):\n%s", step, diff)
	}
	if diff := cmp.Diff(held.m, d.held.m, cmpopts.EquateComparable(netip.Addr{}), cmpopts.EquateEmpty()); diff != "" {
		t.Fatalf("step %d: held addresses (-rebuilt +kept):\n%s", step, diff)
	}
}

// checkSandboxRecords checks that the driver's sandbox records are those in
// the store, and that a sandbox has one exactly while an endpoint is in it
// and the engine sent requests for it.
func checkSandboxRecords(t *testing.T, step int, d *Driver, st *memStore) {
	t.Helper()
	mem := map[string]Sandbox{}
	for key, s := range d.pub.sandboxes {
		if key != s.Key || len(s.PortRequests) == 0 || len(d.pub.bySandbox[key]) == 0 {
			t.Fatalf("step %d: sandbox record %+v: no requests, or no endpoint is in its sandbox", step, s)
		}
		mem[key] = *s
	}
	if diff := cmp.Diff(st.sandboxes, mem, cmpopts.EquateComparable(netip.Addr{}), cmpopts.EquateEmpty()); diff != "" {
		t.Fatalf("step %d: sandbox records (-store +driver):\n%s", step, diff)
	}
}
