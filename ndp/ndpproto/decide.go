package ndpproto

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	mndp "github.com/mdlayher/ndp"
)

// Source address choices for advertisements (Config.Source, NDP_SOURCE).
const (
	// SourceLinkLocal sends from the uplink's link-local address (RFC 4861's
	// choice and the default).
	SourceLinkLocal = "linklocal"
	// SourceTarget sends from the advertised address itself, for providers
	// that drop link-local sources.
	SourceTarget = "target"
	// SourceGlobal sends from the uplink's own global address.
	SourceGlobal = "global"
)

// Reasons Decide gives for not answering. They are fixed strings so that
// callers can count them.
const (
	ReasonHopLimit        = "hop limit not 255"
	ReasonBadSource       = "multicast source"
	ReasonBadTarget       = "target not unicast"
	ReasonDestination     = "destination neither target nor its solicited-node group"
	ReasonDADDestination  = "dad probe not sent to the solicited-node group"
	ReasonNotOwned        = "target not answered for"
	ReasonOwnLinkAddr     = "sent from our own link-layer address"
	ReasonNoLinkAddr      = "uplink has no link-layer address"
	ReasonNoLinkDest      = "no link-layer address to answer to"
	ReasonNonUnicast      = "link-layer address to answer to not unicast"
	ReasonNoSourceAddress = "no source address for the advertisement"
)

// AllNodes is ff02::1, where DAD defences and unsolicited advertisements go.
var AllNodes = netip.MustParseAddr("ff02::1")

// AllNodesMAC is the Ethernet group address of ff02::1 (RFC 2464).
var AllNodesMAC = net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}

// DecideConfig is what Decide needs to know about the uplink an answer
// leaves from.
type DecideConfig struct {
	// LinkAddr is the uplink's MAC: the Target Link-Layer Address option
	// of every answer, and solicitations from it are our own.
	LinkAddr net.HardwareAddr
	// Router sets the advertisements' Router flag.
	Router bool
	// Source is SourceLinkLocal (also for ""), SourceTarget or SourceGlobal.
	Source string
	// LinkLocal and Global are the uplink's addresses for Source; the zero
	// Addr when it has none.
	LinkLocal, Global netip.Addr
}

// SourceFor picks the advertisement's IPv6 source for target. A missing
// link-local falls back to the target; a missing global to the link-local,
// then the target, so an answer always leaves.
func (c DecideConfig) SourceFor(target netip.Addr) netip.Addr {
	switch c.Source {
	case SourceTarget:
		return target
	case SourceGlobal:
		if c.Global.IsValid() {
			return c.Global.WithZone("")
		}
	}
	if c.LinkLocal.IsValid() {
		return c.LinkLocal.WithZone("")
	}
	return target
}

// Answer is a Neighbor Advertisement ready to be put on the wire.
type Answer struct {
	Source      netip.Addr
	Destination netip.Addr
	// LinkDestination is the frame's destination MAC.
	LinkDestination net.HardwareAddr
	Advertisement   mndp.NeighborAdvertisement
}

