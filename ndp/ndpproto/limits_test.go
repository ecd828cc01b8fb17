package ndpproto

import (
	"errors"
	"net"
	"net/netip"
	"testing"

	"github.com/v6bridge/v6bridge/ndp/internal/ndptest"
)

// solicitor is a solicitation as the capture loop parsed it: IPv6 source,
// frame source, Source Link-Layer Address option (nil: none).
func solicitor(src netip.Addr, linkSrc, slla net.HardwareAddr) *FastNS {
	ns := &FastNS{Src: src, dst: ndptest.SNM(ndptest.LiveAddr), Target: ndptest.LiveAddr, hop: 255}
	if linkSrc != nil {
		ns.hasLink, ns.linkSrc = true, [6]byte(linkSrc)
	}
	if slla != nil {
		ns.hasSLLA, ns.slla = true, [6]byte(slla)
	}
	return ns
}

// TestRouterIDSent: the router is its address AND its MAC, in the frame
// and in the option; forging either alone is not the router.
func TestRouterIDSent(t *testing.T) {
	id := NewRouterID(ndptest.RouterMAC, []netip.Addr{ndptest.RouterLL, ndptest.RouterAddr})
	for _, c := range []struct {
		name string
		ns   *FastNS
		want bool
	}{
		{"the router from its global address", solicitor(ndptest.RouterAddr, ndptest.RouterMAC, ndptest.RouterMAC), true},
		{"the router from its link-local address", solicitor(ndptest.RouterLL, ndptest.RouterMAC, ndptest.RouterMAC), true},
		{"the router without the option (a unicast probe)", solicitor(ndptest.RouterAddr, ndptest.RouterMAC, nil), true},
		{"the router's address from another MAC", solicitor(ndptest.RouterAddr, ndptest.AttackerMAC, ndptest.AttackerMAC), false},
		{"the router's address and option from another frame source", solicitor(ndptest.RouterAddr, ndptest.AttackerMAC, ndptest.RouterMAC), false},
		{"the router's address and frame source, another option", solicitor(ndptest.RouterAddr, ndptest.RouterMAC, ndptest.AttackerMAC), false},
		{"the router's MAC, another address", solicitor(other, ndptest.RouterMAC, ndptest.RouterMAC), false},
		{"frame source unknown", solicitor(ndptest.RouterAddr, nil, ndptest.RouterMAC), false},
	} {
		if got := id.Sent(c.ns); got != c.want {
			t.Errorf("%s: sent = %v, want %v", c.name, got, c.want)
		}
	}
	var none RouterID
	if none.Sent(solicitor(ndptest.RouterAddr, ndptest.RouterMAC, ndptest.RouterMAC)) {
		t.Error("no router known, yet a solicitation is the router's")
	}
}

func TestNewRouterID(t *testing.T) {
	if id := NewRouterID(net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, []netip.Addr{ndptest.RouterLL}); id.Known() {
		t.Errorf("a broadcast MAC makes a router: %+v", id)
	}
	if id := NewRouterID(make(net.HardwareAddr, 6), []netip.Addr{ndptest.RouterLL}); id.Known() {
		t.Errorf("a zero MAC makes a router: %+v", id)
	}
	if id := NewRouterID(ndptest.RouterMAC, []netip.Addr{netip.MustParseAddr("ff02::1"), netip.IPv6Unspecified()}); id.Known() {
		t.Errorf("no unicast address makes a router: %+v", id)
	}
	var many []netip.Addr
	many = append(many, ndptest.RouterLL.WithZone("eth0"), ndptest.RouterLL)
	for i := range 10 {
		many = append(many, netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i + 1)}))
	}
	id := NewRouterID(ndptest.RouterMAC, many)
	got := id.List()
	if len(got) != maxRouterAddrs || got[0] != ndptest.RouterLL || got[1] != many[2] {
		t.Errorf("addresses %v: want %d, the gateway first, without zones or repeats", got, maxRouterAddrs)
	}
	if got, want := EUI64LinkLocal(net.HardwareAddr{0x5a, 0x11, 0x7b, 0x9d, 0x63, 0xe3}), netip.MustParseAddr("fe80::5811:7bff:fe9d:63e3"); got != want {
		t.Errorf("eui64LinkLocal = %s, want %s (what Linux forms)", got, want)
	}
	if id != NewRouterID(ndptest.RouterMAC, many) {
		t.Error("the same router twice is not equal (the ingress filter compares them)")
	}
}

