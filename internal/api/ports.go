package api

import (
	"encoding/json"
	"fmt"
	"net/netip"

	"github.com/v6bridge/v6bridge/driver"
	"github.com/v6bridge/v6bridge/nat"
	"github.com/v6bridge/v6bridge/portfwd"
)

// loopbackPorts counts the host ports reqs publish on a loopback address
// (a request for any port of a range takes one).
func loopbackPorts(reqs []driver.PortRequest) int {
	n := 0
	for _, r := range reqs {
		if r.HostAddr.IsLoopback() {
			n++
		}
	}
	return n
}

// Engine option keys carrying the published ports of a container (Join and
// ProgramExternalConnectivity).
const optPortMap = "com.docker.network.portmap"

// portBinding is one entry of com.docker.network.portmap as the engine
// sends it: Proto is the IP protocol number, HostIP "" means any address,
// HostPort 0 means pick one, HostPortEnd > HostPort means pick one of that
// range.
type portBinding struct {
	Proto       uint8
	IP          string
	Port        uint16
	HostIP      string
	HostPort    uint16
	HostPortEnd uint16
}

// PortsFromWire decodes the port bindings of a Join or
// ProgramExternalConnectivity options map. Bindings to IPv4 host addresses
// are skipped and reported in skipped: v6bridge publishes on IPv6 only.
func PortsFromWire(options map[string]any) (reqs []driver.PortRequest, skipped []string, err error) {
	raw, ok := options[optPortMap]
	if !ok || raw == nil {
		return nil, nil, nil
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("option %s: %w", optPortMap, err)
	}
	var bindings []portBinding
	if err := json.Unmarshal(b, &bindings); err != nil {
		return nil, nil, fmt.Errorf("option %s: %s: accepted is a list of port bindings: %w", optPortMap, b, err)
	}
	for _, pb := range bindings {
		if pb.Proto != nat.ProtoTCP && pb.Proto != nat.ProtoUDP && pb.Proto != nat.ProtoSCTP {
			return nil, nil, fmt.Errorf("published port %d: protocol number %d: accepted are tcp, udp, sctp", pb.Port, pb.Proto)
		}
		if pb.Port == 0 {
			return nil, nil, fmt.Errorf("published port with container port 0: accepted are 1 to 65535")
		}
		r := driver.PortRequest{Proto: pb.Proto, HostFirst: pb.HostPort, HostLast: pb.HostPortEnd, ContainerPort: pb.Port}
		if r.HostLast < r.HostFirst {
			r.HostLast = r.HostFirst
		}
		switch pb.HostIP {
		case "", "::", "0.0.0.0":
		default:
			a, err := netip.ParseAddr(pb.HostIP)
			if err != nil {
				return nil, nil, fmt.Errorf("published port %s/%d: host address %q: accepted is an IPv6 address of the host", nat.ProtoName(pb.Proto), pb.Port, pb.HostIP)
			}
			if a.Is4() || a.Is4In6() {
				skipped = append(skipped, fmt.Sprintf("%s:%d:%d/%s", pb.HostIP, pb.HostPort, pb.Port, nat.ProtoName(pb.Proto)))
				continue
			}
			r.HostAddr = a.WithZone("")
		}
		reqs = append(reqs, r)
	}
	if n := loopbackPorts(reqs); n > portfwd.MaxPorts {
		return nil, nil, fmt.Errorf("option %s: %d host ports on the loopback address: accepted are at most %d per container (the plugin listens on each itself); publish a larger range on [::] or another address of the host", optPortMap, n, portfwd.MaxPorts)
	}
	return reqs, skipped, nil
}
