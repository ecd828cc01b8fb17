package nat

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/v6bridge/v6bridge/internal/golden"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// netipComparers let go-cmp compare netip values, whose fields are unexported.
var netipComparers = []cmp.Option{
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
}

var (
	hostA = netip.MustParseAddr("2001:db8:1234:a1::1")
	hostB = netip.MustParseAddr("2001:db8:1234:a1::2")
)

func natNet() Network {
	return Network{
		Bridge:    "v6b-nat",
		Subnet:    netip.MustParsePrefix("fd12:3456:789a:8101::/64"),
		Gateway:   netip.MustParseAddr("fd12:3456:789a:8101::1"),
		Mode:      ModeNAT,
		ICC:       true,
		AllowPing: true,
		Endpoints: []Endpoint{
			{Addr: netip.MustParseAddr("fd12:3456:789a:8101::ab53"), Ports: []Mapping{
				{Proto: ProtoTCP, HostFirst: 8081, HostLast: 8081, ContainerFirst: 80},
			}},
			{Addr: netip.MustParseAddr("fd12:3456:789a:8101::2")},
		},
	}
}

func publicNet() Network {
	return Network{
		Bridge:    "v6b-pub",
		Subnet:    netip.MustParsePrefix("2001:db8:1234:a1::100/120"),
		Gateway:   netip.MustParseAddr("2001:db8:1234:a1::101"),
		Mode:      ModePublic,
		ICC:       true,
		AllowPing: true,
		Allow:     []Port{{Proto: ProtoTCP, First: 443, Last: 443}, {Proto: ProtoUDP, First: 51820, Last: 51820}},
		Endpoints: []Endpoint{
			{Addr: netip.MustParseAddr("2001:db8:1234:a1::110"), Ports: []Mapping{
				{Proto: ProtoTCP, HostFirst: 8080, HostLast: 8080, ContainerFirst: 80},
				{Proto: ProtoTCP, HostFirst: 22, HostLast: 22, ContainerFirst: 22, HostAddr: hostB},
			}, Open: []Port{{Proto: ProtoTCP, First: 80, Last: 80}}},
		},
	}
}

func internalNet() Network {
	return Network{
		Bridge:    "v6b-int",
		Subnet:    netip.MustParsePrefix("fd12:3456:789a:8102::/64"),
		Gateway:   netip.MustParseAddr("fd12:3456:789a:8102::1"),
		Mode:      ModeInternal,
		AllowPing: true,
		Endpoints: []Endpoint{{Addr: netip.MustParseAddr("fd12:3456:789a:8102::5")}},
	}
}

func state(nets ...Network) State {
	return State{Uplinks: []string{"eth0"}, HostAddrs: []netip.Addr{hostA, hostB}, Networks: nets}
}

type goldenCase struct {
	name string
	s    State
}

