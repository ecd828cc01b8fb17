package driver

import (
	"net/netip"
	"testing"
)

// The IPAM asks HoldsAddr before handing out an address: an endpoint's
// address is held from CreateEndpoint through Join and Leave (its firewall
// and NDP state stay while it exists) until DeleteEndpoint, and again after
// a restart that loaded the endpoint's record.
func TestHoldsAddrForTheEndpointsLifetime(t *testing.T) {
	r := newRig(t)
	mustNetwork(t, r, netA, "2001:db8:1234:a1:1::/112", nil)
	addr := netip.MustParseAddr("2001:db8:1234:a1:1::ab53")
	other := netip.MustParseAddr("2001:db8:1234:a1:1::ab54")
	if r.d.HoldsAddr(addr) {
		t.Fatal("held before any endpoint has it")
	}
	mustEndpoint(t, r, netA, ep1, "2001:db8:1234:a1:1::ab53/112")
	check := func(when string, want bool) {
		t.Helper()
		if got := r.d.HoldsAddr(addr); got != want {
			t.Errorf("%s: HoldsAddr(%s) = %v, want %v", when, addr, got, want)
		}
		if r.d.HoldsAddr(other) {
			t.Errorf("%s: an address no endpoint has is held", when)
		}
	}
	check("created", true)
	if _, err := r.d.Join(JoinRequest{NetworkID: netA, EndpointID: ep1, SandboxKey: "/run/docker/netns/c1", Ports: portmap("", 8081, 80)}); err != nil {
		t.Fatal(err)
	}
	check("joined", true)
	r.d = r.reopen(t)
	check("after a restart", true)
	if err := r.d.Leave(netA, ep1); err != nil {
		t.Fatal(err)
	}
	check("left", true)
	if err := r.d.DeleteEndpoint(netA, ep1); err != nil {
		t.Fatal(err)
	}
	check("deleted", false)
}
