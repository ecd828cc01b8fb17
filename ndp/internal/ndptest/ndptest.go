// Package ndptest holds what the tests of ndp and ndp/ndpproto share: the
// addresses of the simulated provider link (a router, the host, containers
// in a /112) and builders of the packets they exchange.
package ndptest

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	mndp "github.com/mdlayher/ndp"
)

// The simulated link: the provider's router, the host's link-local
// address, the containers' range and an address in it that is answered
// for, and a stranger's MAC.
var (
	RouterMAC    = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xfe}
	RouterAddr   = netip.MustParseAddr("2001:db8:1234:a1::fffe")
	RouterLL     = netip.MustParseAddr("fe80::fe")
	HostLL       = netip.MustParseAddr("fe80::1")
	ContainerNet = netip.MustParsePrefix("2001:db8:1234:a1:1::/112")
	LiveAddr     = netip.MustParseAddr("2001:db8:1234:a1:1::ab53")
	AttackerMAC  = net.HardwareAddr{0x02, 0xba, 0xd0, 0, 0, 1}
)

// SNM is the solicited-node multicast group of a.
func SNM(a netip.Addr) netip.Addr {
	g, err := mndp.SolicitedNodeMulticast(a)
	if err != nil {
		panic(err)
	}
	return g
}

// TLLA is the option list with mac as Target Link-Layer Address.
func TLLA(mac net.HardwareAddr) []mndp.Option {
	return []mndp.Option{&mndp.LinkLayerAddress{Direction: mndp.Target, Addr: mac}}
}

// ICMPNS marshals a solicitation for target with options, checksummed for
// src and dst.
func ICMPNS(t testing.TB, src, dst, target netip.Addr, opts ...mndp.Option) []byte {
	t.Helper()
	b, err := mndp.MarshalMessageChecksum(&mndp.NeighborSolicitation{TargetAddress: target, Options: opts}, src, dst)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// IPv6Packet prepends an IPv6 header, with ext (already encoded extension
// headers, first next-header value extNext) in between when given.
func IPv6Packet(src, dst netip.Addr, hop uint8, extNext byte, ext, icmp []byte) []byte {
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

// SLLAOpt is the Source Link-Layer Address option holding mac.
func SLLAOpt(mac net.HardwareAddr) *mndp.LinkLayerAddress {
	return &mndp.LinkLayerAddress{Direction: mndp.Source, Addr: mac}
}

// Nth is a plus n, counted in the last 32 bits.
func Nth(a netip.Addr, n int) netip.Addr {
	b := a.As16()
	v := uint32(b[12])<<24 | uint32(b[13])<<16 | uint32(b[14])<<8 | uint32(b[15])
	v += uint32(n)
	b[12], b[13], b[14], b[15] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
	return netip.AddrFrom16(b)
}