// goldenStates are the states of the golden files, shared with the kernel
// test that compares nft's own listing with them.
func goldenStates() []goldenCase {
	natSNAT := natNet()
	natSNAT.SNAT = hostB

	noPing := publicNet()
	noPing.AllowPing = false
	noPing.Allow = nil

	routed := publicNet()
	routed.Bridge = "v6b-routed"
	routed.Mode = ModeRouted
	routed.Subnet = netip.MustParsePrefix("2001:db8:ab::/64")
	routed.Gateway = netip.MustParseAddr("2001:db8:ab::1")
	routed.Allow = []Port{{Proto: ProtoTCP, First: 25, Last: 25}}
	routed.Endpoints = []Endpoint{{Addr: netip.MustParseAddr("2001:db8:ab::10"), Ports: []Mapping{
		{Proto: ProtoTCP, HostFirst: 25, HostLast: 25, ContainerFirst: 25},
	}, Open: []Port{{Proto: ProtoTCP, First: 25, Last: 25}}}}

	protos := natNet()
	protos.Endpoints = []Endpoint{{Addr: netip.MustParseAddr("fd12:3456:789a:8101::7"), Ports: []Mapping{
		{Proto: ProtoUDP, HostFirst: 53, HostLast: 53, ContainerFirst: 5353},
		{Proto: ProtoSCTP, HostFirst: 9899, HostLast: 9899, ContainerFirst: 9899},
		{Proto: ProtoTCP, HostFirst: 8000, HostLast: 8003, ContainerFirst: 9000, HostAddr: hostA},
	}}}

	specific := natNet()
	specific.Endpoints[0].Ports[0].HostAddr = hostA

	noICC := natNet()
	noICC.ICC = false

	// A container on the nat and the public network: each address is a
	// source on the other's bridge.
	homedNat, homedPub := natNet(), publicNet()
	homedNat.Endpoints[1].Also = []netip.Addr{homedPub.Endpoints[0].Addr}
	homedPub.Endpoints[0].Also = []netip.Addr{homedNat.Endpoints[1].Addr}

	return []goldenCase{
		{"empty", State{}},
		{"no-networks", State{Uplinks: []string{"eth0"}, HostAddrs: []netip.Addr{hostA}}},
		{"nat-masquerade", state(natNet())},
		{"nat-snat", state(natSNAT)},
		{"public", state(publicNet())},
		{"public-no-ping", state(noPing)},
		{"routed", state(routed)},
		{"internal", state(internalNet())},
		{"host-address", state(specific)},
		{"udp-sctp-range", state(protos)},
		{"all-modes", state(internalNet(), natNet(), publicNet(), routed)},
		{"nat-no-icc", state(noICC, publicNet())},
		{"multi-homed", state(homedNat, homedPub)},
	}
}

func TestBuildGolden(t *testing.T) {
	for _, tt := range goldenStates() {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Build(tt.s)
			if err != nil {
				t.Fatalf("Build: %v", err)
			}
			golden.Check(t, tt.name+".golden", []byte(r.String()))
		})
	}
}

// TestBuildGuardGolden: the guard table holds every bridge and drops what
// our chains did not mark; no networks, no guard rules.
func TestBuildGuardGolden(t *testing.T) {
	for _, tt := range []goldenCase{{"guard", goldenStates()[10].s}, {"guard-empty", State{}}} {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Build(tt.s)
			if err != nil {
				t.Fatalf("Build: %v", err)
			}
			golden.Check(t, tt.name+".golden", []byte(BuildGuard(r).String()))
		})
	}
}

// TestBuildIntraOnlyICC: routed traffic within a network without ICC must
// meet the isolation drop, so only ICC networks are in the intra set.
func TestBuildIntraOnlyICC(t *testing.T) {
	on, off := natNet(), publicNet()
	off.ICC = false
	r, err := Build(state(on, off))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range r.Sets {
		if s.Name != SetIntra {
			continue
		}
		want := []Element{{Key: []Value{{Name: "v6b-nat"}, {Name: "v6b-nat"}}}}
		if diff := cmp.Diff(want, s.Elements, cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})); diff != "" {
			t.Errorf("intra elements (-want +got):\n%s", diff)
		}
		return
	}
	t.Fatal("no intra set")
}

// TestBuildNoUnrelatedICMPErrors: ICMPv6 errors reach containers only as
// ct state related; no rule of forward_in accepts them on their own.
func TestBuildNoUnrelatedICMPErrors(t *testing.T) {
	r, err := Build(state(publicNet()))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range r.Chains {
		for _, rule := range c.Rules {
			for _, e := range rule.Exprs {
				if it, ok := e.(ICMPv6Type); ok {
					for _, typ := range it.Types {
						if typ >= ICMPv6DestUnreach && typ <= ICMPv6ParamProblem {
							t.Errorf("chain %s accepts ICMPv6 type %d by type: %s", c.Name, typ, rule)
						}
					}
				}
			}
		}
	}
}

