package ipam

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/v6bridge/v6bridge/internal/hostos"
)

var (
	testULA    = netip.MustParsePrefix("fd3c:9a41:7e02::/48")
	testPublic = netip.MustParsePrefix("2001:db8:1234:a1::/64")
	testHost   = []netip.Addr{
		netip.MustParseAddr("2001:db8:1234:a1::1"),
		netip.MustParseAddr("2001:db8:1234:a1:2::5"), // a host address in the second public slot
		netip.MustParseAddr("fd3c:9a41:7e02:0:1::1"), // and one in the first ULA slot
		netip.MustParseAddr("fe80::1%eth0"),          // link-local: irrelevant
		netip.MustParseAddr("2001:db8:ffff::1"),      // elsewhere
	}
	testGateways = []netip.Addr{netip.MustParseAddr("2001:db8:1234:a1:3::1")}
)

// planIPAM returns an IPAM over memory with the test plan.
func planIPAM(t *testing.T, public netip.Prefix, pubLen int) *IPAM {
	t.Helper()
	m, err := newIPAM(Config{
		ULAPrefix:       testULA,
		Host:            &hostos.TestState{Public: public, Host: testHost, Gateways: testGateways},
		PublicSubnetLen: pubLen,
	}, newMem())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func opts(kv ...string) map[string]string {
	o := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		o[kv[i]] = kv[i+1]
	}
	return o
}

