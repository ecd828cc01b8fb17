package driver

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/v6bridge/v6bridge/netspec"
)

// Network option keys (docker network create -o KEY=VALUE, compose
// driver_opts).
const (
	OptMode       = "v6bridge.mode"
	OptBridgeName = "v6bridge.bridge_name"
	OptMTU        = "v6bridge.mtu"
	OptICC        = "v6bridge.icc"
	OptAllowPing  = "v6bridge.allow_ping"
	OptAllow      = "v6bridge.allow"
	OptHostIPv6   = "v6bridge.host_ipv6"
	OptGateway    = "v6bridge.gateway"
)

var acceptedOpts = []string{OptAllow, OptAllowPing, OptBridgeName, OptGateway, OptHostIPv6, OptICC, OptMode, OptMTU}

// Values of OptGateway: the gateway is the subnet's first address (the
// default), or a link-local address on the bridge (LinkLocalGateway for
// the first such network), so no address of the subnet is spent on it
// (engines >= 28 only).
const (
	GatewaySubnet    = "subnet"
	GatewayLinkLocal = "link-local"
)

// LinkLocalGateway is the gateway of the first network created with
// v6bridge.gateway=link-local: an address of its bridge, and the
// containers' default router. Further such networks take the next free
// address (fe80::2, fe80::3, ...): each bridge's gateway is its own, see
// Driver.linkLocalGateway.
var LinkLocalGateway = netip.MustParseAddr("fe80::1")

// NetworkOptions are the validated driver options of one network.
type NetworkOptions struct {
	Mode       netspec.Mode // "" until defaulted from the subnet
	BridgeName string       // "" means derived from the network id
	MTU        int          // 0 means the uplink's MTU
	ICC        bool
	AllowPing  bool
	Allow      []netspec.Port
	HostIPv6   netip.Addr // SNAT source for nat mode; zero means masquerade
	// LinkLocal is v6bridge.gateway=link-local: the gateway is
	// LinkLocalGateway, not an address of the subnet.
	LinkLocal bool
}

// ParseNetworkOptions validates the generic options of a network. internal
// is Docker's --internal flag. Keys outside the v6bridge namespace are
// ignored (internal/api turns Docker's MTU and host_ipv6 keys into
// v6bridge's).
func ParseNetworkOptions(generic map[string]string, internal bool) (NetworkOptions, error) {
	o := NetworkOptions{ICC: true, AllowPing: true}
	keys := make([]string, 0, len(generic))
	for k := range generic {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := strings.TrimSpace(generic[k])
		var err error
		switch k {
		case OptMode:
			o.Mode, err = netspec.ParseMode(v)
		case OptBridgeName:
			err = netspec.ValidIfname(v)
			o.BridgeName = v
		case OptMTU:
			o.MTU, err = parseMTU(v)
		case OptICC:
			o.ICC, err = parseBool(v)
		case OptAllowPing:
			o.AllowPing, err = parseBool(v)
		case OptAllow:
			o.Allow, err = ParsePorts(v)
		case OptHostIPv6:
			o.HostIPv6, err = parseHostIPv6(v)
		case OptGateway:
			o.LinkLocal, err = parseGateway(v)
		default:
			if strings.HasPrefix(k, "v6bridge.") {
				return o, fmt.Errorf("unknown network option %q: accepted options are %s", k, strings.Join(acceptedOpts, ", "))
			}
			continue
		}
		if err != nil {
			return o, fmt.Errorf("network option %s=%q: %w", k, generic[k], err)
		}
	}
	if internal {
		if o.Mode != "" && o.Mode != netspec.ModeInternal {
			return o, fmt.Errorf("network option %s=%s conflicts with --internal: drop one of them (--internal means %s=internal)", OptMode, o.Mode, OptMode)
		}
		o.Mode = netspec.ModeInternal
	}
	if o.HostIPv6.IsValid() && o.Mode != "" && o.Mode != netspec.ModeNAT {
		return o, fmt.Errorf("network option %s applies only to %s=nat, not %s", OptHostIPv6, OptMode, o.Mode)
	}
	if len(o.Allow) > 0 && (o.Mode == netspec.ModeNAT || o.Mode == netspec.ModeInternal) {
		return o, fmt.Errorf("network option %s applies only to public and routed networks, not %s=%s (publish ports with -p instead)", OptAllow, OptMode, o.Mode)
	}
	if err := checkLinkLocal(o.LinkLocal, o.Mode); err != nil {
		return o, err
	}
	return o, nil
}

