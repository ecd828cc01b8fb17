package driver

import (
	"net/netip"
	"slices"
	"testing"
)

// TestJoinLeavesPresentBridgeAlone: Join must not re-run EnsureBridge (which
// walks every port of the bridge) when the bridge exists, so attaching does
// not cost more with more endpoints; a bridge deleted behind our back is
// still re-created.
func TestJoinLeavesPresentBridgeAlone(t *testing.T) {
	r := newRig(t)
	mustNetwork(t, r, netA, "2001:db8:1234:a1:1::/112", nil)
	mustEndpoint(t, r, netA, ep1, "2001:db8:1234:a1:1::2/112")
	mustEndpoint(t, r, netA, ep2, "2001:db8:1234:a1:1::3/112")
	r.links.calls = nil
	if _, err := r.d.Join(JoinRequest{NetworkID: netA, EndpointID: ep1, SandboxKey: "/run/docker/netns/c1"}); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(r.links.calls, "ensure-bridge v6b-aaaaaaaaaaa") {
		t.Errorf("join re-ensured a present bridge: %v", r.links.calls)
	}
	delete(r.links.links, "v6b-aaaaaaaaaaa")
	if _, err := r.d.Join(JoinRequest{NetworkID: netA, EndpointID: ep2, SandboxKey: "/run/docker/netns/c2"}); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(r.links.calls, "ensure-bridge v6b-aaaaaaaaaaa") || r.links.links["v6b-aaaaaaaaaaa"] != "bridge" {
		t.Errorf("join did not re-create a missing bridge: %v", r.links.calls)
	}
	if got := r.nb.addrs; len(got) != 2 || got[1] != netip.MustParseAddr("2001:db8:1234:a1:1::3") {
		t.Errorf("ndp targets = %v", got)
	}
}
