package driver

import (
	"net"
	"net/netip"

	"github.com/v6bridge/v6bridge/netspec"
)

// RecordFormat is the format of the records this version writes. Records
// without one were written before formats were numbered (v6bridge 8382c76
// and older) and read as format 1. The JSON names of Network, Endpoint and
// the netspec types they hold are the format: renaming a Go field must not
// change them (driver/testdata/state-8382c76 is read by a test).
const RecordFormat = 1

// Network is the persisted record of one v6bridge network.
type Network struct {
	Format    int            `json:"Format,omitempty"`
	ID        string         `json:"ID"`
	Bridge    string         `json:"Bridge"`
	Mode      netspec.Mode   `json:"Mode"`
	Subnet    netip.Prefix   `json:"Subnet"`
	Gateway   netip.Addr     `json:"Gateway"`
	MTU       int            `json:"MTU"`
	ICC       bool           `json:"ICC"`
	AllowPing bool           `json:"AllowPing"`
	Allow     []netspec.Port `json:"Allow,omitempty"`
	HostIPv6  netip.Addr     `json:"HostIPv6,omitzero"`
	// EngineSetsGatewayRoute records that the engine installs the
	// container's IPv6 default route from GatewayIPv6: it said whether IPv4
	// is enabled, which only engines >= 28 do. Older engines need a static
	// ::/0 route instead. (Its JSON key is the older name, Modern.)
	EngineSetsGatewayRoute bool `json:"Modern"`
	// IPv4 records whether the engine gave the network an IPv4 pool (on old
	// engines always: v6bridge's non-routed placeholder).
	IPv4 bool `json:"IPv4"`
	// IPv4Pool is that pool (v6bridge's placeholder block), so a stale
	// placeholder pool can be told from a used one (UsesSubnet); zero in
	// records of older versions.
	IPv4Pool netip.Prefix `json:"IPv4Pool,omitzero"`
}

// LinkLocalGateway reports whether the network was created with
// v6bridge.gateway=link-local: its gateway is LinkLocalGateway on the
// bridge, and no address of the subnet is the host's. Records of older
// versions always hold an address of the subnet.
func (n *Network) LinkLocalGateway() bool {
	return n.Gateway.IsLinkLocalUnicast()
}

// Endpoint is the persisted record of one endpoint.
type Endpoint struct {
	Format    int          `json:"Format,omitempty"`
	ID        string       `json:"ID"`
	NetworkID string       `json:"NetworkID"`
	Addr      netip.Prefix `json:"Addr"` // IPv6 address with the subnet's length; zero if the container has IPv6 off
	MAC       string       `json:"MAC"`
	HostVeth  string       `json:"HostVeth"`
	PeerVeth  string       `json:"PeerVeth"`
	// Set between Join and Leave.
	Sandbox      string `json:"Sandbox,omitempty"`
	Joined       bool   `json:"Joined,omitempty"`
	DefaultRoute bool   `json:"DefaultRoute,omitempty"` // got the static ::/0 route (old engines)
	GatewayRoute bool   `json:"GatewayRoute,omitempty"` // got the connected route to the link-local gateway
	// OldPortRequests and OldPorts are what records of v6bridge 4cdef39
	// and older kept of the sandbox's published ports on one of its
	// endpoints: the requests and the host ports held for them (8382c76
	// and older: the host ports only). Only read: New moves them into the
	// sandbox's record and clears them, so they are never written again.
	OldPortRequests []PortRequest     `json:"PortRequests,omitempty"`
	OldPorts        []netspec.Mapping `json:"Ports,omitempty"`
}

// Sandbox is the persisted record of a sandbox (a container's network
// namespace) that publishes ports. It lives from the first port requests
// the engine sends for the sandbox until its last endpoint leaves,
// whichever of its endpoints come and go in between (see publish.go).
// JSON keys: "Key" the engine's sandbox key (a netns path, as Endpoint's
// "Sandbox"), "PortRequests" the ports the user asked to publish,
// "Ports" the host ports held for them while the sandbox has an address
// they can lead to (absent when released): the keys endpoint records of
// older versions used for the same lists.
type Sandbox struct {
	Format       int               `json:"Format,omitempty"`
	Key          string            `json:"Key"`
	PortRequests []PortRequest     `json:"PortRequests,omitempty"`
	Ports        []netspec.Mapping `json:"Ports,omitempty"`
}

func (e *Endpoint) hardwareAddr() net.HardwareAddr {
	mac, err := net.ParseMAC(e.MAC)
	if err != nil {
		return nil
	}
	return mac
}

// Store persists networks, endpoints and sandboxes (by key). Put replaces
// an entry; Delete of a missing entry is success.
type Store interface {
	PutNetwork(n *Network) error
	DeleteNetwork(id string) error
	PutEndpoint(e *Endpoint) error
	DeleteEndpoint(id string) error
	PutSandbox(s *Sandbox) error
	DeleteSandbox(key string) error
	Load() ([]*Network, []*Endpoint, error)
	LoadSandboxes() ([]*Sandbox, error)
}
