package ndpproto

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"

	mndp "github.com/mdlayher/ndp"
	"golang.org/x/net/ipv6"
)

// ErrMalformed is wrapped by every parse error: the bytes are not a well
// formed Neighbor Solicitation. Callers count and drop such packets.
var ErrMalformed = errors.New("malformed neighbor solicitation")

// ErrBadChecksum is returned by ParsePacket for a solicitation whose
// ICMPv6 checksum is wrong. It wraps ErrMalformed.
var ErrBadChecksum = fmt.Errorf("bad icmpv6 checksum: %w", ErrMalformed)

// ErrNotSolicitation is returned by ParsePacket for a well-formed packet
// that is not a Neighbor Solicitation (an MLD report behind a hop-by-hop
// header passes the capture filter too). It does not wrap ErrMalformed.
var ErrNotSolicitation = errors.New("not a neighbor solicitation")

// Solicitation is a parsed Neighbor Solicitation with what the IPv6 header
// and the link layer said about it.
type Solicitation struct {
	Source      netip.Addr // IPv6 source; :: for duplicate address detection
	Destination netip.Addr // IPv6 destination: the target or its solicited-node group
	HopLimit    uint8
	Target      netip.Addr
	// SourceLinkAddr is the Source Link-Layer Address option, nil when the
	// solicitation carries none.
	SourceLinkAddr net.HardwareAddr
	// LinkSource is the frame's link-layer source, nil when unknown.
	LinkSource net.HardwareAddr
	// Nonce is the RFC 7527 nonce option of a DAD probe, nil without one.
	Nonce *mndp.Nonce
}

const (
	IPv6HeaderLen  = 40
	ProtoICMPv6    = 58
	protoHopByHop  = 0
	protoRouting   = 43
	protoDestOpts  = 60
	icmpHeaderLen  = 4
	nsBodyLen      = 20 // reserved (4) + target (16)
	maxExtHeaders  = 8
	TypeNeighSolic = byte(ipv6.ICMPTypeNeighborSolicitation)
	TypeNeighAdv   = byte(ipv6.ICMPTypeNeighborAdvertisement)
)

// ParsePacket parses an IPv6 packet (from the IPv6 header on, as an
// AF_PACKET SOCK_DGRAM socket delivers it) holding a Neighbor Solicitation,
// possibly behind hop-by-hop, routing or destination options headers. It
// verifies the ICMPv6 checksum, which nothing below a packet socket did.
// linkSource is the frame's source MAC (nil if unknown).
func ParsePacket(b []byte, linkSource net.HardwareAddr) (Solicitation, error) {
	if len(b) < IPv6HeaderLen {
		return Solicitation{}, fmt.Errorf("ipv6 header: %d bytes: %w", len(b), ErrMalformed)
	}
	if b[0]>>4 != 6 {
		return Solicitation{}, fmt.Errorf("ip version %d: %w", b[0]>>4, ErrMalformed)
	}
	payload := int(binary.BigEndian.Uint16(b[4:6]))
	if payload > len(b)-IPv6HeaderLen {
		return Solicitation{}, fmt.Errorf("payload length %d beyond %d bytes: %w", payload, len(b)-IPv6HeaderLen, ErrMalformed)
	}
	next, hop := b[6], b[7]
	src := netip.AddrFrom16([16]byte(b[8:24]))
	dst := netip.AddrFrom16([16]byte(b[24:40]))
	rest := b[IPv6HeaderLen : IPv6HeaderLen+payload]

	for i := 0; next != ProtoICMPv6; i++ {
		switch next {
		case protoHopByHop, protoRouting, protoDestOpts:
		default:
			return Solicitation{}, fmt.Errorf("next header %d: %w", next, ErrNotSolicitation)
		}
		if i == maxExtHeaders || len(rest) < 8 {
			return Solicitation{}, fmt.Errorf("extension headers: %w", ErrMalformed)
		}
		l := (int(rest[1]) + 1) * 8
		if l > len(rest) {
			return Solicitation{}, fmt.Errorf("extension header length %d: %w", l, ErrMalformed)
		}
		next, rest = rest[0], rest[l:]
	}
	if len(rest) > 0 && rest[0] != TypeNeighSolic {
		return Solicitation{}, fmt.Errorf("icmpv6 type %d: %w", rest[0], ErrNotSolicitation)
	}
	if Checksum(src, dst, rest) != 0 {
		return Solicitation{}, ErrBadChecksum
	}
	return ParseICMP(src, dst, hop, rest, linkSource)
}