// Decide decides whether to answer ns and builds the advertisement. owned
// reports whether an address is answered for on the uplink ns arrived on.
// It never panics on any Solicitation; when it does not answer, reason is
// one of the Reason constants.
//
// RFC 4861 7.1.1 and 7.2.4: hop limit must be 255; the target unicast; a
// DAD probe (source ::) must go to the target's solicited-node group and is
// defended with an advertisement to ff02::1 with Solicited clear; any other
// solicitation gets a unicast answer to its source with Solicited set,
// and only to a unicast link-layer address (never broadcast or a group).
// Override is always set (the address has no other owner on the uplink's
// link); Router per cfg; the Target Link-Layer Address option is always
// included.
func Decide(ns Solicitation, cfg DecideConfig, owned func(netip.Addr) bool) (Answer, bool, string) {
	target := ns.Target.WithZone("")
	snm, err := mndp.SolicitedNodeMulticast(target)
	switch {
	case ns.HopLimit != mndp.HopLimit:
		return Answer{}, false, ReasonHopLimit
	case !ns.Source.IsValid() || ns.Source.IsMulticast():
		return Answer{}, false, ReasonBadSource
	case err != nil || !target.IsValid() || target.IsMulticast() || target.IsUnspecified() || target.IsLoopback():
		return Answer{}, false, ReasonBadTarget
	case ns.Source.IsUnspecified() && ns.Destination != snm:
		return Answer{}, false, ReasonDADDestination
	case ns.Destination != snm && ns.Destination.WithZone("") != target:
		return Answer{}, false, ReasonDestination
	case len(cfg.LinkAddr) != 6:
		return Answer{}, false, ReasonNoLinkAddr
	case bytes.Equal(ns.LinkSource, cfg.LinkAddr) || bytes.Equal(ns.SourceLinkAddr, cfg.LinkAddr):
		return Answer{}, false, ReasonOwnLinkAddr
	case owned == nil || !owned(target):
		return Answer{}, false, ReasonNotOwned
	}

	a := toAllNodes(target, cfg)
	if ns.Source.IsUnspecified() {
		return a, true, ""
	}
	a.Advertisement.Solicited = true
	a.Destination = ns.Source.WithZone("")
	switch {
	case len(ns.SourceLinkAddr) == 6:
		a.LinkDestination = append(net.HardwareAddr(nil), ns.SourceLinkAddr...)
	case len(ns.LinkSource) == 6:
		a.LinkDestination = append(net.HardwareAddr(nil), ns.LinkSource...)
	default:
		return Answer{}, false, ReasonNoLinkDest
	}
	if !unicastMAC([6]byte(a.LinkDestination)) {
		return Answer{}, false, ReasonNonUnicast
	}
	return a, true, ""
}

// Unsolicited builds the unsolicited advertisement for target that tells
// every node on the link (ff02::1) its link-layer address is cfg.LinkAddr:
// Override set, Solicited clear, Router per cfg. It fails when the uplink
// has no MAC.
func Unsolicited(target netip.Addr, cfg DecideConfig) (Answer, error) {
	if len(cfg.LinkAddr) != 6 {
		return Answer{}, fmt.Errorf("unsolicited advertisement for %s: %s", target, ReasonNoLinkAddr)
	}
	return toAllNodes(target.WithZone(""), cfg), nil
}

// toAllNodes is the advertisement of target (without zone) from cfg to
// every node on the link: Override set, Solicited clear, Router per cfg,
// the Target Link-Layer Address option cfg.LinkAddr.
func toAllNodes(target netip.Addr, cfg DecideConfig) Answer {
	return Answer{
		Source:          cfg.SourceFor(target),
		Destination:     AllNodes,
		LinkDestination: append(net.HardwareAddr(nil), AllNodesMAC...),
		Advertisement: mndp.NeighborAdvertisement{
			Router:        cfg.Router,
			Override:      true,
			TargetAddress: target,
			Options: []mndp.Option{&mndp.LinkLayerAddress{
				Direction: mndp.Target,
				Addr:      append(net.HardwareAddr(nil), cfg.LinkAddr...),
			}},
		},
	}
}

// Packet marshals a as an IPv6 packet: the 40-byte header (hop limit 255,
// next header ICMPv6) and the advertisement with its checksum.
func (a Answer) Packet() ([]byte, error) {
	if !a.Source.Is6() || !a.Destination.Is6() {
		return nil, fmt.Errorf("advertisement for %s from %s to %s: %s", a.Advertisement.TargetAddress, a.Source, a.Destination, ReasonNoSourceAddress)
	}
	src, dst := a.Source.WithZone(""), a.Destination.WithZone("")
	msg, err := mndp.MarshalMessageChecksum(&a.Advertisement, src, dst)
	if err != nil {
		return nil, fmt.Errorf("marshal advertisement for %s: %w", a.Advertisement.TargetAddress, err)
	}
	b := make([]byte, IPv6HeaderLen, IPv6HeaderLen+len(msg))
	b[0] = 6 << 4
	binary.BigEndian.PutUint16(b[4:6], uint16(len(msg)))
	b[6] = ProtoICMPv6
	b[7] = mndp.HopLimit
	s, d := src.As16(), dst.As16()
	copy(b[8:24], s[:])
	copy(b[24:40], d[:])
	return append(b, msg...), nil
}
