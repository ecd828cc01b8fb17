package migrate

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseNdppd(t *testing.T) {
	got, err := ParseNdppd("ndppd.conf", `
route-ttl 30000
proxy eth0 {   # the uplink
    router no
    rule 2001:db8:1::/112 { auto }
    rule 2001:db8:2::/112 { iface v6b-x static }
    rule 2001:db8:3::/112 {
    }
    rule 2001:db8:4::5
}
proxy eth1 { rule 2001:db8:9::/64 { static } }`)
	if err != nil {
		t.Fatal(err)
	}
	pf := netip.MustParsePrefix
	want := Ndppd{Proxies: []Proxy{
		{Iface: "eth0", Router: false, Line: 3, Rules: []Rule{
			{Prefix: pf("2001:db8:1::/112"), Method: MethodAuto, Line: 5},
			{Prefix: pf("2001:db8:2::/112"), Method: MethodIface, Iface: "v6b-x", Line: 6},
			{Prefix: pf("2001:db8:3::/112"), Method: MethodStatic, Line: 7},
			{Prefix: pf("2001:db8:4::5/128"), Method: MethodStatic, Line: 9},
		}},
		{Iface: "eth1", Router: true, Line: 11, Rules: []Rule{{Prefix: pf("2001:db8:9::/64"), Method: MethodStatic, Line: 11}}},
	}}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestParseNdppdRefuses(t *testing.T) {
	for _, tt := range []struct{ conf, want string }{
		{"", "no proxy block"},
		{"proxy eth0 {\n rule 2001:db8::/64 { auto }\n", "proxy eth0 is not closed"},
		{"proxy eth0 {\n  colour blue\n}", "line 2: unknown option \"colour\" in proxy eth0: accepted are router"},
		{"proxy eth0 { rule 10.0.0.0/8 { auto } }", "rule \"10.0.0.0/8\": accepted is an IPv6 prefix"},
		{"proxy eth0 { rule 2001:db8::/64 { auto static } }", "has both auto and static"},
		{"proxy eth0 { rule 2001:db8::/64 { wobble } }", "unknown option \"wobble\" in rule"},
		{"proxy eth0 { router maybe }", "router \"maybe\": accepted are yes and no"},
		{"proxy eth0 { timeout soon }", "timeout \"soon\": accepted is a number"},
		{"proxy { }", "proxy needs a value"},
		{"prxy eth0 { }", "unknown option \"prxy\": accepted at the top are"},
	} {
		_, err := ParseNdppd("ndppd.conf", tt.conf)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseNdppd(%q) = %v, want an error with %q", tt.conf, err, tt.want)
		}
	}
}

func TestParseDaemonRefuses(t *testing.T) {
	for _, tt := range []struct{ json, want string }{
		// The seed's daemon.json as printed in the post, without quotes.
		{"{\n  ipv6: true,\n  fixed-cidr-v6: fd12:3456:789a:8101::/80\n}", "daemon.json line 2: not JSON (dockerd refuses it too)"},
		{`{"fixed-cidr-v6": "10.0.0.0/8"}`, "fixed-cidr-v6 \"10.0.0.0/8\": accepted is an IPv6 prefix"},
		{`{"default-address-pools": [{"base": "fd00::/48", "size": 40}]}`, "size 40 of fd00::/48: accepted is /48 to /128"},
		{`{"default-address-pools": [{"base": "nope", "size": 64}]}`, "base \"nope\""},
		{`{"ipv6": "yes"}`, "accepted is daemon.json as dockerd reads it"},
	} {
		_, err := ParseDaemon("daemon.json", []byte(tt.json))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseDaemon(%q) = %v, want an error with %q", tt.json, err, tt.want)
		}
	}
}

func FuzzParseNdppd(f *testing.F) {
	f.Add("proxy eth0 { rule 2001:db8::/64 { auto } }")
	f.Add("proxy eth0 {\n rule 2001:db8::1\n}")
	f.Fuzz(func(t *testing.T, conf string) {
		n, err := ParseNdppd("f", conf)
		if err != nil {
			return
		}
		for _, p := range n.Proxies {
			for _, r := range p.Rules {
				if !r.Prefix.Addr().Is6() || r.Method == "" {
					t.Fatalf("accepted rule %+v", r)
				}
			}
		}
		Build(Input{Ndppd: &n})
	})
}