// ParseICMP parses the ICMPv6 bytes of a Neighbor Solicitation whose IPv6
// header said src, dst and hopLimit. The checksum is not verified (an
// ICMPv6 socket's kernel did). Options are checked: each well formed, at
// most one Source Link-Layer Address option, none with the unspecified
// source (RFC 4861 7.1.1). Unknown options are skipped.
func ParseICMP(src, dst netip.Addr, hopLimit uint8, b []byte, linkSource net.HardwareAddr) (Solicitation, error) {
	if len(b) < icmpHeaderLen+nsBodyLen {
		return Solicitation{}, fmt.Errorf("icmpv6 message: %d bytes: %w", len(b), ErrMalformed)
	}
	if b[0] != TypeNeighSolic {
		return Solicitation{}, fmt.Errorf("icmpv6 type %d: %w", b[0], ErrMalformed)
	}
	if b[1] != 0 {
		return Solicitation{}, fmt.Errorf("icmpv6 code %d: %w", b[1], ErrMalformed)
	}
	m, err := mndp.ParseMessage(b)
	if err != nil {
		return Solicitation{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	ns, ok := m.(*mndp.NeighborSolicitation)
	if !ok {
		return Solicitation{}, fmt.Errorf("message %T: %w", m, ErrMalformed)
	}
	s := Solicitation{
		Source:      src.WithZone(""),
		Destination: dst.WithZone(""),
		HopLimit:    hopLimit,
		Target:      ns.TargetAddress,
	}
	if len(linkSource) > 0 {
		s.LinkSource = net.HardwareAddr(append([]byte(nil), linkSource...))
	}
	for _, o := range ns.Options {
		switch o := o.(type) {
		case *mndp.LinkLayerAddress:
			if o.Direction != mndp.Source {
				continue // a target link-layer option means nothing in a solicitation
			}
			if s.SourceLinkAddr != nil {
				return Solicitation{}, fmt.Errorf("duplicate source link-layer address option: %w", ErrMalformed)
			}
			s.SourceLinkAddr = o.Addr
		case *mndp.Nonce:
			if s.Nonce != nil {
				return Solicitation{}, fmt.Errorf("duplicate nonce option: %w", ErrMalformed)
			}
			s.Nonce = o
		}
	}
	if s.Source.IsUnspecified() && s.SourceLinkAddr != nil {
		return Solicitation{}, fmt.Errorf("source link-layer address option from the unspecified address: %w", ErrMalformed)
	}
	return s, nil
}

// Checksum returns the ones' complement sum over the IPv6 pseudo header and
// an ICMPv6 message: 0 when the message's checksum field is right, the
// checksum to store when that field is zero.
func Checksum(src, dst netip.Addr, msg []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for len(b) >= 2 {
			sum += uint32(binary.BigEndian.Uint16(b))
			b = b[2:]
		}
		if len(b) == 1 {
			sum += uint32(b[0]) << 8
		}
	}
	s, d := src.As16(), dst.As16()
	add(s[:])
	add(d[:])
	var l [8]byte
	binary.BigEndian.PutUint32(l[0:4], uint32(len(msg)))
	l[7] = ProtoICMPv6
	add(l[:])
	add(msg)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// ReasonMalformed counts solicitations that did not parse,
// ReasonBadChecksum those whose ICMPv6 checksum was wrong.
const (
	ReasonMalformed   = "malformed"
	ReasonBadChecksum = "bad icmpv6 checksum"
)
