package plan

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"github.com/v6bridge/v6bridge/internal/golden"

	"github.com/google/go-cmp/cmp"
)

var (
	hostAddr = addr("2001:db8:1234:a1::1")
	uplink64 = pfx("2001:db8:1234:a1::/64")
	gateway  = addr("2001:db8:1234:a1::fffe")
)

func TestPlanGolden(t *testing.T) {
	tests := []struct {
		name string
		in   Input
		warn []string // substrings, one per expected warning, in order
	}{
		{"clean", Input{
			Public: uplink64, ULA: pfx("fd3c:9a41:7e02::/48"), ULASource: "persisted", Uplink: "eth0",
			HostAddrs: []netip.Addr{hostAddr, addr("2001:db8:1234:a1::2")}, UplinkPrefixes: []netip.Prefix{uplink64}, Gateways: []netip.Addr{gateway},
		}, nil},
		{"seed", Input{
			// The seed's numbers: host id 0x8101 of the example ULA.
			Public: uplink64, ULA: pfx("fd12:3456:789a::/48"), ULASource: "given", HostID: 0x8101, Uplink: "eth0",
			HostAddrs: []netip.Addr{hostAddr}, UplinkPrefixes: []netip.Prefix{uplink64},
		}, []string{"ULA fd12:3456:789a::/48 has a copied or empty global ID"}},
		{"mistakes", Input{
			// The /64 itself for a bridge, and a ULA outside fd00::/8.
			Public: uplink64, PublicLen: 64, ULA: pfx("fc00:1:2::/48"), ULASource: "given", Uplink: "eth0",
			HostAddrs: []netip.Addr{hostAddr}, UplinkPrefixes: []netip.Prefix{uplink64},
		}, []string{
			"public range 2001:db8:1234:a1::/64 contains 2001:db8:1234:a1::1, an address of the host",
			"public range 2001:db8:1234:a1::/64 is a /64 while the uplink uses 2001:db8:1234:a1::/64",
			"no /64 of 2001:db8:1234:a1::/64 is free",
			"ULA_PREFIX=fc00:1:2::/48 is not a unique local prefix of fd00::/8",
		}},
		{"public-range-with-host", Input{
			// A /112 given as the public prefix that holds the host's address.
			Public: pfx("2001:db8:1234:a1::/112"), ULA: pfx("fd3c:9a41:7e02::/48"), ULASource: "generated",
			HostAddrs: []netip.Addr{hostAddr}, UplinkPrefixes: []netip.Prefix{uplink64},
		}, []string{
			"public range 2001:db8:1234:a1::/112 contains 2001:db8:1234:a1::1",
			"no /112 of 2001:db8:1234:a1::/112 is free",
		}},
		{"no-public", Input{ULA: pfx("fd3c:9a41:7e02::/48"), ULASource: "generated", HostID: 3, ULALen: 120},
			[]string{"no public prefix"}},
		{"not-ula", Input{Public: uplink64, ULA: pfx("2001:db8:99::/48"), HostAddrs: []netip.Addr{hostAddr}},
			[]string{"ULA_PREFIX=2001:db8:99::/48 is not a unique local prefix"}},
		// DigitalOcean: a /124 on the uplink, 16 addresses.
		{"do-124", Input{Public: pfx("2001:db8:5:6::10/124"), ULA: pfx("fd3c:9a41:7e02::/48"), ULASource: "persisted", Uplink: "eth0",
			HostAddrs: []netip.Addr{addr("2001:db8:5:6::12")}, UplinkPrefixes: []netip.Prefix{pfx("2001:db8:5:6::10/124")}}, nil},
		// OVH VPS: one /128.
		{"ovh-128", Input{Public: pfx("2001:41d0:1:2::3/128"), ULA: pfx("fd3c:9a41:7e02::/48"), ULASource: "persisted", Uplink: "ens3",
			HostAddrs: []netip.Addr{addr("2001:41d0:1:2::3")}, UplinkPrefixes: []netip.Prefix{pfx("2001:41d0:1:2::3/128")}}, nil},
		{"ula-as-public", Input{Public: pfx("fd3c:9a41:7e02:1::/64"), ULA: pfx("fd3c:9a41:7e02::/48")},
			[]string{"public prefix fd3c:9a41:7e02:1::/64 is not a global unicast prefix"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Build(tt.in)
			if len(p.Warnings) != len(tt.warn) {
				t.Errorf("warnings:\n%s\nwant %d", strings.Join(p.Warnings, "\n"), len(tt.warn))
			}
			for i, w := range tt.warn {
				if i < len(p.Warnings) && !strings.Contains(p.Warnings[i], w) {
					t.Errorf("warning %d = %q, want it to contain %q", i, p.Warnings[i], w)
				}
			}
			var b bytes.Buffer
			if err := p.WriteText(&b); err != nil {
				t.Fatal(err)
			}
			golden.Check(t, tt.name+".txt.golden", b.Bytes())
		})
	}
}

func TestPlanJSONGolden(t *testing.T) {
	p := Build(Input{Public: uplink64, ULA: pfx("fd3c:9a41:7e02::/48"), ULASource: "persisted", Uplink: "eth0",
		HostAddrs: []netip.Addr{hostAddr}, UplinkPrefixes: []netip.Prefix{uplink64}, Driver: "v6bridge"})
	var b bytes.Buffer
	if err := p.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "clean.json.golden", b.Bytes())
}

// TestPlanAvoidsHostAndGateway: the printed networks skip what the plugin
// skips.
func TestPlanAvoidsHostAndGateway(t *testing.T) {
	p := Build(Input{Public: uplink64, ULA: pfx("fd3c:9a41:7e02::/48"),
		HostAddrs: []netip.Addr{hostAddr, addr("fd3c:9a41:7e02:0:1::1")}, Gateways: []netip.Addr{addr("2001:db8:1234:a1:1::1")}})
	want := []Network{
		{Name: "public", Mode: "public", Subnet: pfx("2001:db8:1234:a1:2::/112")},
		{Name: "internal", Mode: "nat", Subnet: pfx("fd3c:9a41:7e02:0:2::/112")},
	}
	if diff := cmp.Diff(want, p.Networks, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("networks (-want +got):\n%s", diff)
	}
}