// checkLinkLocal refuses a link-local gateway on a network of mode (""
// until known) other than public or routed: a nat network has addresses to
// spare, an internal one no default route.
func checkLinkLocal(linkLocal bool, mode netspec.Mode) error {
	if linkLocal && mode != "" && mode != netspec.ModePublic && mode != netspec.ModeRouted {
		return fmt.Errorf("network option %s=%s applies only to public and routed networks, not %s=%s: drop it (the gateway is then the subnet's first address)",
			OptGateway, GatewayLinkLocal, OptMode, mode)
	}
	return nil
}

func parseGateway(v string) (bool, error) {
	switch strings.ToLower(v) {
	case GatewaySubnet:
		return false, nil
	case GatewayLinkLocal:
		return true, nil
	}
	return false, fmt.Errorf("accepted are %s (the default: the subnet's first address) and %s (%s or the next free link-local address on the bridge, Docker >= 28)",
		GatewaySubnet, GatewayLinkLocal, LinkLocalGateway)
}

// DefaultMode picks the mode of a network whose options name none: ULA
// subnets get nat, subnets inside one of the public prefixes get public,
// any other global subnet routed.
func DefaultMode(subnet netip.Prefix, public []netip.Prefix) netspec.Mode {
	if netspec.IsULA(subnet.Addr()) {
		return netspec.ModeNAT
	}
	for _, p := range public {
		if p.Bits() <= subnet.Bits() && p.Contains(subnet.Addr()) {
			return netspec.ModePublic
		}
	}
	return netspec.ModeRouted
}

func parseBool(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "true", "1", "yes", "on":
		return true, nil
	case "false", "0", "no", "off":
		return false, nil
	}
	return false, fmt.Errorf("not a boolean: accepted are true or false")
}

func parseMTU(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1280 || n > 65535 {
		return 0, fmt.Errorf("not an IPv6 MTU: accepted is a number from 1280 to 65535")
	}
	return n, nil
}

func parseHostIPv6(v string) (netip.Addr, error) {
	a, err := netip.ParseAddr(v)
	if err != nil || !a.Is6() || a.Is4In6() || a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("not an IPv6 address: accepted is one of the host's global IPv6 addresses, e.g. 2001:db8:1234:a1::1")
	}
	if !a.IsGlobalUnicast() {
		return netip.Addr{}, fmt.Errorf("%s is not a global unicast address: accepted is one of the host's global IPv6 addresses", a)
	}
	return a, nil
}

// ParsePorts parses a list like "tcp/80,tcp/443,udp/51820,tcp/8000-8010".
func ParsePorts(v string) ([]netspec.Port, error) {
	var out []netspec.Port
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		proto, rng, ok := strings.Cut(f, "/")
		if !ok {
			return nil, fmt.Errorf("port %q has no protocol: accepted is PROTO/PORT or PROTO/FIRST-LAST with PROTO tcp, udp or sctp, e.g. tcp/80,udp/51820", f)
		}
		p, err := ProtoNumber(proto)
		if err != nil {
			return nil, fmt.Errorf("port %q: %w", f, err)
		}
		first, last, err := parsePortRange(rng)
		if err != nil {
			return nil, fmt.Errorf("port %q: %w", f, err)
		}
		out = append(out, netspec.Port{Proto: p, First: first, Last: last})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("empty port list: accepted is e.g. tcp/80,tcp/443,udp/51820")
	}
	return out, nil
}

func parsePortRange(s string) (uint16, uint16, error) {
	a, b, isRange := strings.Cut(s, "-")
	first, err := parsePort(a)
	if err != nil {
		return 0, 0, err
	}
	last := first
	if isRange {
		if last, err = parsePort(b); err != nil {
			return 0, 0, err
		}
		if last < first {
			return 0, 0, fmt.Errorf("range %s ends before it starts", s)
		}
	}
	return first, last, nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("%q is not a port: accepted is 1 to 65535", s)
	}
	return uint16(n), nil
}

// ProtoNumber maps a protocol name to its IP protocol number.
func ProtoNumber(name string) (uint8, error) {
	switch strings.ToLower(name) {
	case "tcp":
		return netspec.ProtoTCP, nil
	case "udp":
		return netspec.ProtoUDP, nil
	case "sctp":
		return netspec.ProtoSCTP, nil
	}
	return 0, fmt.Errorf("protocol %q: accepted are tcp, udp, sctp", name)
}
