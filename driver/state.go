package driver

import (
	"net"
	"net/netip"

	"github.com/v6bridge/v6bridge/nat"
)

// Network is the persisted record of one v6bridge network.
type Network struct {
	ID        string
	Bridge    string
	Mode      nat.Mode
	Subnet    netip.Prefix
	Gateway   netip.Addr
	MTU       int
	ICC       bool
	AllowPing bool
	Allow     []nat.Port `json:",omitempty"`
	HostIPv6  netip.Addr `json:",omitzero"`
	// Modern records that the engine sent com.docker.network.enable_ipv4,
	// which only engines >= 28 do: they install the IPv6 default route from
	// GatewayIPv6. Older engines need a static ::/0 route instead.
	Modern bool
	// IPv4 records whether the engine gave the network an IPv4 pool (on old
	// engines always: v6bridge's non-routed placeholder).
	IPv4 bool
}

// Endpoint is the persisted record of one endpoint.
type Endpoint struct {
	ID        string
	NetworkID string
	Addr      netip.Prefix // IPv6 address with the subnet's length; zero if the container has IPv6 off
	MAC       string
	HostVeth  string
	PeerVeth  string
	// Set between Join and Leave.
	Sandbox string `json:",omitempty"`
	Joined  bool   `json:",omitempty"`
	// PortRequests are the ports the sandbox publishes, kept by one of its
	// endpoints (the carrier, see publish.go), and Ports the host ports
	// held for them while the sandbox has an address they can lead to.
	PortRequests []PortRequest `json:",omitempty"`
	Ports        []nat.Mapping `json:",omitempty"`
	DefaultRoute bool          `json:",omitempty"` // got the static ::/0 route (old engines)
}

func (e *Endpoint) hardwareAddr() net.HardwareAddr {
	mac, err := net.ParseMAC(e.MAC)
	if err != nil {
		return nil
	}
	return mac
}

// Store persists networks and endpoints. Put replaces an entry; Delete of a
// missing entry is success.
type Store interface {
	PutNetwork(n *Network) error
	DeleteNetwork(id string) error
	PutEndpoint(e *Endpoint) error
	DeleteEndpoint(id string) error
	Load() ([]*Network, []*Endpoint, error)
}
