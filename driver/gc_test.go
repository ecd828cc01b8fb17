package driver

import (
	"net/netip"
	"testing"
)

// The IPAM asks UsesSubnet whether a placeholder IPv4 pool (engines < 28)
// is still a network's: yes for the block a network records, no for
// another; a record of an older version that does not name its block
// keeps every placeholder in use.
func TestUsesSubnetPlaceholder(t *testing.T) {
	r := newRig(t)
	req := createReq(netA, "fd00:1::/112", nil)
	req.EnableIPv4 = nil // an engine before 28
	req.IPv4 = []PoolData{{Pool: netip.MustParsePrefix("169.254.4.0/22")}}
	if err := r.d.CreateNetwork(req); err != nil {
		t.Fatal(err)
	}
	mine, other := netip.MustParsePrefix("169.254.4.0/22"), netip.MustParsePrefix("169.254.8.0/22")
	if !r.d.UsesSubnet(mine) || r.d.UsesSubnet(other) {
		t.Errorf("UsesSubnet(%s) = %v, UsesSubnet(%s) = %v; want true, false", mine, r.d.UsesSubnet(mine), other, r.d.UsesSubnet(other))
	}
	r.d.networks[netA].IPv4Pool = netip.Prefix{} // as an older version recorded it
	if !r.d.UsesSubnet(other) {
		t.Error("a record without its block does not keep other placeholders in use")
	}
}
