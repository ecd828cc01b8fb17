package netspec

import (
	"net/netip"
	"testing"
)

// TestULA asks both rules about the same prefixes: IsULA of the prefix's
// address, IsLocalULA of the prefix.
func TestULA(t *testing.T) {
	for _, tc := range []struct {
		prefix     string
		ula, local bool
	}{
		{"fc00::/128", true, false},
		{"fc12:3456:789a::/48", true, false}, // ULA, but not locally assigned
		{"fc00::/7", true, false},
		{"fd00::/7", true, false}, // wider than fd00::/8: reaches into fc00::/8
		{"fd00::/8", true, true},
		{"fd12:3456:789a::/48", true, true},
		{"fd12:3456:789a:1::/64", true, true},
		{"fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128", true, true},
		{"fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128", false, false}, // just below
		{"fe00::/128", false, false},                                  // just above
		{"fe80::1/64", false, false},                                  // link-local
		{"2001:db8::/48", false, false},
		{"::ffff:253.0.0.1/128", false, false}, // IPv4-mapped: its first byte is 0, not 253
		{"253.0.0.0/8", false, false},
		{"::/0", false, false},
	} {
		p := netip.MustParsePrefix(tc.prefix)
		if got := IsULA(p.Addr()); got != tc.ula {
			t.Errorf("IsULA(%s) = %v, want %v", p.Addr(), got, tc.ula)
		}
		if got := IsLocalULA(p); got != tc.local {
			t.Errorf("IsLocalULA(%s) = %v, want %v", p, got, tc.local)
		}
	}
	if !IsULA(netip.MustParseAddr("fd12::1%eth0")) {
		t.Errorf("IsULA(%s) = false: a zone does not make an address global", "fd12::1%eth0")
	}
	if IsULA(netip.Addr{}) || IsLocalULA(netip.Prefix{}) {
		t.Error("the zero Addr or Prefix counts as a ULA")
	}
}
