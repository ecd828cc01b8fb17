package driver

import (
	"net"
	"net/netip"

	"github.com/v6bridge/v6bridge/nat"
)

// BridgeSpec is a bridge as the driver wants it in the kernel.
type BridgeSpec struct {
	Name    string
	MTU     int          // 0: leave the kernel default
	Gateway netip.Prefix // address on the bridge, with the subnet's length
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

// OwnedLink is a bridge or host-side veth carrying v6bridge's name prefix.
type OwnedLink struct {
	Name   string
	Bridge bool // else a host-side veth
	// Instance and StateDir come from the link's mark: the id of the
	// instance (state directory) that made it, and where that directory
	// was. Empty: unmarked (made before marks existed, or by hand).
	Instance, StateDir string
}

// Links is what the driver needs from the kernel's links. Every method is
// idempotent: Ensure* creates or repairs, Delete* of a missing link is
// success.
type Links interface {
	EnsureBridge(spec BridgeSpec) error
	DeleteBridge(name string) error
	EnsureVeth(spec VethSpec) error
	DeleteVeth(hostName string) error
	// LinkExists reports whether an interface of that name exists.
	LinkExists(name string) (bool, error)
	// OwnedLinks lists the interfaces whose names carry v6bridge's prefixes
	// (bridges and host-side veths) with their marks, for orphan cleanup.
	OwnedLinks() ([]OwnedLink, error)
	// PrepareHost sets what the data path needs host wide (IPv6 forwarding,
	// accept_ra=2 on the uplinks first), returning what it changed.
	PrepareHost(uplinks []string) (changed []string, err error)
}

// Firewall applies the desired nftables state atomically: Apply the whole
// state, UpdateEndpoints the entries of a few endpoints on top of the last
// Apply (nat.EndpointUpdate), at the cost of what those endpoints change.
type Firewall interface {
	Apply(s nat.State) error
	UpdateEndpoints(us []nat.EndpointUpdate) error
}

// Neighbors answers NDP on the uplinks for the given addresses (public
// networks' endpoints) and stops answering for every other address. Ranges
// are whole subnets to answer for (NDP_RANGE=true); usually empty.
// UpdateTargets adds and removes single addresses after a SetTargets, at
// the cost of what changes.
type Neighbors interface {
	SetTargets(addrs []netip.Addr, ranges []netip.Prefix) error
	UpdateTargets(add, remove []netip.Addr) error
}