func TestAutomaticSubnets(t *testing.T) {
	type step struct {
		req     PoolRequest
		release string // instead of a request: release the pool of this subnet
		want    string // the subnet, or "error: substring"
	}
	auto := func(kv ...string) PoolRequest { return PoolRequest{V6: true, Options: opts(kv...)} }
	explicit := func(s string) PoolRequest { return PoolRequest{V6: true, Pool: s} }
	tests := []struct {
		name   string
		public netip.Prefix
		pubLen int
		steps  []step
	}{
		{"ula by default, for nat and internal", testPublic, 0, []step{
			{req: auto(), want: "fd3c:9a41:7e02:0:2::/112"}, // 0:1:: holds a host address
			{req: auto("v6bridge.mode", "nat"), want: "fd3c:9a41:7e02:0:3::/112"},
			{req: auto("v6bridge.mode", "internal"), want: "fd3c:9a41:7e02:0:4::/112"},
		}},
		{"public skips the host's addresses and the gateway", testPublic, 0, []step{
			{req: auto("v6bridge.mode", "public"), want: "2001:db8:1234:a1:1::/112"},
			{req: auto("v6bridge.mode", "public"), want: "2001:db8:1234:a1:4::/112"}, // :2 host, :3 gateway
		}},
		{"explicit pools are never overlapped", testPublic, 0, []step{
			{req: explicit("fd3c:9a41:7e02:0:2::ff00/120"), want: "fd3c:9a41:7e02:0:2::ff00/120"},
			{req: explicit("2001:db8:1234:a1:1::/112"), want: "2001:db8:1234:a1:1::/112"},
			{req: explicit("fd3c:9a41:7e02:0:4::/80"), want: "fd3c:9a41:7e02:0:4::/80"},
			{req: auto(), want: "fd3c:9a41:7e02:0:3::/112"},
			{req: auto(), want: "fd3c:9a41:7e02:0:5::/112"},
			{req: auto("v6bridge.mode", "public"), want: "2001:db8:1234:a1:4::/112"},
		}},
		{"an explicit subnet where the next automatic one would go", testPublic, 0, []step{
			{req: auto(), want: "fd3c:9a41:7e02:0:2::/112"},
			{req: explicit("fd3c:9a41:7e02:0:2::/112"), want: "error: already used by another v6bridge network"},
			{req: explicit("fd3c:9a41:7e02:0:3::/112"), want: "fd3c:9a41:7e02:0:3::/112"},
			{req: auto(), want: "fd3c:9a41:7e02:0:4::/112"},
		}},
		{"prefix_len asks for another size", testPublic, 0, []step{
			{req: auto("v6bridge.prefix_len", "120"), want: "fd3c:9a41:7e02:0:2::/120"},
			{req: auto("v6bridge.prefix_len", "96", "v6bridge.mode", "public"), want: "2001:db8:1234:a1:1::/96"},
			{req: auto("v6bridge.prefix_len", "80"), want: "fd3c:9a41:7e02:0:3::/80"},
		}},
		{"PUBLIC_SUBNET_LEN", testPublic, 120, []step{
			{req: auto("v6bridge.mode", "public"), want: "2001:db8:1234:a1:1::/120"},
		}},
		{"a released subnet is the lowest free again", testPublic, 0, []step{
			{req: auto(), want: "fd3c:9a41:7e02:0:2::/112"},
			{req: auto(), want: "fd3c:9a41:7e02:0:3::/112"},
			{release: "fd3c:9a41:7e02:0:2::/112"},
			{req: auto(), want: "fd3c:9a41:7e02:0:2::/112"},
		}},
		{"exhaustion names the prefix and its size", netip.MustParsePrefix("2001:db8:1234:a1:ff::/112"), 114, []step{
			{req: auto("v6bridge.mode", "public"), want: "2001:db8:1234:a1:ff::4000/114"},
			{req: auto("v6bridge.mode", "public"), want: "2001:db8:1234:a1:ff::8000/114"},
			{req: auto("v6bridge.mode", "public"), want: "2001:db8:1234:a1:ff::c000/114"},
			{req: auto("v6bridge.mode", "public"), want: "error: no automatic /114 is free in PUBLIC_PREFIX 2001:db8:1234:a1:ff::/112: it holds 3 of them"},
			{release: "2001:db8:1234:a1:ff::8000/114"},
			{req: auto("v6bridge.mode", "public"), want: "2001:db8:1234:a1:ff::8000/114"},
		}},
		{"the host's /64 as a whole is never handed out", testPublic, 64, []step{
			{req: auto("v6bridge.mode", "public"), want: "error: no automatic /64 is free in PUBLIC_PREFIX 2001:db8:1234:a1::/64: it holds 1 of them"},
			{req: auto("v6bridge.prefix_len", "64"), want: "error: no automatic /64 is free in this host's ULA subnet fd3c:9a41:7e02::/64: it holds 1 of them"},
		}},
		{"PUBLIC_PREFIX that is not global", netip.MustParsePrefix("fd00:1::/64"), 0, []step{
			{req: auto("v6bridge.mode", "public"), want: "error: PUBLIC_PREFIX fd00:1::/64 is not a global IPv6 prefix"},
			{req: auto(), want: "fd3c:9a41:7e02:0:2::/112"},
		}},
		{"mode is ignored with --subnet", testPublic, 0, []step{
			{req: PoolRequest{V6: true, Pool: "fd00:5::/112", Options: opts("v6bridge.mode", "public")}, want: "fd00:5::/112"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := planIPAM(t, tt.public, tt.pubLen)
			ids := map[string]string{}
			for i, s := range tt.steps {
				if s.release != "" {
					if err := m.ReleasePool(ids[s.release]); err != nil {
						t.Fatal(err)
					}
					continue
				}
				before := len(m.Pools())
				p, err := m.RequestPool(s.req)
				if msg, ok := strings.CutPrefix(s.want, "error: "); ok {
					if err == nil || !strings.Contains(err.Error(), msg) {
						t.Fatalf("step %d: RequestPool(%+v) = %v, %v; want an error with %q", i, s.req, p.Prefix, err, msg)
					}
					if len(m.Pools()) != before {
						t.Fatalf("step %d: refused request added a pool", i)
					}
					continue
				}
				if err != nil {
					t.Fatalf("step %d: RequestPool(%+v): %v", i, s.req, err)
				}
				if p.Prefix.String() != s.want || p.Range != p.Prefix || p.ID != v6IDPrefix+s.want {
					t.Fatalf("step %d: RequestPool(%+v) = %+v, want %s", i, s.req, p, s.want)
				}
				ids[s.want] = p.ID
			}
		})
	}
}

func TestAutomaticSubnetErrors(t *testing.T) {
	errRead := errors.New("netlink: no route")
	tests := []struct {
		name string
		cfg  Config
		req  PoolRequest
		kind error
		want string
	}{
		{"PUBLIC_PREFIX unknown", Config{ULAPrefix: testULA, Host: &hostos.TestState{PublicErr: errRead}},
			PoolRequest{V6: true, Options: opts("v6bridge.mode", "public")}, ErrSubnetRequired, "no PUBLIC_PREFIX for an automatic public subnet (netlink: no route): set PUBLIC_PREFIX"},
		{"host addresses unreadable", Config{ULAPrefix: testULA, Host: &hostos.TestState{HostErr: errRead}},
			PoolRequest{V6: true}, errRead, "read the host's addresses"},
		{"gateways unreadable", Config{ULAPrefix: testULA, Host: &hostos.TestState{GatewaysErr: errRead}},
			PoolRequest{V6: true}, errRead, "read the uplink's gateways"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := newIPAM(tt.cfg, newMem())
			if err != nil {
				t.Fatal(err)
			}
			_, err = m.RequestPool(tt.req)
			if !errors.Is(err, tt.kind) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("RequestPool = %v, want %v with %q", err, tt.kind, tt.want)
			}
			if len(m.Pools()) != 0 {
				t.Fatal("a pool was added")
			}
		})
	}
}

