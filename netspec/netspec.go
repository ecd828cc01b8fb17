// Package netspec holds the domain words every layer of v6bridge shares:
// network modes, ports and published-port mappings, protocol numbers, the
// specs of the links the driver asks for, the names of the links it owns,
// and small address and name checks. It imports nothing of v6bridge, so
// link, nat, ndp, driver, ipam and plan can all use it without importing
// each other.
package netspec

import (
	"fmt"
	"iter"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Mode is the outside connectivity of a network.
type Mode string

// Network modes, the values of the "v6bridge.mode" option.
const (
	ModeNAT      Mode = "nat"      // ULA: masquerade outbound, only published ports inbound
	ModePublic   Mode = "public"   // global from the host's on-link /64: firewalled, NDP answered
	ModeRouted   Mode = "routed"   // global routed to the host: firewalled, no NDP
	ModeInternal Mode = "internal" // no traffic in or out of the host except to the gateway
)

// Modes lists the modes in the order error messages name them.
var Modes = []Mode{ModeNAT, ModePublic, ModeRouted, ModeInternal}

// ParseMode returns the mode v names (any case), or an error listing the
// accepted ones.
func ParseMode(v string) (Mode, error) {
	m := Mode(strings.ToLower(v))
	for _, k := range Modes {
		if m == k {
			return m, nil
		}
	}
	return "", fmt.Errorf("not a mode: accepted are nat, public, routed, internal")
}

// Protocol numbers as the engine sends them in port bindings.
const (
	ProtoTCP  uint8 = 6
	ProtoUDP  uint8 = 17
	ProtoSCTP uint8 = 132
)

// ProtoName returns "tcp", "udp" or "sctp" for the protocol number, or the
// number itself.
func ProtoName(p uint8) string {
	switch p {
	case ProtoTCP:
		return "tcp"
	case ProtoUDP:
		return "udp"
	case ProtoSCTP:
		return "sctp"
	}
	return strconv.Itoa(int(p))
}

// Port is a protocol and an inclusive port range. It is part of the
// driver's persisted records: the JSON names are the format.
type Port struct {
	Proto uint8  `json:"Proto"`
	First uint16 `json:"First"`
	Last  uint16 `json:"Last"`
}

// Mapping is one published port range: HostAddr:HostFirst-HostLast is
// forwarded to an address of the container, ContainerFirst onwards. It is
// part of the driver's persisted records: the JSON names are the format.
type Mapping struct {
	Proto          uint8      `json:"Proto"`
	HostAddr       netip.Addr `json:"HostAddr"` // invalid (zero) means every host address
	HostFirst      uint16     `json:"HostFirst"`
	HostLast       uint16     `json:"HostLast"`
	ContainerFirst uint16     `json:"ContainerFirst"`
}

// Hosts returns the host addresses the mapping listens on: its HostAddr,
// or without one every address of all.
func (m Mapping) Hosts(all []netip.Addr) []netip.Addr {
	if !m.HostAddr.IsValid() {
		return all
	}
	return []netip.Addr{m.HostAddr}
}

// Ports yields each host port of the mapping with the container port it
// leads to, in order.
func (m Mapping) Ports() iter.Seq2[uint16, uint16] {
	return func(yield func(host, container uint16) bool) {
		for i := 0; i <= int(m.HostLast-m.HostFirst); i++ {
			if !yield(m.HostFirst+uint16(i), m.ContainerFirst+uint16(i)) {
				return
			}
		}
	}
}

// Name prefixes of the links v6bridge owns: bridges, and the host and
// container ends of endpoint veths.
const (
	BridgePrefix   = "v6b-"
	HostVethPrefix = "v6h"
	PeerVethPrefix = "v6c"
)

// BridgeSpec is a bridge as the driver wants it in the kernel.
type BridgeSpec struct {
	Name string
	MTU  int // 0: leave the kernel default
	// Gateway is the host's address on the bridge: an address of the
	// subnet with the subnet's length, or a link-local one (fe80::1/64,
	// v6bridge.gateway=link-local).
	Gateway netip.Prefix
	// Subnet is the network's subnet. With a link-local Gateway the bridge
	// holds no address of it, and it is routed to the bridge instead.
	Subnet netip.Prefix
	// Isolated sets the bridge so that its ports cannot talk to each other
	// (v6bridge.icc=false): every host veth on it gets the "isolated" flag.
	Isolated bool
}

// VethSpec is a veth pair for one endpoint. HostName stays in the host and
// is attached to Bridge; PeerName is handed to the engine, which moves it
// into the container.
type VethSpec struct {
	HostName string
	PeerName string
	Bridge   string
	MTU      int
	MAC      net.HardwareAddr // of the peer (container side); nil: kernel random
	Isolated bool
}

// MaxIfnameLen is the longest interface name the kernel takes (IFNAMSIZ-1).
const MaxIfnameLen = 15

// ValidIfname checks a Linux interface name with the kernel's rules
// (dev_valid_name) and a little more: 1 to 15 bytes, not "." or "..",
// printable ASCII without white space, '/' or ':'. Checking up front gives
// a clear error instead of the kernel's EINVAL and keeps names safe in
// sysctl paths.
func ValidIfname(name string) error {
	if name == "" || len(name) > MaxIfnameLen {
		return fmt.Errorf("interface name %q: accepted are 1 to %d bytes", name, MaxIfnameLen)
	}
	if name == "." || name == ".." {
		return fmt.Errorf("interface name %q is reserved", name)
	}
	for _, r := range name {
		if r <= ' ' || r == '/' || r == ':' || r > '~' {
			return fmt.Errorf("interface name %q has %q: accepted are letters, digits and -_. (no spaces, '/' or ':')", name, r)
		}
	}
	return nil
}

// OwnedLink is a bridge or host-side veth carrying v6bridge's name prefix.
type OwnedLink struct {
	Name   string
	Bridge bool // else a host-side veth
	// Instance and StateDir come from the link's mark: the id of the
	// instance (state directory) that made it, and where that directory
	// was. Empty: unmarked (made before marks existed, or by hand).
	Instance, StateDir string
}