// TestLimiterRouterReserve: a flood forging the router's source address
// from another MAC (and one from many sources) uses up the shared
// budgets; the router's own solicitations are all answered meanwhile,
// up to its reserve, which the flood did not touch.
func TestLimiterRouterReserve(t *testing.T) {
	const sec = int64(1e9)
	id := NewRouterID(ndptest.RouterMAC, []netip.Addr{ndptest.RouterLL, ndptest.RouterAddr})
	l := NewLimiter(10, 100, 1, 50)
	spoofed := solicitor(ndptest.RouterAddr, ndptest.AttackerMAC, ndptest.AttackerMAC)
	random := 0
	for i := range 10000 {
		ns := spoofed
		if i%2 == 1 {
			ns = solicitor(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 12: byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}), ndptest.AttackerMAC, ndptest.AttackerMAC)
		}
		if l.Allow(sec, ns.Src, ndptest.LiveAddr, kindMulticast, id.Sent(ns)) == "" {
			random++
		}
	}
	if random != 100 {
		t.Errorf("the flood got %d answers, want the total of 100", random)
	}
	if r := l.Allow(sec, spoofed.Src, ndptest.LiveAddr, KindUnicast, id.Sent(spoofed)); r != ReasonSourceLimit {
		t.Errorf("the forged router source: %q, want %q", r, ReasonSourceLimit)
	}
	router := solicitor(ndptest.RouterAddr, ndptest.RouterMAC, ndptest.RouterMAC)
	answered := 0
	for range 200 {
		if l.Allow(sec, router.Src, ndptest.LiveAddr, KindUnicast, id.Sent(router)) == "" {
			answered++
		}
	}
	if answered != 100 { // the reserve's burst: twice its rate
		t.Errorf("the router got %d answers during the flood, want its burst of 100", answered)
	}
	if r := l.Allow(sec, router.Src, ndptest.LiveAddr, KindUnicast, true); r != ReasonRouterLimit {
		t.Errorf("the router over its reserve: %q, want %q", r, ReasonRouterLimit)
	}
	// The router spent nothing of the others'.
	if r := l.Allow(2*sec, other, ndptest.LiveAddr, kindMulticast, false); r != "" {
		t.Errorf("another solicitor after a second: %q", r)
	}
	// No limit for the router.
	l = NewLimiter(1, 1, 1, -1)
	for i := range 1000 {
		if r := l.Allow(sec, ndptest.RouterAddr, ndptest.LiveAddr, KindUnicast, true); r != "" {
			t.Fatalf("answer %d to the router without a limit: %q", i, r)
		}
	}
}

// TestBadChecksumIsNotAnswered: both parsers refuse a solicitation with a
// wrong checksum, and say so apart from other malformed ones.
func TestBadChecksumIsNotAnswered(t *testing.T) {
	icmp := ndptest.ICMPNS(t, ndptest.RouterAddr, ndptest.SNM(ndptest.LiveAddr), ndptest.LiveAddr, ndptest.SLLAOpt(ndptest.RouterMAC))
	icmp[2] ^= 0x40
	pkt := ndptest.IPv6Packet(ndptest.RouterAddr, ndptest.SNM(ndptest.LiveAddr), 255, 0, nil, icmp)
	if _, err := ParsePacket(pkt, ndptest.RouterMAC); !errors.Is(err, ErrBadChecksum) || !errors.Is(err, ErrMalformed) {
		t.Errorf("ParsePacket: %v, want ErrBadChecksum wrapping ErrMalformed", err)
	}
	var ns FastNS
	if got := ParseFast(pkt, ndptest.RouterMAC, &ns); got != FastBadChecksum {
		t.Errorf("ParseFast = %d, want FastBadChecksum", got)
	}
}
