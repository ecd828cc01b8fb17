package ndpproto

import (
	"bytes"
	"encoding/binary"
	"net/netip"
)

// The fast path: what the capture loop runs per packet. It gives the same
// verdicts and the same bytes as ParsePacket, Decide and Answer.Packet (the
// tests compare them on every case and under fuzzing) without allocating,
// so a flood costs no garbage. Solicitations with options other than
// source/target link-layer address and nonce are rare; they take the slow
// path (ParsePacket) so that the two never disagree.

// NALen is the length of every advertisement we send: the IPv6 header, the
// ICMPv6 header and flags, the target and one Target Link-Layer Address
// option.
const NALen = IPv6HeaderLen + 4 + 4 + 16 + 8

// FastNS is a Neighbor Solicitation parsed without allocating.
type FastNS struct {
	Src, dst, Target netip.Addr
	hop              uint8
	slla, linkSrc    [6]byte
	hasSLLA, hasLink bool
}

// ParseFast's outcomes: FastOK on success, else why it did not parse.
const (
	FastOK = iota
	FastNotNS
	FastMalformed
	FastSlow // an option the fast path does not know: use ParsePacket
	FastBadChecksum
)

// ParseFast parses b (an IPv6 packet, as ParsePacket takes it) into ns.
// linkSrc is the frame's source MAC, nil if unknown.
func ParseFast(b []byte, linkSrc []byte, ns *FastNS) int {
	if len(b) < IPv6HeaderLen || b[0]>>4 != 6 {
		return FastMalformed
	}
	payload := int(binary.BigEndian.Uint16(b[4:6]))
	if payload > len(b)-IPv6HeaderLen {
		return FastMalformed
	}
	next := b[6]
	ns.hop = b[7]
	ns.Src = netip.AddrFrom16([16]byte(b[8:24]))
	ns.dst = netip.AddrFrom16([16]byte(b[24:40]))
	rest := b[IPv6HeaderLen : IPv6HeaderLen+payload]
	for i := 0; next != ProtoICMPv6; i++ {
		switch next {
		case protoHopByHop, protoRouting, protoDestOpts:
		default:
			return FastNotNS
		}
		if i == maxExtHeaders || len(rest) < 8 {
			return FastMalformed
		}
		l := (int(rest[1]) + 1) * 8
		if l > len(rest) {
			return FastMalformed
		}
		next, rest = rest[0], rest[l:]
	}
	if len(rest) > 0 && rest[0] != TypeNeighSolic {
		return FastNotNS
	}
	if Checksum(ns.Src, ns.dst, rest) != 0 {
		return FastBadChecksum
	}
	if len(rest) < icmpHeaderLen+nsBodyLen || rest[1] != 0 {
		return FastMalformed
	}
	ns.Target = netip.AddrFrom16([16]byte(rest[8:24]))
	if ns.Target.Is4In6() {
		return FastMalformed
	}
	ns.hasSLLA, ns.hasLink = false, len(linkSrc) == 6
	if ns.hasLink {
		copy(ns.linkSrc[:], linkSrc)
	}
	nonce := false
	for o := rest[icmpHeaderLen+nsBodyLen:]; len(o) > 0; {
		if len(o) < 2 {
			return FastMalformed
		}
		l := int(o[1]) * 8
		if l == 0 || l > len(o) {
			return FastMalformed
		}
		switch o[0] {
		case 1, 2: // source, target link-layer address
			if o[1] != 1 {
				return FastMalformed
			}
			if o[0] == 1 {
				if ns.hasSLLA {
					return FastMalformed
				}
				ns.hasSLLA = true
				copy(ns.slla[:], o[2:8])
			}
		case 14: // nonce
			if o[1] >= 32 || nonce { // mndp rejects lengths of 256 bytes and more
				return FastMalformed
			}
			nonce = true
		default:
			return FastSlow
		}
		o = o[l:]
	}
	if ns.Src.IsUnspecified() && ns.hasSLLA {
		return FastMalformed
	}
	return FastOK
}

// FromSolicitation fills ns from a slow-path Solicitation.
func (ns *FastNS) FromSolicitation(s Solicitation) {
	*ns = FastNS{Src: s.Source, dst: s.Destination, Target: s.Target, hop: s.HopLimit}
	if len(s.SourceLinkAddr) == 6 {
		ns.hasSLLA = true
		copy(ns.slla[:], s.SourceLinkAddr)
	}
	if len(s.LinkSource) == 6 {
		ns.hasLink = true
		copy(ns.linkSrc[:], s.LinkSource)
	}
}

