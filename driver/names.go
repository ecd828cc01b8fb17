package driver

import (
	"crypto/sha256"
	"net"

	"github.com/v6bridge/v6bridge/netspec"
)

// BridgeName derives the default bridge name of a network from its id:
// "v6b-" and the first 11 characters of the id (15 bytes, the kernel's
// limit), so a leftover after a crash is recognisable.
func BridgeName(networkID string) string {
	return netspec.BridgePrefix + short(networkID, 11)
}

// VethNames derives the host-side and container-side veth names of an
// endpoint from its id.
func VethNames(endpointID string) (host, peer string) {
	s := short(endpointID, 12)
	return netspec.HostVethPrefix + s, netspec.PeerVethPrefix + s
}

func short(id string, n int) string {
	if len(id) < n {
		return id
	}
	return id[:n]
}

// EndpointMAC derives a stable, locally administered unicast MAC for an
// endpoint from its id, so a re-created endpoint keeps its MAC and no two
// endpoints of a host share one in practice.
func EndpointMAC(endpointID string) net.HardwareAddr {
	h := sha256.Sum256([]byte(endpointID))
	mac := net.HardwareAddr(h[:6])
	mac[0] = (mac[0] | 0x02) &^ 0x01
	return mac
}
