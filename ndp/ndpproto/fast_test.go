package ndpproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"testing"

	mndp "github.com/mdlayher/ndp"

	"github.com/v6bridge/v6bridge/ndp/internal/ndptest"
)

// slowPath is what ParsePacket, Decide and Answer.Packet make of pkt:
// the advertisement's bytes and frame destination, or the reason.
func slowPath(pkt []byte, linkSrc net.HardwareAddr, cfg DecideConfig, owned func(netip.Addr) bool) (notNS bool, out []byte, linkDst net.HardwareAddr, reason string) {
	ns, err := ParsePacket(pkt, linkSrc)
	if errors.Is(err, ErrNotSolicitation) {
		return true, nil, nil, ""
	}
	if errors.Is(err, ErrBadChecksum) {
		return false, nil, nil, ReasonBadChecksum
	}
	if err != nil {
		return false, nil, nil, ReasonMalformed
	}
	a, ok, reason := Decide(ns, cfg, owned)
	if !ok {
		return false, nil, nil, reason
	}
	b, err := a.Packet()
	if err != nil {
		panic(err)
	}
	return false, b, a.LinkDestination, ""
}

// fastPath runs ParseFast and DecideFast the way the capture loop does.
func fastPath(pkt []byte, linkSrc net.HardwareAddr, cfg DecideConfig, owned func(netip.Addr) bool) (notNS bool, out []byte, linkDst net.HardwareAddr, reason string) {
	var ns FastNS
	switch ParseFast(pkt, linkSrc, &ns) {
	case FastNotNS:
		return true, nil, nil, ""
	case FastMalformed:
		return false, nil, nil, ReasonMalformed
	case FastBadChecksum:
		return false, nil, nil, ReasonBadChecksum
	case FastSlow:
		s, err := ParsePacket(pkt, linkSrc)
		if errors.Is(err, ErrNotSolicitation) {
			return true, nil, nil, ""
		}
		if err != nil {
			return false, nil, nil, ReasonMalformed
		}
		ns.FromSolicitation(s)
	}
	var buf [NALen]byte
	mac, _, reason := DecideFast(&ns, &cfg, owned, &buf)
	if reason != "" {
		return false, nil, nil, reason
	}
	return false, buf[:], mac[:], ""
}

func checkAgree(t *testing.T, name string, pkt []byte, linkSrc net.HardwareAddr, cfg DecideConfig, owned func(netip.Addr) bool) {
	t.Helper()
	sn, sb, sm, sr := slowPath(pkt, linkSrc, cfg, owned)
	fn, fb, fm, fr := fastPath(pkt, linkSrc, cfg, owned)
	if sn != fn || sr != fr || !bytes.Equal(sb, fb) || !bytes.Equal(sm, fm) {
		t.Errorf("%s: slow path (not ns %v, reason %q, to %v)\n%x\nfast path (not ns %v, reason %q, to %v)\n%x", name, sn, sr, sm, sb, fn, fr, fm, fb)
	}
}