// TestBuildConstantRules checks that endpoints and ports only add set
// elements, never rules.
func TestBuildConstantRules(t *testing.T) {
	count := func(s State) (rules, elems int) {
		r, err := Build(s)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range r.Chains {
			rules += len(c.Rules)
		}
		for _, s := range r.Sets {
			elems += len(s.Elements)
		}
		return rules, elems
	}
	small := state(natNet())
	big := state(natNet(), publicNet())
	for i := range 200 {
		a := netip.MustParseAddr("2001:db8:1234:a1::100").As16()
		a[15] = byte(0x20 + i) // ::120 to ::1e7, inside the /120
		ep := Endpoint{Addr: netip.AddrFrom16(a), Ports: []Mapping{{Proto: ProtoUDP, HostFirst: uint16(10000 + i), HostLast: uint16(10000 + i), ContainerFirst: 53}}}
		big.Networks[1].Endpoints = append(big.Networks[1].Endpoints, ep)
	}
	r1, e1 := count(small)
	r2, e2 := count(big)
	if r1 != r2 {
		t.Errorf("rules: %d with 2 endpoints, %d with many: want equal", r1, r2)
	}
	if e2 <= e1 {
		t.Errorf("elements: %d with 2 endpoints, %d with many: want more", e1, e2)
	}
}

func TestBuildElements(t *testing.T) {
	s := state(natNet())
	s.Networks[0].Endpoints[0].Ports = []Mapping{
		{Proto: ProtoTCP, HostFirst: 8000, HostLast: 8001, ContainerFirst: 80},
		{Proto: ProtoTCP, HostFirst: 9000, HostLast: 9000, ContainerFirst: 80}, // same container port again
	}
	r, err := Build(s)
	if err != nil {
		t.Fatal(err)
	}
	sets := map[string]Set{}
	for _, set := range r.Sets {
		sets[set.Name] = set
	}
	ep := netip.MustParseAddr("fd12:3456:789a:8101::ab53")
	// 80-81 and 80 again: one range element.
	want := []Element{
		{Key: []Value{addr(ep), num(ProtoTCP), portRange(80, 81)}},
	}
	if diff := cmp.Diff(want, sets[SetPublished].Elements, netipComparers...); diff != "" {
		t.Errorf("published (-want +got):\n%s", diff)
	}
	// 3 host ports on 2 host addresses.
	if got := len(sets[MapDNAT].Elements); got != 6 {
		t.Errorf("dnat has %d elements, want 6", got)
	}
	if got := len(sets[SetOpen].Elements); got != 0 {
		t.Errorf("open has %d elements on a nat network, want 0", got)
	}
}

