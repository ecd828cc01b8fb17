package ndpflood

import (
	"net"
	"net/netip"
	"testing"

	mndp "github.com/mdlayher/ndp"
)

func TestBuild(t *testing.T) {
	src := netip.MustParseAddr("2001:db8::fffe")
	target := netip.MustParseAddr("2001:db8::1:2:3")
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 0xfe}
	var b [pktLen]byte
	Build(&b, src, snm(target), target, mac)
	m, err := mndp.ParseMessage(b[40:])
	if err != nil {
		t.Fatal(err)
	}
	ns, ok := m.(*mndp.NeighborSolicitation)
	if !ok || ns.TargetAddress != target {
		t.Fatalf("parsed %+v", m)
	}
	// The checksum verifies: marshalling the same message gives the same bytes.
	want, err := mndp.MarshalMessageChecksum(ns, src, snm(target))
	if err != nil {
		t.Fatal(err)
	}
	if string(want) != string(b[40:]) {
		t.Errorf("built %x, want %x", b[40:], want)
	}
	if b[7] != 255 || b[6] != 58 {
		t.Errorf("header %x", b[:40])
	}
}

func TestRandomIn(t *testing.T) {
	p := netip.MustParsePrefix("2001:db8:1234:a1::/61")
	rnd := newRand()
	for range 1000 {
		if a := randomIn(rnd, p); !p.Contains(a) {
			t.Fatalf("%s outside %s", a, p)
		}
	}
}

func TestRandomMAC(t *testing.T) {
	rnd := newRand()
	seen := map[string]bool{}
	for range 1000 {
		m := randomMAC(rnd)
		if len(m) != 6 || m[0]&1 != 0 || m[0]&2 == 0 {
			t.Fatalf("%v: want a locally administered unicast MAC", m)
		}
		seen[m.String()] = true
	}
	if len(seen) < 990 {
		t.Errorf("%d distinct MACs of 1000", len(seen))
	}
}