// TestFastPathAgrees: the allocation-free path answers exactly like
// ParsePacket + Decide + Packet, byte for byte, over every combination of
// source, destination, hop limit, target, options, frame source and
// configuration.
func TestFastPathAgrees(t *testing.T) {
	srcs := []netip.Addr{ndptest.RouterAddr, netip.IPv6Unspecified(), netip.MustParseAddr("ff02::2"), ndptest.RouterLL}
	targets := []netip.Addr{ndptest.LiveAddr, other, netip.MustParseAddr("ff02::1"), netip.MustParseAddr("::1")}
	optSets := map[string][]mndp.Option{
		"none":      nil,
		"slla":      {ndptest.SLLAOpt(ndptest.RouterMAC)},
		"own slla":  {ndptest.SLLAOpt(uplinkMAC)},
		"dup slla":  {ndptest.SLLAOpt(ndptest.RouterMAC), ndptest.SLLAOpt(ndptest.RouterMAC)},
		"nonce":     {mndp.NewNonce()},
		"two nonce": {mndp.NewNonce(), mndp.NewNonce()},
		"tlla":      {&mndp.LinkLayerAddress{Direction: mndp.Target, Addr: ndptest.RouterMAC}},
		"unknown":   {ndptest.SLLAOpt(ndptest.RouterMAC), &mndp.RawOption{Type: 200, Length: 1, Value: make([]byte, 6)}},
		"mtu":       {&mndp.MTU{MTU: 1500}},
		"broadcast": {ndptest.SLLAOpt(net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})},
		"group":     {ndptest.SLLAOpt(net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1})},
	}
	cfgs := []DecideConfig{
		{LinkAddr: uplinkMAC, LinkLocal: ndptest.HostLL, Global: hostGlobal},
		{LinkAddr: uplinkMAC, LinkLocal: ndptest.HostLL, Global: hostGlobal, Router: true, Source: SourceTarget},
		{LinkAddr: uplinkMAC, Source: SourceGlobal},
		{LinkAddr: nil},
	}
	n := 0
	for _, src := range srcs {
		for _, target := range targets {
			for _, dst := range []netip.Addr{ndptest.SNM(target), target, other} {
				for _, hop := range []uint8{255, 254} {
					for on, opts := range optSets {
						for _, linkSrc := range []net.HardwareAddr{ndptest.RouterMAC, uplinkMAC, nil, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff}} {
							for ci, cfg := range cfgs {
								icmp, err := mndp.MarshalMessageChecksum(&mndp.NeighborSolicitation{TargetAddress: target, Options: opts}, src, dst)
								if err != nil {
									continue // mndp refuses to build it
								}
								for _, hbh := range []bool{false, true} {
									var pkt []byte
									if hbh {
										pkt = ndptest.IPv6Packet(src, dst, hop, 0, []byte{58, 0, 1, 4, 0, 0, 0, 0}, icmp)
									} else {
										pkt = ndptest.IPv6Packet(src, dst, hop, 0, nil, icmp)
									}
									name := src.String() + ">" + dst.String() + " " + target.String() + " " + on
									checkAgree(t, name, pkt, linkSrc, cfg, ownsLive)
									_ = ci
									n++
								}
							}
						}
					}
				}
			}
		}
	}
	t.Logf("%d cases agree", n)
}

// FuzzFastPath: on any bytes the two paths agree.
func FuzzFastPath(f *testing.F) {
	f.Add(ndptest.IPv6Packet(ndptest.RouterAddr, ndptest.SNM(ndptest.LiveAddr), 255, 0, nil, ndptest.ICMPNS(f, ndptest.RouterAddr, ndptest.SNM(ndptest.LiveAddr), ndptest.LiveAddr, ndptest.SLLAOpt(ndptest.RouterMAC))))
	f.Add(ndptest.IPv6Packet(netip.IPv6Unspecified(), ndptest.SNM(ndptest.LiveAddr), 255, 0, nil, ndptest.ICMPNS(f, netip.IPv6Unspecified(), ndptest.SNM(ndptest.LiveAddr), ndptest.LiveAddr, mndp.NewNonce())))
	f.Add(ndptest.IPv6Packet(ndptest.RouterAddr, ndptest.LiveAddr, 255, 0, []byte{58, 0, 1, 4, 0, 0, 0, 0}, ndptest.ICMPNS(f, ndptest.RouterAddr, ndptest.LiveAddr, ndptest.LiveAddr)))
	cfg := DecideConfig{LinkAddr: uplinkMAC, LinkLocal: ndptest.HostLL, Global: hostGlobal}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkAgree(t, "fuzz", b, ndptest.RouterMAC, cfg, ownsLive)
		// With the checksum fixed up, to get past it.
		if len(b) >= 44 && b[6] == 58 {
			c := append([]byte(nil), b...)
			payload := min(int(binary.BigEndian.Uint16(c[4:6])), len(c)-40)
			msg := c[40 : 40+payload]
			if len(msg) >= 4 {
				msg[2], msg[3] = 0, 0
				binary.BigEndian.PutUint16(msg[2:4], Checksum(netip.AddrFrom16([16]byte(c[8:24])), netip.AddrFrom16([16]byte(c[24:40])), msg))
				checkAgree(t, "fuzz fixed", c, ndptest.RouterMAC, cfg, ownsLive)
			}
		}
	})
}

// BenchmarkFastPath is the per-packet cost of the capture loop's decision
// for an answered solicitation; -benchmem shows it allocates nothing.
func BenchmarkFastPath(b *testing.B) {
	pkt := ndptest.IPv6Packet(ndptest.RouterAddr, ndptest.SNM(ndptest.LiveAddr), 255, 0, nil, ndptest.ICMPNS(b, ndptest.RouterAddr, ndptest.SNM(ndptest.LiveAddr), ndptest.LiveAddr, ndptest.SLLAOpt(ndptest.RouterMAC)))
	cfg := DecideConfig{LinkAddr: uplinkMAC, LinkLocal: ndptest.HostLL, Global: hostGlobal}
	owned := map[netip.Addr]struct{}{ndptest.LiveAddr: {}}
	own := func(a netip.Addr) bool { _, ok := owned[a]; return ok }
	lim := NewLimiter(-1, -1, -1, -1)
	var buf [NALen]byte
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		var ns FastNS
		if ParseFast(pkt, ndptest.RouterMAC, &ns) != FastOK {
			b.Fatal("not parsed")
		}
		_, kind, reason := DecideFast(&ns, &cfg, own, &buf)
		if reason != "" || lim.Allow(int64(i), ns.Src, ns.Target, kind, false) != "" {
			b.Fatal(reason)
		}
	}
}

