package nat

import (
	"net/netip"
	"testing"
)

// benchState is one public network with n joined endpoints, each publishing
// tcp/80 on its own host port: the shape of bench/bench.sh's scale run.
func benchState(n int) State {
	host := netip.MustParseAddr("2001:db8:1234:a1::1")
	nw := Network{
		Bridge:    "v6b-bench",
		Subnet:    netip.MustParsePrefix("2001:db8:1234:a1:1::/112"),
		Gateway:   netip.MustParseAddr("2001:db8:1234:a1:1::1"),
		Mode:      ModePublic,
		ICC:       true,
		AllowPing: true,
	}
	a := nw.Gateway
	for i := range n {
		a = a.Next()
		nw.Endpoints = append(nw.Endpoints, Endpoint{Addr: a, Ports: []Mapping{{
			Proto: ProtoTCP, HostFirst: uint16(20000 + i), HostLast: uint16(20000 + i), ContainerFirst: 80,
		}}})
	}
	return State{Uplinks: []string{"eth0"}, HostAddrs: []netip.Addr{host}, Networks: []Network{nw}}
}

// BenchmarkBuild1000 is the pure half of a full firewall rebuild with 1000
// endpoints: validate the State and build the ruleset.
func BenchmarkBuild1000(b *testing.B) {
	s := benchState(1000)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Build(s); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRender1000 renders that ruleset as nft text (golden tests,
// status output).
func BenchmarkRender1000(b *testing.B) {
	r, err := Build(benchState(1000))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = r.String()
	}
}

// BenchmarkDiff1000 is the pure half of one more Join with 1000 endpoints:
// the element patch between the tables before and after.
func BenchmarkDiff1000(b *testing.B) {
	before, err := Build(benchState(999))
	if err != nil {
		b.Fatal(err)
	}
	after, err := Build(benchState(1000))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := Diff(before, after); !ok {
			b.Fatal("not a patch")
		}
	}
}

// BenchmarkCheckConflicts1000 checks 1000 published ports for a host port
// used twice.
func BenchmarkCheckConflicts1000(b *testing.B) {
	s := benchState(1000)
	for b.Loop() {
		if err := CheckConflicts(s); err != nil {
			b.Fatal(err)
		}
	}
}
