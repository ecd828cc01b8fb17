package ipam

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/v6bridge/v6bridge/internal/hostos"
	"github.com/v6bridge/v6bridge/netspec"
)

func TestRequestPoolRefused(t *testing.T) {
	host := []netip.Addr{netip.MustParseAddr("2001:db8:1234:a1::1"), netip.MustParseAddr("fd00:aaaa::1")}
	tests := []struct {
		name string
		req  PoolRequest
		err  error
		want []string // substrings of the message
	}{
		{"ipv4 subnet in v6 field", PoolRequest{Pool: "10.0.0.0/24", V6: true},
			ErrInvalidRequest, []string{`"10.0.0.0/24"`, "IPv4", "IPv6 prefix from /48 to /120"}},
		{"not a prefix", PoolRequest{Pool: "fd12::/abc", V6: true},
			ErrInvalidRequest, []string{`"fd12::/abc"`, "not a CIDR prefix", "/48 to /120"}},
		{"garbage", PoolRequest{Pool: "default", V6: true},
			ErrInvalidRequest, []string{`"default"`, "not a CIDR prefix"}},
		{"address without length", PoolRequest{Pool: "fd12::1", V6: true},
			ErrInvalidRequest, []string{`"fd12::1"`, "without prefix length"}},
		{"too short", PoolRequest{Pool: "fd12::/40", V6: true},
			ErrInvalidRequest, []string{`"fd12::/40"`, "/40", "from /48 to /120"}},
		{"too long", PoolRequest{Pool: "fd12::/124", V6: true},
			ErrInvalidRequest, []string{`"fd12::/124"`, "/124", "from /48 to /120"}},
		{"host bits set", PoolRequest{Pool: "fd12::5/112", V6: true},
			ErrInvalidRequest, []string{`"fd12::5/112"`, "host bits", "did you mean fd12::/112?"}},
		{"host bits set /64", PoolRequest{Pool: "2001:db8:1:2::1/64", V6: true},
			ErrInvalidRequest, []string{"did you mean 2001:db8:1:2::/64?"}},
		{"link-local", PoolRequest{Pool: "fe80::/64", V6: true},
			ErrInvalidRequest, []string{`"fe80::/64"`, "link-local"}},
		{"multicast", PoolRequest{Pool: "ff05::/64", V6: true},
			ErrInvalidRequest, []string{`"ff05::/64"`, "multicast"}},
		{"ipv4-mapped", PoolRequest{Pool: "::ffff:10.0.0.0/120", V6: true},
			ErrInvalidRequest, []string{"IPv4-mapped"}},
		{"unspecified", PoolRequest{Pool: "::/64", V6: true},
			ErrInvalidRequest, []string{`"::/64"`, "unspecified or loopback"}},
		{"loopback", PoolRequest{Pool: "::1/120", V6: true},
			ErrInvalidRequest, []string{`"::1/120"`, "unspecified or loopback"}},
		{"duplicate", PoolRequest{Pool: "fd12:3456:789a:1::/112", V6: true},
			ErrPoolOverlap, []string{"fd12:3456:789a:1::/112", "already used by another v6bridge network"}},
		{"overlap inside", PoolRequest{Pool: "fd12:3456:789a:1::/120", V6: true},
			ErrPoolOverlap, []string{"fd12:3456:789a:1::/120", "overlaps fd12:3456:789a:1::/112"}},
		{"overlap around", PoolRequest{Pool: "fd12:3456:789a::/48", V6: true},
			ErrPoolOverlap, []string{"fd12:3456:789a::/48", "overlaps fd12:3456:789a:1::/112"}},
		{"host /64 as a whole", PoolRequest{Pool: "2001:db8:1234:a1::/64", V6: true},
			ErrHostAddress, []string{"2001:db8:1234:a1::/64", "2001:db8:1234:a1::1", "carve a /112 or similar from it instead",
				"e.g. --subnet 2001:db8:1234:a1::1:0/112"}},
		{"host ULA /120", PoolRequest{Pool: "fd00:aaaa::/120", V6: true},
			ErrHostAddress, []string{"fd00:aaaa::1", "carve a /112 or similar"}},
		{"ip-range outside", PoolRequest{Pool: "fd12:1::/112", SubPool: "fd12:2::/120", V6: true},
			ErrInvalidRequest, []string{`ip-range "fd12:2::/120"`, "not inside subnet fd12:1::/112"}},
		{"ip-range wider", PoolRequest{Pool: "fd12:1::/112", SubPool: "fd12:1::/96", V6: true},
			ErrInvalidRequest, []string{`ip-range "fd12:1::/96"`, "not inside subnet"}},
		{"ip-range host bits", PoolRequest{Pool: "fd12:1::/112", SubPool: "fd12:1::80/116", V6: true},
			ErrInvalidRequest, []string{"ip-range", "did you mean fd12:1::/116?"}},
		{"ip-range ipv4", PoolRequest{Pool: "fd12:1::/112", SubPool: "10.0.0.0/24", V6: true},
			ErrInvalidRequest, []string{`ip-range "10.0.0.0/24"`, "IPv4"}},
		{"no subnet with range", PoolRequest{SubPool: "fd12:1::/120", V6: true},
			ErrSubnetRequired, []string{`ip-range "fd12:1::/120" needs --subnet`}},
		{"automatic routed subnet", PoolRequest{V6: true, Options: map[string]string{"v6bridge.mode": "routed"}},
			ErrSubnetRequired, []string{"a routed network needs --subnet", "v6bridge.mode=public"}},
		{"automatic public subnet without PUBLIC_PREFIX", PoolRequest{V6: true, Options: map[string]string{"v6bridge.mode": "Public"}},
			ErrSubnetRequired, []string{"no PUBLIC_PREFIX is configured", "give --subnet"}},
		{"automatic subnet wider than the host's ULA /64", PoolRequest{V6: true, Options: map[string]string{"v6bridge.prefix_len": "60"}},
			ErrInvalidRequest, []string{"an automatic /60 does not fit in this host's ULA subnet", "/64", "v6bridge.prefix_len=64 to 120"}},
		{"bad mode option", PoolRequest{V6: true, Options: map[string]string{"v6bridge.mode": "bridge"}},
			ErrInvalidRequest, []string{`v6bridge.mode="bridge" is not a mode`, "public", "nat or internal"}},
		{"ipv4 user subnet", PoolRequest{Pool: "172.20.0.0/16"},
			ErrIPv4Subnet, []string{"v6bridge is IPv6-only: IPv4 subnet 172.20.0.0/16 is not accepted; on Docker >= 28 use --ipv4=false"}},
		{"ipv4 ip-range", PoolRequest{SubPool: "172.20.1.0/24"},
			ErrIPv4Subnet, []string{"172.20.1.0/24", "--ipv4=false"}},
		{"unknown v6bridge option", PoolRequest{Pool: "fd12:9::/112", V6: true, Options: map[string]string{"v6bridge.prefixlen": "64"}},
			ErrInvalidRequest, []string{`"v6bridge.prefixlen"`, "accepted v6bridge options are v6bridge.mode, v6bridge.prefix_len"}},
		{"unknown option on v4", PoolRequest{Options: map[string]string{"v6bridge.nat": "on"}},
			ErrInvalidRequest, []string{`"v6bridge.nat"`, "v6bridge.prefix_len"}},
		{"prefix_len not a number", PoolRequest{Pool: "fd12:9::/112", V6: true, Options: map[string]string{"v6bridge.prefix_len": "/64"}},
			ErrInvalidRequest, []string{`v6bridge.prefix_len="/64"`, "not an integer", "48 to 120"}},
		{"prefix_len too small", PoolRequest{Pool: "fd12:9::/112", V6: true, Options: map[string]string{"v6bridge.prefix_len": "32"}},
			ErrInvalidRequest, []string{`v6bridge.prefix_len="32"`, "48 to 120"}},
		{"prefix_len too big", PoolRequest{Pool: "fd12:9::/112", V6: true, Options: map[string]string{"v6bridge.prefix_len": "128"}},
			ErrInvalidRequest, []string{`"128"`, "48 to 120"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, be := newTestIPAM(t, host...)
			existing := mustPool(t, m, "fd12:3456:789a:1::/112", "")
			writes := be.writes
			before := m.Pools()

			_, err := m.RequestPool(tt.req)
			if !errors.Is(err, tt.err) {
				t.Fatalf("RequestPool(%+v) = %v, want %v", tt.req, err, tt.err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if err.Error() != strings.ToLower(err.Error()[:1])+err.Error()[1:] {
				t.Errorf("error %q starts upper-case", err)
			}
			if be.writes != writes || len(be.pools) != 1 {
				t.Errorf("refused request persisted state: %d writes, pools %v", be.writes-writes, be.pools)
			}
			if diff := cmp.Diff(before, m.Pools(), cmpAddrs); diff != "" {
				t.Errorf("pools changed (-want +got):\n%s", diff)
			}
			if _, ok := m.Pool(existing.ID); !ok {
				t.Errorf("existing pool %s gone", existing.ID)
			}
		})
	}
}

// cmpAddrs compares netip values by their text.
var cmpAddrs = cmp.Options{
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
}

func TestRequestPoolAccepted(t *testing.T) {
	tests := []struct {
		name string
		req  PoolRequest
		want Pool
	}{
		{"subnet", PoolRequest{Pool: "fd12:3456:789a:1::/112", V6: true}, Pool{
			ID:     "v6bridge/fd12:3456:789a:1::/112",
			Prefix: netip.MustParsePrefix("fd12:3456:789a:1::/112"),
			Range:  netip.MustParsePrefix("fd12:3456:789a:1::/112"),
		}},
		{"public /112 of the host's /64", PoolRequest{Pool: "2001:db8:1234:a1:1::/112", V6: true}, Pool{
			ID:     "v6bridge/2001:db8:1234:a1:1::/112",
			Prefix: netip.MustParsePrefix("2001:db8:1234:a1:1::/112"),
			Range:  netip.MustParsePrefix("2001:db8:1234:a1:1::/112"),
		}},
		{"/48 with spaces", PoolRequest{Pool: " fd99:1::/48 ", V6: true}, Pool{
			ID:     "v6bridge/fd99:1::/48",
			Prefix: netip.MustParsePrefix("fd99:1::/48"),
			Range:  netip.MustParsePrefix("fd99:1::/48"),
		}},
		{"/120", PoolRequest{Pool: "fd12::100/120", V6: true}, Pool{
			ID:     "v6bridge/fd12::100/120",
			Prefix: netip.MustParsePrefix("fd12::100/120"),
			Range:  netip.MustParsePrefix("fd12::100/120"),
		}},
		{"ip-range", PoolRequest{Pool: "fd12:5::/64", SubPool: "fd12:5::1:0/112", V6: true}, Pool{
			ID:     "v6bridge/fd12:5::/64",
			Prefix: netip.MustParsePrefix("fd12:5::/64"),
			Range:  netip.MustParsePrefix("fd12:5::1:0/112"),
		}},
		{"ip-range equal to subnet", PoolRequest{Pool: "fd12:6::/112", SubPool: "fd12:6::/112", V6: true}, Pool{
			ID:     "v6bridge/fd12:6::/112",
			Prefix: netip.MustParsePrefix("fd12:6::/112"),
			Range:  netip.MustParsePrefix("fd12:6::/112"),
		}},
		{"prefix_len kept, other options ignored", PoolRequest{Pool: "fd12:7::/112", V6: true,
			Options: map[string]string{"v6bridge.prefix_len": "64", "other.key": "x", "driver.mtu": "1400"}}, Pool{
			ID:        "v6bridge/fd12:7::/112",
			Prefix:    netip.MustParsePrefix("fd12:7::/112"),
			Range:     netip.MustParsePrefix("fd12:7::/112"),
			PrefixLen: 64,
		}},
		{"placeholder", PoolRequest{}, Pool{
			Prefix:      netip.MustParsePrefix("169.254.4.0/22"),
			Range:       netip.MustParsePrefix("169.254.4.0/22"),
			Placeholder: true,
			Gateway:     netip.MustParsePrefix("169.254.4.1/22"),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host := []netip.Addr{netip.MustParseAddr("2001:db8:1234:a1::1")}
			m, be := newTestIPAM(t, host...)
			got, err := m.RequestPool(tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if tt.want.Placeholder {
				if !strings.HasPrefix(got.ID, placeholderIDPrefix) {
					t.Errorf("placeholder ID %q", got.ID)
				}
				tt.want.ID = got.ID
			}
			if diff := cmp.Diff(tt.want, got, cmpAddrs); diff != "" {
				t.Errorf("RequestPool (-want +got):\n%s", diff)
			}
			if _, ok := be.pools[got.ID]; !ok {
				t.Errorf("pool %s not persisted", got.ID)
			}
		})
	}
}

func TestHostAddrsError(t *testing.T) {
	m, err := newIPAM(Config{Host: &hostos.TestState{HostErr: errFail}}, newMem())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.RequestPool(PoolRequest{Pool: "fd12::/112", V6: true}); !errors.Is(err, errFail) {
		t.Fatalf("RequestPool with failing HostAddrs = %v, want %v", err, errFail)
	}
	if len(m.Pools()) != 0 {
		t.Errorf("pool created despite the error")
	}
}

func TestReleasePool(t *testing.T) {
	m, be := newTestIPAM(t)
	p := mustPool(t, m, "fd12::/112", "")
	mustAddr(t, m, p.ID, "")
	mustAddr(t, m, p.ID, "fd12::99")
	if err := m.ReleasePool(p.ID); err != nil {
		t.Fatal(err)
	}
	if len(be.pools) != 0 || be.addrCount() != 0 || len(be.cursors) != 0 {
		t.Errorf("state left after ReleasePool: pools %v addrs %v cursors %v", be.pools, be.addrs, be.cursors)
	}
	for _, id := range []string{p.ID, "nonsense", ""} {
		if err := m.ReleasePool(id); err != nil {
			t.Errorf("ReleasePool(%q) again = %v, want nil", id, err)
		}
	}
	// The subnet is free again and starts empty.
	p = mustPool(t, m, "fd12::/112", "")
	if got := mustAddr(t, m, p.ID, "fd12::99"); got != "fd12::99" {
		t.Errorf("got %s", got)
	}
}

func TestPoolFailureLeavesNothing(t *testing.T) {
	m, be := newTestIPAM(t)
	be.fail = func(op string) error { return errFail }
	for _, req := range []PoolRequest{{Pool: "fd12::/112", V6: true}, {}} {
		if _, err := m.RequestPool(req); !errors.Is(err, errFail) {
			t.Fatalf("RequestPool(%+v) = %v, want %v", req, err, errFail)
		}
	}
	if len(m.Pools()) != 0 || len(be.pools) != 0 {
		t.Fatalf("failed RequestPool left pools: %v", m.Pools())
	}
	be.fail = nil
	p := mustPool(t, m, "fd12::/112", "")
	be.fail = func(op string) error { return errFail }
	if err := m.ReleasePool(p.ID); !errors.Is(err, errFail) {
		t.Fatalf("ReleasePool = %v, want %v", err, errFail)
	}
	if _, ok := m.Pool(p.ID); !ok {
		t.Errorf("pool gone after failed ReleasePool")
	}
}

// TestPoolModeIsRecorded: the mode a pool was requested for is kept, also
// across a restart, for the driver to take the network's mode from.
func TestPoolModeIsRecorded(t *testing.T) {
	dir := t.TempDir()
	im := mustOpen(t, dir)
	routed := netip.MustParsePrefix("2001:db8:77::/112")
	if _, err := im.RequestPool(PoolRequest{Pool: routed.String(), V6: true, Options: map[string]string{OptMode: "Routed"}}); err != nil {
		t.Fatal(err)
	}
	plain := netip.MustParsePrefix("fd00:9::/112")
	if _, err := im.RequestPool(PoolRequest{Pool: plain.String(), V6: true}); err != nil {
		t.Fatal(err)
	}
	im2 := mustOpen(t, dir)
	for _, m := range []*IPAM{im, im2} {
		if got := m.PoolMode(routed); got != netspec.ModeRouted {
			t.Errorf("PoolMode(%s) = %q, want routed", routed, got)
		}
		if got := m.PoolMode(plain); got != "" {
			t.Errorf("PoolMode(%s) = %q, want none", plain, got)
		}
		if got := m.PoolMode(netip.MustParsePrefix("fd00:10::/112")); got != "" {
			t.Errorf("PoolMode of no pool = %q", got)
		}
	}
}

// TestFindOverlap: the rule both the IPAM and the driver refuse with: an
// equal, wider or narrower subnet overlaps, a neighbour does not, and of
// several the lowest subnet is named, whatever the map's order.
func TestFindOverlap(t *testing.T) {
	used := map[string]netip.Prefix{
		"b": netip.MustParsePrefix("fd12:1::/112"),
		"a": netip.MustParsePrefix("fd12:1::100/120"),
		"c": netip.MustParsePrefix("fd12:2::/64"),
		"d": netip.MustParsePrefix("fd12:2::/64"),
	}
	tests := []struct {
		subnet string
		want   string // "" for none
	}{
		{"fd12:1::/112", "b"},
		{"fd12:1::100/124", "b"},
		{"fd12:1::/48", "b"},
		{"fd12:1::1:0/112", ""},
		{"fd12:2::/112", "c"},
		{"fd12:3::/64", ""},
	}
	for _, tt := range tests {
		for range 5 {
			who, ok := FindOverlap(netip.MustParsePrefix(tt.subnet), used)
			if who != tt.want || ok != (tt.want != "") {
				t.Errorf("FindOverlap(%s) = %q, %v; want %q", tt.subnet, who, ok, tt.want)
			}
		}
	}
}
