package doctor

import (
	"net/netip"
	"testing"
)

func TestNAT64Prefix(t *testing.T) {
	for _, tt := range []struct{ aaaa, want string }{
		{"64:ff9b::c000:aa", "64:ff9b::/96"},
		{"64:ff9b::192.0.0.171", "64:ff9b::/96"},
		{"2001:db8:64:0:c0:0:aa00:0", "2001:db8:64::/64"},    // /64: octets 9-12
		{"2001:db8:1c0:0:aa::", "2001:db8:100::/40"},         // /40: 5,6,7,9
		{"2001:db8:c000:aa::", "2001:db8::/32"},              // /32: 4-7
		{"2001:db8:122:3c0:0:aa::", "2001:db8:122:300::/56"}, // /56: 7,9,10,11
		{"2001:db8:122:c000:0:aa00::", "2001:db8:122::/48"},  // /48: 6,7,9,10
	} {
		got, ok := NAT64Prefix(netip.MustParseAddr(tt.aaaa))
		if !ok || got.String() != tt.want {
			t.Errorf("NAT64Prefix(%s) = %v, %v, want %s", tt.aaaa, got, ok, tt.want)
			continue
		}
		// Embedding the well-known address again gives an address of
		// the prefix that holds it.
		back, ok := Embed(got, netip.MustParseAddr("192.0.0.170"))
		if p2, ok2 := NAT64Prefix(back); !ok || !ok2 || p2 != got {
			t.Errorf("Embed(%s) = %s: not found again (%v)", got, back, p2)
		}
	}
	for _, bad := range []string{"2001:db8::1", "64:ff9b::808:808", "::ffff:192.0.0.170"} {
		if p, ok := NAT64Prefix(netip.MustParseAddr(bad)); ok {
			t.Errorf("NAT64Prefix(%s) = %v, want none", bad, p)
		}
	}
}

func TestEvaluateDNS64(t *testing.T) {
	pfx := []netip.Prefix{netip.MustParsePrefix("64:ff9b::/96")}
	for _, tt := range []struct {
		name string
		d    DNS64
		want Status
	}{
		{"not gathered", DNS64{}, ""},
		{"no DNS64", DNS64{Resolver: "2001:db8::53", NoAAAA: true}, Warn},
		{"resolver down", DNS64{Resolver: "2001:db8::53", Err: "i/o timeout"}, Warn},
		{"unreadable synthesis", DNS64{Resolver: "r", Synthesized: []netip.Addr{netip.MustParseAddr("2001:db8::1")}}, Warn},
		{"no route", DNS64{Resolver: "r", Prefixes: pfx, RouteErr: "network unreachable"}, Fail},
		{"probe fails", DNS64{Resolver: "r", Prefixes: pfx, Via: "eth0", Probe: "192.0.2.10:443", ProbeErr: "timeout"}, Fail},
		{"works", DNS64{Resolver: "r", Prefixes: pfx, Via: "eth0", Probe: "192.0.2.10:443"}, OK},
	} {
		f := healthy()
		f.DNS64 = tt.d
		got := verdicts(Evaluate(f))["dns64"]
		if got != tt.want {
			t.Errorf("%s: dns64 = %q, want %q", tt.name, got, tt.want)
		}
	}
}