func TestValidate(t *testing.T) {
	mod := func(f func(s *State)) State {
		s := state(natNet(), publicNet())
		f(&s)
		return s
	}
	tests := []struct {
		name string
		s    State
		want string // substring of the error; empty: valid
	}{
		{"valid", mod(func(*State) {}), ""},
		{"host first after last", mod(func(s *State) {
			s.Networks[0].Endpoints[0].Ports[0].HostLast = 8000
		}), "host ports: accepted is a range"},
		{"host port zero", mod(func(s *State) {
			s.Networks[0].Endpoints[0].Ports[0].HostFirst = 0
		}), "host ports: accepted is a range"},
		{"container range overflows", mod(func(s *State) {
			s.Networks[0].Endpoints[0].Ports[0] = Mapping{Proto: ProtoTCP, HostFirst: 100, HostLast: 110, ContainerFirst: 65530}
		}), "container ports"},
		{"bad proto", mod(func(s *State) {
			s.Networks[0].Endpoints[0].Ports[0].Proto = 1
		}), "protocol 1: accepted are tcp, udp, sctp"},
		{"ipv4 host addr", mod(func(s *State) {
			s.Networks[0].Endpoints[0].Ports[0].HostAddr = netip.MustParseAddr("192.0.2.1")
		}), "accepted is an IPv6 address"},
		{"unknown mode", mod(func(s *State) { s.Networks[0].Mode = "bridge" }), `mode "bridge": accepted are nat, public, routed, internal`},
		{"long bridge", mod(func(s *State) { s.Networks[0].Bridge = "v6b-0123456789ab" }), "accepted are 1 to 15 bytes"},
		{"duplicate bridge", mod(func(s *State) { s.Networks[1].Bridge = s.Networks[0].Bridge }), "bridge name used twice"},
		{"overlapping subnets", mod(func(s *State) {
			s.Networks[1].Subnet = netip.MustParsePrefix("fd12:3456:789a:8101:1::/80")
			s.Networks[1].Gateway = netip.MustParseAddr("fd12:3456:789a:8101:1::1")
			s.Networks[1].Endpoints = nil
		}), "overlaps fd12:3456:789a:8101::/64 of network \"v6b-nat\": internal error"},
		{"host bits", mod(func(s *State) { s.Networks[0].Subnet = netip.MustParsePrefix("fd12:3456:789a:8101::1/64") }), "no host bits"},
		{"other address on another network", mod(func(s *State) {
			s.Networks[0].Endpoints[1].Also = []netip.Addr{s.Networks[1].Endpoints[0].Addr}
		}), ""},
		{"other address in its own subnet", mod(func(s *State) {
			s.Networks[0].Endpoints[1].Also = []netip.Addr{s.Networks[0].Endpoints[0].Addr}
		}), "accepted is an address in the subnet of another network that is not internal"},
		{"other address on an internal network", func() State {
			s := state(natNet(), internalNet())
			s.Networks[0].Endpoints[1].Also = []netip.Addr{s.Networks[1].Endpoints[0].Addr}
			return s
		}(), "accepted is an address in the subnet of another network that is not internal"},
		{"other address claimed twice on one network", mod(func(s *State) {
			a := s.Networks[1].Endpoints[0].Addr
			s.Networks[0].Endpoints[0].Also, s.Networks[0].Endpoints[1].Also = []netip.Addr{a}, []netip.Addr{a}
		}), "already the container of endpoint"},
		{"bad uplink", mod(func(s *State) { s.Uplinks = []string{""} }), "accepted are interface names of 1 to 15 bytes"},
		{"endpoint outside subnet", mod(func(s *State) {
			s.Networks[0].Endpoints[0].Addr = netip.MustParseAddr("fd99::1")
		}), "accepted is an address in fd12:3456:789a:8101::/64"},
		{"snat in public", mod(func(s *State) { s.Networks[1].SNAT = hostA }), "accepted only in mode nat"},
		{"internal without gateway", mod(func(s *State) {
			s.Networks[0].Mode = ModeInternal
			s.Networks[0].Gateway = netip.Addr{}
		}), "without gateway"},
		{"allow range backwards", mod(func(s *State) { s.Networks[1].Allow = []Port{{Proto: ProtoTCP, First: 10, Last: 9}} }), "allowed port tcp/10-9"},
		{"too many elements", mod(func(s *State) {
			// Ranges that shift the port cost a dnat element per port and
			// host address; ranges that keep it cost one.
			s.Networks[1].Endpoints[0].Ports = []Mapping{
				{Proto: ProtoTCP, HostAddr: hostB, HostFirst: 9000, HostLast: 65535, ContainerFirst: 1},
				{Proto: ProtoUDP, HostAddr: hostB, HostFirst: 2, HostLast: 65535, ContainerFirst: 1},
				{Proto: ProtoSCTP, HostAddr: hostB, HostFirst: 2, HostLast: 65535, ContainerFirst: 1},
				{Proto: ProtoTCP, HostAddr: hostA, HostFirst: 9000, HostLast: 65535, ContainerFirst: 1},
				{Proto: ProtoUDP, HostAddr: hostA, HostFirst: 2, HostLast: 65535, ContainerFirst: 1},
			}
		}), "accepted are at most"},
		{"conflict", mod(func(s *State) {
			s.Networks[1].Endpoints[0].Ports[0].HostFirst = 8081
			s.Networks[1].Endpoints[0].Ports[0].HostLast = 8081
		}), "already published"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantErr(t, "Validate", Validate(tt.s), tt.want)
			_, err := Build(tt.s)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Build: %v, want nil", err)
			case tt.want != "" && err == nil:
				t.Fatalf("Build accepted what Validate refused")
			}
		})
	}
}

