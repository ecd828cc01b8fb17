package netspec

import (
	"net/netip"
	"testing"
)

// TestULA asks the three rules about the same prefixes: IsULA and IsPublic
// of the prefix's address, IsLocalULA of the prefix.
func TestULA(t *testing.T) {
	for _, tc := range []struct {
		prefix             string
		ula, local, public bool
	}{
		{"fc00::/128", true, false, false},
		{"fc12:3456:789a::/48", true, false, false}, // ULA, but not locally assigned
		{"fc00::/7", true, false, false},
		{"fd00::/7", true, false, false}, // wider than fd00::/8: reaches into fc00::/8
		{"fd00::/8", true, true, false},
		{"fd12:3456:789a::/48", true, true, false},
		{"fd12:3456:789a:1::/64", true, true, false},
		{"fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128", true, true, false},
		{"fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128", false, false, true}, // just below; unassigned, yet global unicast by RFC 4291
		{"fe00::/128", false, false, true},                                  // just above; the same
		{"fe80::1/64", false, false, false},                                 // link-local
		{"2001:db8::/48", false, false, true},
		{"::ffff:253.0.0.1/128", false, false, false}, // IPv4-mapped: its first byte is 0, not 253
		{"253.0.0.0/8", false, false, false},
		{"::/0", false, false, false},
		{"::1/128", false, false, false},
		{"ff02::1/128", false, false, false},
		{"2a01:4f8:1:2::3/128", false, false, true},
		{"::ffff:8.8.8.8/128", false, false, false}, // global IPv4, mapped: not an IPv6 address of the internet
	} {
		p := netip.MustParsePrefix(tc.prefix)
		if got := IsULA(p.Addr()); got != tc.ula {
			t.Errorf("IsULA(%s) = %v, want %v", p.Addr(), got, tc.ula)
		}
		if got := IsPublic(p.Addr()); got != tc.public {
			t.Errorf("IsPublic(%s) = %v, want %v", p.Addr(), got, tc.public)
		}
		if got := IsLocalULA(p); got != tc.local {
			t.Errorf("IsLocalULA(%s) = %v, want %v", p, got, tc.local)
		}
	}
	if !IsULA(netip.MustParseAddr("fd12::1%eth0")) {
		t.Errorf("IsULA(%s) = false: a zone does not make an address global", "fd12::1%eth0")
	}
	if IsULA(netip.Addr{}) || IsPublic(netip.Addr{}) || IsLocalULA(netip.Prefix{}) {
		t.Error("the zero Addr or Prefix counts as a ULA or public")
	}
}
