package ndpproto

import (
	"net/netip"
	"testing"
)

func TestAssign(t *testing.T) {
	onLink := [][]netip.Prefix{
		prefixes("2001:db8:a::1/64"),
		prefixes("2001:db8:b::1/64", "2001:db8:c::1/48"),
		prefixes("2001:db8:c:1::1/64"),
	}
	for _, tc := range []struct {
		p    string
		want int
	}{
		{"2001:db8:a::5/128", 0},
		{"2001:db8:b:0:1::5/128", 1},
		{"2001:db8:b:0:1::/112", 1},
		{"2001:db8:c:2::9/128", 1},
		{"2001:db8:c:1::9/128", 2}, // longest prefix wins
		{"2001:db8:c::/40", 0},     // wider than every on-link prefix
		{"2001:db8:ffff::1/128", 0},
	} {
		if got := Assign(netip.MustParsePrefix(tc.p), onLink); got != tc.want {
			t.Errorf("Assign(%s) = %d, want %d", tc.p, got, tc.want)
		}
	}
	if got := Assign(netip.MustParsePrefix("2001:db8::1/128"), nil); got != -1 {
		t.Errorf("Assign without uplinks = %d, want -1", got)
	}
	if got := Assign(netip.MustParsePrefix("2001:db8::1/128"), [][]netip.Prefix{nil, nil}); got != 0 {
		t.Errorf("Assign without prefixes = %d, want 0", got)
	}
}