func TestCheckConflicts(t *testing.T) {
	ep1 := netip.MustParseAddr("fd12:3456:789a:8101:1::ab53")
	ep2 := netip.MustParseAddr("fd12:3456:789a:8101:1::ab54")
	m := func(proto uint8, host netip.Addr, first, last uint16) Mapping {
		return Mapping{Proto: proto, HostAddr: host, HostFirst: first, HostLast: last, ContainerFirst: 80}
	}
	st := func(a, b []Mapping) State {
		return State{HostAddrs: []netip.Addr{hostA}, Networks: []Network{{
			Bridge: "v6b-a", Mode: ModeNAT, Subnet: netip.MustParsePrefix("fd12:3456:789a:8101::/64"),
			Endpoints: []Endpoint{{Addr: ep1, Ports: a}, {Addr: ep2, Ports: b}},
		}}}
	}
	var any6 netip.Addr
	tests := []struct {
		name string
		s    State
		want string
	}{
		{"same addr and port", st([]Mapping{m(ProtoTCP, hostA, 8081, 8081)}, []Mapping{m(ProtoTCP, hostA, 8081, 8081)}),
			"publish for fd12:3456:789a:8101:1::ab54: host port tcp/8081 on 2001:db8:1234:a1::1 is already published by fd12:3456:789a:8101:1::ab53"},
		{"any vs specific", st([]Mapping{m(ProtoTCP, any6, 8081, 8081)}, []Mapping{m(ProtoTCP, hostA, 8081, 8081)}),
			"host port tcp/8081 on 2001:db8:1234:a1::1 is already published by fd12:3456:789a:8101:1::ab53"},
		{"any vs any", st([]Mapping{m(ProtoUDP, any6, 53, 53)}, []Mapping{m(ProtoUDP, any6, 53, 53)}),
			"host port udp/53 on every host address is already published by fd12:3456:789a:8101:1::ab53"},
		{"overlapping ranges", st([]Mapping{m(ProtoTCP, any6, 8000, 8010)}, []Mapping{m(ProtoTCP, any6, 8005, 8020)}),
			"host port tcp/8005 on every host address"},
		{"different proto", st([]Mapping{m(ProtoTCP, any6, 53, 53)}, []Mapping{m(ProtoUDP, any6, 53, 53)}), ""},
		{"different host addr", st([]Mapping{m(ProtoTCP, hostA, 80, 80)}, []Mapping{m(ProtoTCP, hostB, 80, 80)}), ""},
		{"adjacent ranges", st([]Mapping{m(ProtoTCP, any6, 8000, 8009)}, []Mapping{m(ProtoTCP, any6, 8010, 8020)}), ""},
		{"same endpoint repeats a mapping", st([]Mapping{m(ProtoTCP, any6, 80, 80), m(ProtoTCP, any6, 80, 80)}, nil), ""},
		{"same endpoint two container ports on one host port",
			st([]Mapping{m(ProtoTCP, any6, 80, 80), {Proto: ProtoTCP, HostFirst: 80, HostLast: 80, ContainerFirst: 81}}, nil),
			"host port tcp/80 on every host address is already published by fd12:3456:789a:8101:1::ab53"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckConflicts(tt.s)
			wantErr(t, "CheckConflicts", err, tt.want)
			if tt.want != "" && !errors.Is(err, ErrPortConflict) {
				t.Errorf("errors.Is(err, ErrPortConflict) = false")
			}
		})
	}
}

func TestCheckConflictsIgnoresInternal(t *testing.T) {
	a, b := internalNet(), internalNet()
	b.Bridge, b.Subnet, b.Gateway = "v6b-int2", netip.MustParsePrefix("fd12:3456:789a:8103::/64"), netip.MustParseAddr("fd12:3456:789a:8103::1")
	b.Endpoints = []Endpoint{{Addr: netip.MustParseAddr("fd12:3456:789a:8103::5")}}
	p := []Mapping{{Proto: ProtoTCP, HostFirst: 80, HostLast: 80, ContainerFirst: 80}}
	a.Endpoints[0].Ports, b.Endpoints[0].Ports = p, p
	if err := CheckConflicts(state(a, b)); err != nil {
		t.Fatalf("CheckConflicts: %v, want nil for internal networks", err)
	}
}

// wantErr fails the test unless err is nil where want is empty, or else
// an error whose text contains want; what names the call.
func wantErr(t *testing.T, what string, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatalf("%s: %v, want nil", what, err)
	case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
		t.Fatalf("%s: %v, want an error containing %q", what, err, want)
	}
}
