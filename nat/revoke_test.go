package nat

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRevokedPorts(t *testing.T) {
	c := netip.MustParseAddr("fd12:3456:789a:8101::ab53")
	hosts := []netip.Addr{hostA, hostB}
	tcp := func(host, ctr uint16) Mapping {
		return Mapping{Proto: ProtoTCP, HostFirst: host, HostLast: host, ContainerFirst: ctr}
	}
	bypass := func(host netip.Addr, proto uint8, first, last, to uint16) Revocation {
		return Revocation{Match: RevokeBypass, Addr: host, Proto: proto, First: first, Last: last, Target: c, To: to}
	}
	tests := []struct {
		name       string
		olds, news []Mapping
		want       []Revocation
	}{
		{"nothing changes", []Mapping{tcp(8081, 80)}, []Mapping{tcp(8081, 80)}, nil},
		{"a port published: connections that bypass its DNAT", nil, []Mapping{tcp(8081, 80)},
			[]Revocation{bypass(hostA, ProtoTCP, 8081, 8081, 80), bypass(hostB, ProtoTCP, 8081, 8081, 80)}},
		{"a UDP range published on one address is one revocation", nil, []Mapping{{Proto: ProtoUDP, HostAddr: hostA, HostFirst: 51820, HostLast: 51829, ContainerFirst: 1820}},
			[]Revocation{bypass(hostA, ProtoUDP, 51820, 51829, 1820)}},
		{"a host port led to another container port", []Mapping{tcp(8081, 80)}, []Mapping{tcp(8081, 81)},
			[]Revocation{
				{Match: RevokeReplySrc, Addr: c, Proto: ProtoTCP, First: 80, Last: 80},
				bypass(hostA, ProtoTCP, 8081, 8081, 81), bypass(hostB, ProtoTCP, 8081, 8081, 81),
			}},
		{"a port unpublished", []Mapping{tcp(8081, 80), tcp(2222, 22)}, []Mapping{tcp(2222, 22)},
			[]Revocation{{Match: RevokeReplySrc, Addr: c, Proto: ProtoTCP, First: 80, Last: 80}}},
		{"a range unpublished is one revocation", []Mapping{{Proto: ProtoUDP, HostFirst: 5000, HostLast: 5009, ContainerFirst: 6000}}, nil,
			[]Revocation{{Match: RevokeReplySrc, Addr: c, Proto: ProtoUDP, First: 6000, Last: 6009}}},
		{"same container port, other host port: connections to the old host port", []Mapping{tcp(8081, 80)}, []Mapping{tcp(8082, 80)},
			[]Revocation{
				{Match: RevokeOrigDst, Addr: hostA, Proto: ProtoTCP, First: 8081, Last: 8081},
				{Match: RevokeOrigDst, Addr: hostB, Proto: ProtoTCP, First: 8081, Last: 8081},
				bypass(hostA, ProtoTCP, 8082, 8082, 80), bypass(hostB, ProtoTCP, 8082, 8082, 80),
			}},
		{"a host address dropped", []Mapping{tcp(8081, 80)}, []Mapping{{Proto: ProtoTCP, HostAddr: hostB, HostFirst: 8081, HostLast: 8081, ContainerFirst: 80}},
			[]Revocation{{Match: RevokeOrigDst, Addr: hostA, Proto: ProtoTCP, First: 8081, Last: 8081}}},
		{"open directly: closed", nil, nil, nil},
		{"the protocol matters", []Mapping{tcp(53, 53)}, []Mapping{{Proto: ProtoUDP, HostFirst: 53, HostLast: 53, ContainerFirst: 53}},
			[]Revocation{{Match: RevokeReplySrc, Addr: c, Proto: ProtoTCP, First: 53, Last: 53},
				bypass(hostA, ProtoUDP, 53, 53, 53), bypass(hostB, ProtoUDP, 53, 53, 53)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := RevokedPorts(hosts, hosts, Endpoint{Addr: c, Ports: tt.olds}, Endpoint{Addr: c, Ports: tt.news}, false)
			if diff := cmp.Diff(tt.want, got, netipComparers...); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestRevoked(t *testing.T) {
	old := state(internalNet(), natNet(), publicNet())
	natEp := natNet().Endpoints[0].Addr
	intEp := internalNet().Endpoints[0].Addr

	if got := Revoked(old, old); len(got) != 0 {
		t.Errorf("the same state revokes %v", got)
	}
	// Every endpoint gone: each address, whatever it published.
	got := Revoked(old, state())
	var addrs []netip.Addr
	for _, r := range got {
		if r.Match != RevokeAddr {
			t.Errorf("removed endpoints revoke %s, want only addresses", r)
		}
		addrs = append(addrs, r.Addr)
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	want := []netip.Addr{netip.MustParseAddr("2001:db8:1234:a1::110"), natNet().Endpoints[1].Addr, natEp, intEp}
	slices.SortFunc(want, netip.Addr.Compare)
	if diff := cmp.Diff(want, addrs, netipComparers...); diff != "" {
		t.Errorf("addresses revoked (-want +got):\n%s", diff)
	}
	// A public endpoint's directly open port closed: direct connections.
	open := state(publicNet())
	open.Networks[0].Endpoints = slices.Clone(open.Networks[0].Endpoints)
	pubEp := open.Networks[0].Endpoints[0]
	open.Networks[0].Endpoints[0].Open = []Port{{Proto: ProtoTCP, First: 80, Last: 81}}
	closed := state(publicNet())
	closed.Networks[0].Endpoints = slices.Clone(closed.Networks[0].Endpoints)
	closed.Networks[0].Endpoints[0].Open = nil
	if diff := cmp.Diff([]Revocation{{Match: RevokeOrigDst, Addr: pubEp.Addr, Proto: ProtoTCP, First: 80, Last: 81}}, Revoked(open, closed), netipComparers...); diff != "" {
		t.Errorf("close open ports (-want +got):\n%s", diff)
	}
	// The nat endpoint stops publishing 80.
	next := state(internalNet(), natNet(), publicNet())
	next.Networks[1].Endpoints = slices.Clone(next.Networks[1].Endpoints)
	next.Networks[1].Endpoints[0].Ports = nil
	if diff := cmp.Diff([]Revocation{{Match: RevokeReplySrc, Addr: natEp, Proto: ProtoTCP, First: 80, Last: 80}}, Revoked(old, next), netipComparers...); diff != "" {
		t.Errorf("unpublish (-want +got):\n%s", diff)
	}
}

func TestRevocationMatches(t *testing.T) {
	ctr := netip.MustParseAddr("fd12:3456:789a:8101::ab53")
	client := netip.MustParseAddrPort("[2001:db8:ffff::10]:40000")
	// A client reaching a published port: DNAT to the container.
	dnat := ConnTuple{Proto: ProtoTCP, OrigSrc: client, OrigDst: netip.AddrPortFrom(hostA, 8081),
		ReplySrc: netip.AddrPortFrom(ctr, 80), ReplyDst: client}
	// The container reaching out: masqueraded to the host.
	out := ConnTuple{Proto: ProtoTCP, OrigSrc: netip.AddrPortFrom(ctr, 80), OrigDst: client,
		ReplySrc: client, ReplyDst: netip.AddrPortFrom(hostA, 80)}
	// A client that sent to a host port before it was published: not
	// translated, the host itself "answers".
	untranslated := ConnTuple{Proto: ProtoTCP, OrigSrc: client, OrigDst: netip.AddrPortFrom(hostA, 8081),
		ReplySrc: netip.AddrPortFrom(hostA, 8081), ReplyDst: client}
	bypass8081 := Revocation{Match: RevokeBypass, Addr: hostA, Proto: ProtoTCP, First: 8081, Last: 8081, Target: ctr, To: 80}
	tests := []struct {
		name string
		r    Revocation
		c    ConnTuple
		want bool
	}{
		{"container port unpublished", Revocation{Match: RevokeReplySrc, Addr: ctr, Proto: ProtoTCP, First: 80, Last: 80}, dnat, true},
		{"unpublished, not a direct connection", Revocation{Match: RevokeReplySrc, Addr: ctr, Proto: ProtoTCP, First: 80, Last: 80},
			ConnTuple{Proto: ProtoTCP, OrigSrc: client, OrigDst: netip.AddrPortFrom(ctr, 80), ReplySrc: netip.AddrPortFrom(ctr, 80), ReplyDst: client}, false},
		{"container port no longer open directly", Revocation{Match: RevokeOrigDst, Addr: ctr, Proto: ProtoTCP, First: 80, Last: 80},
			ConnTuple{Proto: ProtoTCP, OrigSrc: client, OrigDst: netip.AddrPortFrom(ctr, 80), ReplySrc: netip.AddrPortFrom(ctr, 80), ReplyDst: client}, true},
		{"in the range", Revocation{Match: RevokeReplySrc, Addr: ctr, Proto: ProtoTCP, First: 70, Last: 90}, dnat, true},
		{"another port", Revocation{Match: RevokeReplySrc, Addr: ctr, Proto: ProtoTCP, First: 81, Last: 90}, dnat, false},
		{"another protocol", Revocation{Match: RevokeReplySrc, Addr: ctr, Proto: ProtoUDP, First: 80, Last: 80}, dnat, false},
		{"outbound from the same source port is not inbound", Revocation{Match: RevokeReplySrc, Addr: ctr, Proto: ProtoTCP, First: 80, Last: 80}, out, false},
		{"host port no longer forwarded", Revocation{Match: RevokeOrigDst, Addr: hostA, Proto: ProtoTCP, First: 8081, Last: 8081}, dnat, true},
		{"another host address", Revocation{Match: RevokeOrigDst, Addr: hostB, Proto: ProtoTCP, First: 8081, Last: 8081}, dnat, false},
		{"endpoint gone: inbound", Revocation{Match: RevokeAddr, Addr: ctr}, dnat, true},
		{"endpoint gone: outbound", Revocation{Match: RevokeAddr, Addr: ctr}, out, true},
		{"another endpoint gone", Revocation{Match: RevokeAddr, Addr: netip.MustParseAddr("fd12:3456:789a:8101::2")}, out, false},
		{"newly published: a flow tracked before the DNAT", bypass8081, untranslated, true},
		{"newly published: a flow through the DNAT is kept", bypass8081, dnat, false},
		{"newly published: a flow to the port's former container", bypass8081,
			ConnTuple{Proto: ProtoTCP, OrigSrc: client, OrigDst: netip.AddrPortFrom(hostA, 8081), ReplySrc: netip.MustParseAddrPort("[fd12:3456:789a:8101::2]:80"), ReplyDst: client}, true},
		{"newly published: the offset in a range", Revocation{Match: RevokeBypass, Addr: hostA, Proto: ProtoTCP, First: 8080, Last: 8089, Target: ctr, To: 79}, dnat, false},
		{"newly published: another host address", Revocation{Match: RevokeBypass, Addr: hostB, Proto: ProtoTCP, First: 8081, Last: 8081, Target: ctr, To: 80}, untranslated, false},
		{"newly published: another protocol", Revocation{Match: RevokeBypass, Addr: hostA, Proto: ProtoUDP, First: 8081, Last: 8081, Target: ctr, To: 80}, untranslated, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.r.Matches(tt.c); got != tt.want {
				t.Errorf("%s matches %+v: %v, want %v", tt.r, tt.c, got, tt.want)
			}
		})
	}
}

// TestModelRevocationsEqualRevoked: what UpdateEndpoints revokes for a
// change of some endpoints is what Revoked finds between the whole states
// before and after, over random changes.
func TestModelRevocationsEqualRevoked(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	m, err := NewModel(state(internalNet(), natNet(), publicNet()))
	if err != nil {
		t.Fatal(err)
	}
	nets := []Network{internalNet(), natNet(), publicNet()}
	kinds := map[RevokeMatch]int{}
	for step := range 300 {
		n := nets[rnd.IntN(len(nets))]
		a := n.Subnet.Addr().As16()
		a[15] = byte(2 + rnd.IntN(6))
		u := EndpointUpdate{Bridge: n.Bridge, Addr: netip.AddrFrom16(a), Remove: rnd.IntN(3) == 0}
		if !u.Remove {
			for range rnd.IntN(3) {
				first := uint16(20000 + 10*step + rnd.IntN(5))
				u.Ports = append(u.Ports, Mapping{Proto: []uint8{ProtoTCP, ProtoUDP}[rnd.IntN(2)], HostFirst: first, HostLast: first + uint16(rnd.IntN(3)), ContainerFirst: uint16(80 + rnd.IntN(3))})
			}
		}
		before := m.State()
		got := m.revocations([]EndpointUpdate{u})
		if _, err := m.Update([]EndpointUpdate{u}); err != nil {
			continue
		}
		want := Revoked(before, m.State())
		for _, r := range want {
			kinds[r.Match]++
		}
		if diff := cmp.Diff(want, got, netipComparers...); diff != "" {
			t.Fatalf("step %d, update %+v (-Revoked +revocations):\n%s", step, u, diff)
		}
	}
	if kinds[RevokeAddr] == 0 || kinds[RevokeReplySrc] == 0 {
		t.Errorf("the random changes revoked %v: want addresses and ports", kinds)
	}
}