func TestPlanConfigRefused(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"ULA outside fd00::/8", Config{ULAPrefix: netip.MustParsePrefix("fc00:1::/48")}, "ULA_PREFIX=fc00:1::/48 is not a unique local prefix of fd00::/8"},
		{"global ULA", Config{ULAPrefix: netip.MustParsePrefix("2001:db8::/48")}, "not a unique local prefix"},
		{"ULA too long", Config{ULAPrefix: netip.MustParsePrefix("fd00:1:2:3:4::/80")}, "ULA_PREFIX=fd00:1:2:3:4::/80 is a /80: accepted are /48 to /64"},
		{"subnet length too short", Config{ULASubnetLen: 40}, "ULA_SUBNET_LEN=40: accepted are 48 to 120"},
		{"subnet length too long", Config{PublicSubnetLen: 124}, "PUBLIC_SUBNET_LEN=124: accepted are 48 to 120"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			be := newMem()
			_, err := newIPAM(tt.cfg, be)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("newIPAM = %v, want an error with %q", err, tt.want)
			}
			if be.ula.IsValid() {
				t.Errorf("refused configuration persisted ULA %s", be.ula)
			}
		})
	}
}

// TestGeneratedULA: without ULA_PREFIX each state directory gets its own
// random /48 of fd00::/8, kept across restarts; ULA_PREFIX wins over it.
func TestGeneratedULA(t *testing.T) {
	dir1, dir2 := t.TempDir(), t.TempDir()
	m1, err := New(Config{StateDir: dir1})
	if err != nil {
		t.Fatal(err)
	}
	ula1, host1 := m1.ULA()
	if ula1.Bits() != 48 || ula1.Addr().As16()[0] != 0xfd || ula1 != ula1.Masked() {
		t.Fatalf("generated ULA %s is not a /48 of fd00::/8", ula1)
	}
	if host1 != netip.PrefixFrom(ula1.Addr(), 64) {
		t.Errorf("host ULA %s is not the first /64 of %s", host1, ula1)
	}
	m2, err := New(Config{StateDir: dir2})
	if err != nil {
		t.Fatal(err)
	}
	if ula2, _ := m2.ULA(); ula2 == ula1 {
		t.Errorf("two hosts generated the same ULA %s", ula1)
	}
	if got, ok, err := LoadULA(dir1); err != nil || !ok || got != ula1 {
		t.Errorf("LoadULA = %s, %v, %v; want %s", got, ok, err, ula1)
	}
	again, err := New(Config{StateDir: dir1})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := again.ULA(); got != ula1 {
		t.Errorf("after a restart ULA = %s, want %s", got, ula1)
	}
	set, err := New(Config{StateDir: dir1, ULAPrefix: testULA})
	if err != nil {
		t.Fatal(err)
	}
	if got, host := set.ULA(); got != testULA || host != netip.MustParsePrefix("fd3c:9a41:7e02::/64") {
		t.Errorf("with ULA_PREFIX: %s, %s", got, host)
	}
	if got, _, _ := LoadULA(dir1); got != ula1 {
		t.Errorf("ULA_PREFIX replaced the persisted %s with %s", ula1, got)
	}
	if _, ok, err := LoadULA(t.TempDir()); ok || err != nil {
		t.Errorf("LoadULA of an empty dir = %v, %v", ok, err)
	}

	// A corrupt file is an error naming it, never silently replaced.
	writeState(t, dir2, "ula.json", "{}")
	if _, err := New(Config{StateDir: dir2}); err == nil || !strings.Contains(err.Error(), "ula.json") {
		t.Errorf("New with a corrupt ula.json = %v", err)
	}
}

// TestAutomaticSubnetRestart: an automatic subnet is persisted like any
// pool: after a restart the network has the same subnet and the next
// automatic one is another.
func TestAutomaticSubnetRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{StateDir: dir, Host: &hostos.TestState{Public: testPublic, Host: testHost}}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	nat, err := m.RequestPool(PoolRequest{V6: true})
	if err != nil {
		t.Fatal(err)
	}
	pub, err := m.RequestPool(PoolRequest{V6: true, Options: opts("v6bridge.mode", "public")})
	if err != nil {
		t.Fatal(err)
	}
	gw, err := m.RequestAddress(nat.ID, "", gwOpts)
	if err != nil {
		t.Fatal(err)
	}
	before := m.Pools()

	m2, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, m2.Pools(), cmpAddrs); diff != "" {
		t.Fatalf("pools after restart (-want +got):\n%s", diff)
	}
	for _, p := range []Pool{nat, pub} {
		got, ok := m2.Pool(p.ID)
		if !ok || got.Prefix != p.Prefix {
			t.Errorf("after restart pool %s = %+v, %v", p.ID, got, ok)
		}
	}
	next, err := m2.RequestPool(PoolRequest{V6: true})
	if err != nil {
		t.Fatal(err)
	}
	if next.Prefix == nat.Prefix || next.Prefix.Overlaps(nat.Prefix) {
		t.Errorf("after restart the next automatic subnet %s overlaps %s", next.Prefix, nat.Prefix)
	}
	if _, err := m2.RequestAddress(nat.ID, gw.Addr().String(), gwOpts); err != nil {
		t.Errorf("gateway %s after restart: %v", gw.Addr(), err)
	}
}