// BenchmarkSlowPath is the same through ParsePacket, Decide and Packet,
// what the responder did before the fast path.
func BenchmarkSlowPath(b *testing.B) {
	pkt := ndptest.IPv6Packet(ndptest.RouterAddr, ndptest.SNM(ndptest.LiveAddr), 255, 0, nil, ndptest.ICMPNS(b, ndptest.RouterAddr, ndptest.SNM(ndptest.LiveAddr), ndptest.LiveAddr, ndptest.SLLAOpt(ndptest.RouterMAC)))
	cfg := DecideConfig{LinkAddr: uplinkMAC, LinkLocal: ndptest.HostLL, Global: hostGlobal}
	b.ReportAllocs()
	for b.Loop() {
		ns, err := ParsePacket(pkt, ndptest.RouterMAC)
		if err != nil {
			b.Fatal(err)
		}
		a, ok, _ := Decide(ns, cfg, ownsLive)
		if !ok {
			b.Fatal("not answered")
		}
		if _, err := a.Packet(); err != nil {
			b.Fatal(err)
		}
	}
}

func TestLimiter(t *testing.T) {
	const sec = int64(1e9)
	l := NewLimiter(10, 100, 1, 0)
	a, b := ndptest.RouterAddr, other
	got := 0
	for range 50 {
		if l.Allow(sec, a, ndptest.LiveAddr, kindMulticast, false) == "" {
			got++
		}
	}
	if got != 20 { // burst: twice the rate
		t.Errorf("one source at once: %d answered, want 20", got)
	}
	if r := l.Allow(sec, a, ndptest.LiveAddr, KindUnicast, false); r != ReasonSourceLimit {
		t.Errorf("over the source budget: %q", r)
	}
	if r := l.Allow(sec, b, ndptest.LiveAddr, KindUnicast, false); r != "" {
		t.Errorf("another source refused: %q", r)
	}
	if r := l.Allow(sec+sec/10, a, ndptest.LiveAddr, KindUnicast, false); r != "" {
		t.Errorf("after 100 ms (one token back): %q", r)
	}
	// DAD defences: 3 at once per target, then one a second.
	dad := 0
	for range 10 {
		if l.Allow(2*sec, netip.IPv6Unspecified(), ndptest.LiveAddr, KindDAD, false) == "" {
			dad++
		}
	}
	if dad != 3 || l.Allow(2*sec, netip.IPv6Unspecified(), other, KindDAD, false) != "" {
		t.Errorf("dad defences: %d for one target at once, want 3, and another target still defended", dad)
	}
	// The total budget holds over many sources.
	l = NewLimiter(-1, 100, -1, 0)
	got = 0
	for i := range 500 {
		src := netip.AddrFrom16([16]byte{0x20, 0x01, 14: byte(i >> 8), 15: byte(i)})
		if l.Allow(sec, src, ndptest.LiveAddr, kindMulticast, false) == "" {
			got++
		}
	}
	if got != 100 {
		t.Errorf("500 sources at once under a total of 100: %d answered", got)
	}
}

// TestBuildNS: the priming solicitation parses as one from the new address
// for the router, with the uplink's MAC.
func TestBuildNS(t *testing.T) {
	var b [NALen]byte
	BuildNS(&b, ndptest.LiveAddr, ndptest.RouterAddr, uplinkMAC)
	ns, err := ParsePacket(b[:], uplinkMAC)
	if err != nil {
		t.Fatal(err)
	}
	if ns.Source != ndptest.LiveAddr || ns.Destination != ndptest.SNM(ndptest.RouterAddr) || ns.Target != ndptest.RouterAddr || ns.HopLimit != 255 || !bytes.Equal(ns.SourceLinkAddr, uplinkMAC) {
		t.Errorf("priming solicitation %+v", ns)
	}
	if m := MulticastMACOf(ndptest.SNM(ndptest.RouterAddr)); !bytes.Equal(m[:], []byte{0x33, 0x33, 0xff, 0, 0xff, 0xfe}) {
		t.Errorf("multicast MAC %x", m)
	}
}