// SNMOf is the solicited-node multicast group of a (ff02::1:ffXX:XXXX).
func SNMOf(a netip.Addr) netip.Addr {
	b := a.As16()
	return netip.AddrFrom16([16]byte{0xff, 0x02, 11: 0x01, 12: 0xff, 13: b[13], 14: b[14], 15: b[15]})
}

// Answer kinds of the fast path.
const (
	kindMulticast = iota
	KindUnicast
	KindDAD
)

// DecideFast is Decide on a FastNS. On an answer it writes the whole
// advertisement into out and returns the frame's destination MAC, the kind
// of solicitation and reason "". Otherwise reason is Decide's.
func DecideFast(ns *FastNS, cfg *DecideConfig, owned func(netip.Addr) bool, out *[NALen]byte) (linkDst [6]byte, kind int, reason string) {
	target := ns.Target
	snm := SNMOf(target)
	dad := ns.Src.IsUnspecified()
	switch {
	case ns.hop != 255:
		return linkDst, 0, ReasonHopLimit
	case !ns.Src.IsValid() || ns.Src.IsMulticast():
		return linkDst, 0, ReasonBadSource
	case !target.IsValid() || target.IsMulticast() || target.IsUnspecified() || target.IsLoopback():
		return linkDst, 0, ReasonBadTarget
	case dad && ns.dst != snm:
		return linkDst, 0, ReasonDADDestination
	case ns.dst != snm && ns.dst != target:
		return linkDst, 0, ReasonDestination
	case len(cfg.LinkAddr) != 6:
		return linkDst, 0, ReasonNoLinkAddr
	case (ns.hasLink && bytes.Equal(ns.linkSrc[:], cfg.LinkAddr)) || (ns.hasSLLA && bytes.Equal(ns.slla[:], cfg.LinkAddr)):
		return linkDst, 0, ReasonOwnLinkAddr
	case owned == nil || !owned(target):
		return linkDst, 0, ReasonNotOwned
	}
	var dst netip.Addr
	switch {
	case dad:
		dst, linkDst, kind = AllNodes, [6]byte(AllNodesMAC), KindDAD
	case ns.hasSLLA:
		dst, linkDst = ns.Src, ns.slla
	case ns.hasLink:
		dst, linkDst = ns.Src, ns.linkSrc
	default:
		return linkDst, 0, ReasonNoLinkDest
	}
	if !dad && !unicastMAC(linkDst) {
		return linkDst, 0, ReasonNonUnicast
	}
	if !dad && ns.dst == target {
		kind = KindUnicast
	}
	var flags byte = 0x20 // Override
	if cfg.Router {
		flags |= 0x80
	}
	if !dad {
		flags |= 0x40 // Solicited
	}
	BuildNA(out, cfg.SourceFor(target), dst, target, flags, cfg.LinkAddr)
	return linkDst, kind, ""
}

// BuildNA writes an advertisement for target from src to dst with the
// given flag byte and mac as its Target Link-Layer Address option.
func BuildNA(out *[NALen]byte, src, dst, target netip.Addr, flags byte, mac []byte) {
	*out = [NALen]byte{}
	out[0] = 6 << 4
	binary.BigEndian.PutUint16(out[4:6], NALen-IPv6HeaderLen)
	out[6] = ProtoICMPv6
	out[7] = 255
	s, d, t := src.As16(), dst.As16(), target.As16()
	copy(out[8:24], s[:])
	copy(out[24:40], d[:])
	msg := out[IPv6HeaderLen:]
	msg[0] = TypeNeighAdv
	msg[4] = flags
	copy(msg[8:24], t[:])
	msg[24], msg[25] = 2, 1
	copy(msg[26:32], mac)
	binary.BigEndian.PutUint16(msg[2:4], Checksum(src, dst, msg))
}

// BuildNS writes a Neighbor Solicitation from src for target to target's
// solicited-node group, with mac as its Source Link-Layer Address option:
// what primes a router with src's address (RFC 4861 7.2.3: the receiver
// creates or updates an entry for the solicitation's source).
func BuildNS(out *[NALen]byte, src, target netip.Addr, mac []byte) {
	BuildNA(out, src, SNMOf(target), target, 0, mac)
	msg := out[IPv6HeaderLen:]
	msg[0], msg[24] = TypeNeighSolic, 1
	msg[2], msg[3] = 0, 0
	binary.BigEndian.PutUint16(msg[2:4], Checksum(src, SNMOf(target), msg))
}

// MulticastMACOf is the Ethernet group address of an IPv6 multicast
// group (RFC 2464).
func MulticastMACOf(g netip.Addr) [6]byte {
	b := g.As16()
	return [6]byte{0x33, 0x33, b[12], b[13], b[14], b[15]}
}
