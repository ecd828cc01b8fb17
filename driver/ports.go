package driver

import (
	"encoding/json"
	"fmt"
	"net/netip"

	"github.com/v6bridge/v6bridge/nat"
)

// Engine option keys carrying the published ports of a container.
const (
	optPortMap = "com.docker.network.portmap"
)

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

// PortRequest is a port the user asked to publish, before a host port is
// picked.
type PortRequest struct {
	Proto         uint8
	HostAddr      netip.Addr // zero: every host address
	HostFirst     uint16     // 0: pick any free port
	HostLast      uint16     // a range to pick one port from
	ContainerPort uint16
}

// ParsePortMap decodes the port bindings of a Join or
// ProgramExternalConnectivity options map. Bindings to IPv4 host addresses
// are skipped and reported in skipped: v6bridge publishes on IPv6 only.
func ParsePortMap(options map[string]any) (reqs []PortRequest, skipped []string, err error) {
	raw, ok := options[optPortMap]
	if !ok || raw == nil {
		return nil, nil, nil
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("port bindings: %w", err)
	}
	var bindings []portBinding
	if err := json.Unmarshal(b, &bindings); err != nil {
		return nil, nil, fmt.Errorf("port bindings %s: %w", b, err)
	}
	for _, pb := range bindings {
		if pb.Proto != nat.ProtoTCP && pb.Proto != nat.ProtoUDP && pb.Proto != nat.ProtoSCTP {
			return nil, nil, fmt.Errorf("published port %d: protocol number %d: accepted are tcp, udp, sctp", pb.Port, pb.Proto)
		}
		if pb.Port == 0 {
			return nil, nil, fmt.Errorf("published port with container port 0: accepted are 1 to 65535")
		}
		r := PortRequest{Proto: pb.Proto, HostFirst: pb.HostPort, HostLast: pb.HostPortEnd, ContainerPort: pb.Port}
		if r.HostLast < r.HostFirst {
			r.HostLast = r.HostFirst
		}
		switch pb.HostIP {
		case "", "::", "0.0.0.0":
		default:
			a, err := netip.ParseAddr(pb.HostIP)
			if err != nil {
				return nil, nil, fmt.Errorf("published port %s/%d: host address %q: accepted is an IPv6 address of the host", ProtoName(pb.Proto), pb.Port, pb.HostIP)
			}
			if a.Is4() || a.Is4In6() {
				skipped = append(skipped, fmt.Sprintf("%s:%d:%d/%s", pb.HostIP, pb.HostPort, pb.Port, ProtoName(pb.Proto)))
				continue
			}
			r.HostAddr = a.WithZone("")
		}
		reqs = append(reqs, r)
	}
	return reqs, skipped, nil
}

// ephemeralFirst and ephemeralLast bound the host ports v6bridge picks for
// -p CONTAINERPORT and -P, as Docker does.
const (
	ephemeralFirst = 49153
	ephemeralLast  = 65535
)

// AssignHostPorts turns requests into mappings, picking host ports for
// requests without one (or with a range) that no mapping in used takes for
// the same protocol and host address. used maps taken ports.
func AssignHostPorts(reqs []PortRequest, taken func(proto uint8, addr netip.Addr, port uint16) bool) ([]nat.Mapping, error) {
	var out []nat.Mapping
	mine := map[[3]uint64]bool{}
	key := func(p uint8, a netip.Addr, port uint16) [3]uint64 {
		b := a.As16()
		if !a.IsValid() {
			b = [16]byte{}
		}
		var hi, lo uint64
		for i := 0; i < 8; i++ {
			hi = hi<<8 | uint64(b[i])
			lo = lo<<8 | uint64(b[8+i])
		}
		return [3]uint64{hi, lo, uint64(p)<<16 | uint64(port)}
	}
	free := func(p uint8, a netip.Addr, port uint16) bool {
		return !mine[key(p, a, port)] && !taken(p, a, port)
	}
	for _, r := range reqs {
		first, last := r.HostFirst, r.HostLast
		if first == 0 {
			first, last = ephemeralFirst, ephemeralLast
		}
		var port uint16
		for p := uint32(first); p <= uint32(last); p++ {
			if free(r.Proto, r.HostAddr, uint16(p)) {
				port = uint16(p)
				break
			}
		}
		if port == 0 {
			where := "any host address"
			if r.HostAddr.IsValid() {
				where = r.HostAddr.String()
			}
			if first == last {
				return nil, fmt.Errorf("host port %s/%d on %s is already published by another container: pick another host port", ProtoName(r.Proto), first, where)
			}
			return nil, fmt.Errorf("no free host port %s/%d-%d on %s: every one is published by another container", ProtoName(r.Proto), first, last, where)
		}
		mine[key(r.Proto, r.HostAddr, port)] = true
		out = append(out, nat.Mapping{Proto: r.Proto, HostAddr: r.HostAddr, HostFirst: port, HostLast: port, ContainerFirst: r.ContainerPort})
	}
	return out, nil
}
