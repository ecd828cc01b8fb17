package ndp

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	mndp "github.com/mdlayher/ndp"
)

var (
	routerMAC    = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xfe}
	routerAddr   = netip.MustParseAddr("2001:db8:1234:a1::fffe")
	routerLL     = netip.MustParseAddr("fe80::fe")
	hostLL       = netip.MustParseAddr("fe80::1")
	live         = netip.MustParseAddr("2001:db8:1234:a1:1::ab53")
	containerNet = netip.MustParsePrefix("2001:db8:1234:a1:1::/112")
	liveAddr     = netip.MustParseAddr("2001:db8:1234:a1:1::ab53")
	attackerMAC  = net.HardwareAddr{0x02, 0xba, 0xd0, 0, 0, 1}
)

func snm(a netip.Addr) netip.Addr {
	g, err := mndp.SolicitedNodeMulticast(a)
	if err != nil {
		panic(err)
	}
	return g
}

func tlla(mac net.HardwareAddr) []mndp.Option {
	return []mndp.Option{&mndp.LinkLayerAddress{Direction: mndp.Target, Addr: mac}}
}

func icmpNS(t testing.TB, src, dst, target netip.Addr, opts ...mndp.Option) []byte {
	t.Helper()
	b, err := mndp.MarshalMessageChecksum(&mndp.NeighborSolicitation{TargetAddress: target, Options: opts}, src, dst)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func ipv6Packet(src, dst netip.Addr, hop uint8, extNext byte, ext, icmp []byte) []byte {
	b := make([]byte, 40)
	b[0] = 6 << 4
	binary.BigEndian.PutUint16(b[4:6], uint16(len(ext)+len(icmp)))
	b[6] = 58
	if ext != nil {
		b[6] = extNext
	}
	b[7] = hop
	s, d := src.As16(), dst.As16()
	copy(b[8:], s[:])
	copy(b[24:], d[:])
	return append(append(b, ext...), icmp...)
}

func sllaOpt(mac net.HardwareAddr) *mndp.LinkLayerAddress {
	return &mndp.LinkLayerAddress{Direction: mndp.Source, Addr: mac}
}

func nth(a netip.Addr, n int) netip.Addr {
	b := a.As16()
	v := uint32(b[12])<<24 | uint32(b[13])<<16 | uint32(b[14])<<8 | uint32(b[15])
	v += uint32(n)
	b[12], b[13], b[14], b[15] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
	return netip.AddrFrom16(b)
}
