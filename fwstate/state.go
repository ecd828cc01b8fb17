// Package fwstate holds the firewall's input: the desired state of the
// v6bridge networks (State, Network, Endpoint) and the change of one
// endpoint (EndpointUpdate). It is pure, so the driver describes what the
// firewall must hold without linking the kernel adapter (package nat, which
// turns a State into one nftables table).
package fwstate

import (
	"net/netip"

	"github.com/v6bridge/v6bridge/netspec"
)

// Mode is the outside connectivity of a network (netspec.Mode).
type Mode = netspec.Mode

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

// Port is a protocol and an inclusive port range (netspec.Port).
type Port = netspec.Port

// Endpoint is one container address on a network and what reaches it from
// outside: Ports are the host ports that lead to this address (DNAT of a
// host address), Open the container ports open directly on this address
// (public and routed networks only; ignored elsewhere). A container on
// several networks publishes through one of its addresses (Ports) and is
// open on all its public ones (Open): the driver decides which.
//
// Also are the addresses the same container holds on other v6bridge
// networks that are not internal: a container on two networks answers
// through its default route, so a reply from its address on network B
// may arrive on network A's bridge. They are accepted as sources on this
// endpoint's bridge; any other source outside the bridge's subnet and
// link-local is dropped, whatever its conntrack state.
type Endpoint struct {
	Addr  netip.Addr
	Ports []Mapping
	Open  []Port
	Also  []netip.Addr
}

// Mapping is one published port range: HostAddr:HostFirst-HostLast is
// forwarded to the endpoint's address, ContainerFirst onwards; an invalid
// HostAddr means every address of State.HostAddrs (netspec.Mapping).
type Mapping = netspec.Mapping

// EndpointUpdate sets one endpoint's entry: Addr on the network of Bridge
// is reached through the host ports of Ports, is open on the container
// ports of Open and its container holds the addresses Also on other
// networks from now on (see Endpoint), or, with Remove, has no entry
// at all. It is idempotent: the same update twice changes nothing the
// second time.
type EndpointUpdate struct {
	Bridge string
	Addr   netip.Addr
	Ports  []Mapping
	Open   []Port
	Also   []netip.Addr
	Remove bool
}
