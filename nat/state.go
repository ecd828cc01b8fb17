// Package nat turns the desired network state of v6bridge into one nftables
// table (NAT66, published ports, the firewall) and applies it atomically.
//
// The files without a build tag are pure: they build the ruleset from a State
// and render it as nft text for golden tests. The _linux.go files talk to the
// kernel through github.com/google/nftables.
package nat

import "net/netip"

// Mode is the outside connectivity of a network.
type Mode string

// Network modes, see driver options "v6bridge.mode".
const (
	ModeNAT      Mode = "nat"      // ULA: masquerade outbound, only published ports inbound
	ModePublic   Mode = "public"   // global from the host's on-link /64: firewalled, NDP answered
	ModeRouted   Mode = "routed"   // global routed to the host: firewalled, no NDP
	ModeInternal Mode = "internal" // no traffic in or out of the host except to the gateway
)

// Protocol numbers as the engine sends them in port bindings.
const (
	ProtoTCP  uint8 = 6
	ProtoUDP  uint8 = 17
	ProtoSCTP uint8 = 132
)

// State is everything the ruleset is derived from. The zero value yields an
// empty table.
type State struct {
	// Uplinks are the host's outside interfaces (e.g. "eth0").
	Uplinks []string
	// HostAddrs are the host's global IPv6 addresses on the uplinks: the
	// addresses a published port with no host address listens on, and the
	// masquerade source.
	HostAddrs []netip.Addr
	// Networks are the v6bridge networks, sorted by Bridge.
	Networks []Network
	// FastPath adds a flowtable over the uplinks and the bridges of nat,
	// public and routed networks, to which established TCP and UDP
	// connections are handed once the forward chain accepted them (see
	// docs/fastpath.md). Table sets it from TableConfig.FastPath when the
	// kernel supports flowtables.
	FastPath bool
}

// Network is one v6bridge network as the firewall sees it.
type Network struct {
	Bridge    string
	Subnet    netip.Prefix
	Gateway   netip.Addr
	Mode      Mode
	ICC       bool       // containers on this network may talk to each other
	AllowPing bool       // ICMPv6 echo request inbound from outside
	Allow     []Port     // extra inbound ports open on every endpoint (public/routed)
	SNAT      netip.Addr // if valid: SNAT to this address instead of masquerade (nat mode)
	Endpoints []Endpoint
}

// Port is a protocol and an inclusive port range.
type Port struct {
	Proto uint8
	First uint16
	Last  uint16
}

// Endpoint is one container address on a network and what it publishes.
type Endpoint struct {
	Addr  netip.Addr
	Ports []Mapping
}

// Mapping is one published port range: HostAddr:HostFirst-HostLast is
// forwarded to the endpoint's address, ContainerFirst onwards.
type Mapping struct {
	Proto          uint8
	HostAddr       netip.Addr // invalid (zero) means every address of State.HostAddrs
	HostFirst      uint16
	HostLast       uint16
	ContainerFirst uint16
}
