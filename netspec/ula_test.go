package netspec

import (
	"net/netip"
	"testing"
)

func TestIsULA(t *testing.T) {
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"fc00::", true},
		{"fc12:3456::1", true},
		{"fd00::1", true},
		{"fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true},
		{"fd12::1%eth0", true},
		{"fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false}, // just below
		{"fe00::", false},                                  // just above
		{"fe80::1", false},                                 // link-local
		{"2001:db8::1", false},
		{"::ffff:252.0.0.1", false}, // IPv4-mapped: its first byte is 0, not 252
		{"252.0.0.1", false},
		{"::", false},
	} {
		if got := IsULA(netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("IsULA(%s) = %v, want %v", tc.addr, got, tc.want)
		}
	}
	if IsULA(netip.Addr{}) {
		t.Error("IsULA(zero Addr) = true")
	}
}

func TestIsLocalULA(t *testing.T) {
	for _, tc := range []struct {
		prefix string
		want   bool
	}{
		{"fd00::/8", true},
		{"fd12:3456:789a::/48", true},
		{"fd12:3456:789a:1::/64", true},
		{"fdff::1/128", true},
		{"fc12:3456:789a::/48", false}, // ULA, but not locally assigned
		{"fc00::/7", false},
		{"fd00::/7", false}, // wider than fd00::/8: reaches into fc00::/8
		{"2001:db8::/48", false},
		{"253.0.0.0/8", false},
	} {
		if got := IsLocalULA(netip.MustParsePrefix(tc.prefix)); got != tc.want {
			t.Errorf("IsLocalULA(%s) = %v, want %v", tc.prefix, got, tc.want)
		}
	}
	if IsLocalULA(netip.Prefix{}) {
		t.Error("IsLocalULA(zero Prefix) = true")
	}
}
