package main

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"github.com/v6bridge/v6bridge/driver"
	"github.com/v6bridge/v6bridge/nat"
	"github.com/v6bridge/v6bridge/ndp"
	"github.com/v6bridge/v6bridge/ndp/ndpproto"
	"github.com/v6bridge/v6bridge/portfwd"
)

func TestPrintStatus(t *testing.T) {
	doc := statusDoc{
		Uplinks: []string{"eth0"},
		Plan:    planStatus{PublicPrefixes: []netip.Prefix{netip.MustParsePrefix("2001:db8:1234:a1::/64")}},
		Networks: []driver.NetworkStatus{{
			Network:   driver.Network{ID: "0123456789abcdef", Bridge: "v6b-0123456789a", Mode: nat.ModePublic, Subnet: netip.MustParsePrefix("2001:db8:1234:a1:1::/112"), Gateway: netip.MustParseAddr("2001:db8:1234:a1:1::1")},
			Endpoints: []driver.EndpointStatus{{ID: "fedcba9876543210", Address: "2001:db8:1234:a1:1::ab53", MAC: "02:00:00:00:00:01", Joined: true, Ports: "[::]:8081->80/tcp"}},
		}},
		NDP: ndp.Stats{Solicitations: 7, Answered: 5, AnsweredUnicast: 3, KernelAnswered: 4, Addrs: []netip.Addr{netip.MustParseAddr("2001:db8:1234:a1:1::ab53")},
			Limited: map[string]uint64{ndpproto.ReasonSourceLimit: 2}, SocketDrops: 1, IngressDropped: 40000, AnnouncePeakRate: 2000},
		Forwards: []portfwd.Status{{Forward: "tcp [::1]:5432->[fd00::5]:5432", Problem: "forward tcp [::1]:5432->[fd00::5]:5432: port [::1]:5432/tcp is held by pid 812 (postgres): stop it or publish another host port (address already in use); retrying"},
			{Forward: "udp [::1]:5353->[fd00::5]:53", Bound: true, Conns: 512, Evicted: 19488}},
	}
	var b bytes.Buffer
	if err := printStatus(&b, doc); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"uplinks: eth0",
		"v6b-0123456789a  public",
		"2001:db8:1234:a1:1::ab53",
		"[::]:8081->80/tcp",
		"NDP answers for: [2001:db8:1234:a1:1::ab53]",
		"7 solicitations seen, 5 answered (3 unicast probes, 0 DAD; 4 in the kernel at the uplink's ingress)",
		"tcp [::1]:5432->[fd00::5]:5432  false  0      0        0",
		"udp [::1]:5353->[fd00::5]:53    true   512    19488    0",
		"PROBLEM: forward tcp [::1]:5432->[fd00::5]:5432: port [::1]:5432/tcp is held by pid 812 (postgres)",
		"NDP drops: 2 over budget map[rate limit: solicitor over its budget:2], 1 socket queue full; capture filter exact; 40000 solicitations for addresses nobody here answers for dropped at the uplink's ingress; announcements 0 pending, peak 2000/s",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, b.String())
		}
	}
}

func TestServeFlagsPprofLoopbackOnly(t *testing.T) {
	for _, a := range []string{"127.0.0.1:6060", "[::1]:6060", "localhost:6060"} {
		if _, err := serveFlags([]string{"-pprof", a}); err != nil {
			t.Errorf("serveFlags(-pprof %s) = %v", a, err)
		}
	}
}

func TestServeFlagsRefuseBadSettings(t *testing.T) {
	for _, args := range [][]string{
		{"-ndp-proxy", "magic"},
		{"-ndp-source", "router"},
		{"-pprof", ":6060"},
		{"-pprof", "0.0.0.0:6060"},
		{"-pprof", "[2001:db8::1]:6060"},
		{"-pprof", "127.0.0.1"},
		{"-fastpath", "yes"},
		{"-ndp-ingress-filter", "on"},
	} {
		if _, err := serveFlags(args); err == nil || !strings.Contains(err.Error(), "accepted are") {
			t.Errorf("serveFlags(%v) = %v, want an error listing what is accepted", args, err)
		}
	}
}

func TestServeFlagsFastPath(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want bool
	}{{nil, false}, {[]string{"-fastpath", "false"}, false}, {[]string{"-fastpath", "true"}, true}} {
		c, err := serveFlags(tt.args)
		if err != nil {
			t.Fatalf("serveFlags(%v): %v", tt.args, err)
		}
		if c.fastPath != tt.want {
			t.Errorf("serveFlags(%v): fast path %v, want %v", tt.args, c.fastPath, tt.want)
		}
	}
}

// TestServeFlagsRefuseConflictingPairs: settings valid alone but not
// together are refused at start, naming both.
func TestServeFlagsRefuseConflictingPairs(t *testing.T) {
	for _, args := range [][]string{
		{"-ndp-proxy", "kernel", "-ndp-range"},
		{"-ndp-proxy", "off", "-ndp-range"},
	} {
		_, err := serveFlags(args)
		if err == nil || !strings.Contains(err.Error(), "NDP_RANGE") || !strings.Contains(err.Error(), "NDP_PROXY") {
			t.Errorf("serveFlags(%v) = %v, want an error naming NDP_RANGE and NDP_PROXY", args, err)
		}
	}
	if _, err := serveFlags([]string{"-ndp-proxy", "native", "-ndp-range"}); err != nil {
		t.Errorf("native with a range: %v", err)
	}
}
