package nat

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	"github.com/v6bridge/v6bridge/fwstate"
)

// maxElements bounds the number of set and map elements a State may expand
// to (a range that shifts the port becomes one dnat element per port), so a
// mistaken range cannot make a batch the kernel refuses or that takes
// seconds to send.
const maxElements = 1 << 18

// maxIfnameLen is the longest interface name the kernel accepts (IFNAMSIZ-1).
const maxIfnameLen = 15

// ErrPortConflict is fwstate.ErrPortConflict: CheckConflicts, Build and
// Model.Update wrap it when two mappings claim the same host address,
// protocol and port.
var ErrPortConflict = fwstate.ErrPortConflict

// ConflictError is fwstate.ConflictError: which host port two endpoints
// both publish.
type ConflictError = fwstate.ConflictError

type ownedMapping struct {
	owner netip.Addr
	m     Mapping
}

// CheckConflicts reports the first host port published twice: the same
// protocol and overlapping host port ranges on the same host address (a
// mapping without host address, meaning every host address, overlaps all).
// The endpoint later in State order is named as the one asking again. The
// same mapping repeated by one endpoint is not a conflict. Mappings of
// internal networks are ignored, as Build ignores them.
func CheckConflicts(s State) error {
	var all []ownedMapping
	for _, n := range s.Networks {
		if n.Mode == ModeInternal {
			continue
		}
		for _, e := range n.Endpoints {
			for _, m := range e.Ports {
				all = append(all, ownedMapping{owner: e.Addr, m: m})
			}
		}
	}
	if !mayOverlap(all) {
		return nil
	}
	for j := range all {
		for i := 0; i < j; i++ {
			a, b := all[i], all[j]
			if a.owner == b.owner && a.m == b.m {
				continue
			}
			if err := fwstate.Conflict(a.owner, a.m, b.owner, b.m); err != nil {
				return err
			}
		}
	}
	return nil
}

// mayOverlap reports whether two mappings of one protocol have overlapping
// host port ranges, whatever their host addresses and owners: when none do
// (the usual case, one host port per published port) there is no conflict,
// found in O(n log n) instead of comparing every pair.
func mayOverlap(all []ownedMapping) bool {
	ms := make([]Mapping, len(all))
	for i, o := range all {
		ms[i] = o.m
	}
	slices.SortFunc(ms, func(a, b Mapping) int {
		return cmp.Or(cmp.Compare(a.Proto, b.Proto), cmp.Compare(a.HostFirst, b.HostFirst))
	})
	// Sorted by start, a range overlaps an earlier one exactly when it
	// starts at or before the highest end seen so far for its protocol.
	var last uint16
	for i, m := range ms {
		if i > 0 && m.Proto == ms[i-1].Proto && m.HostFirst <= last {
			return true
		}
		if i == 0 || m.Proto != ms[i-1].Proto {
			last = m.HostLast
		} else {
			last = max(last, m.HostLast)
		}
	}
	return false
}

func validProto(p uint8) bool {
	return p == ProtoTCP || p == ProtoUDP || p == ProtoSCTP
}

func isIPv6(a netip.Addr) bool { return a.IsValid() && a.Is6() && !a.Is4In6() }

// Validate checks a State for what Build needs: known modes, unique bridge
// names the kernel accepts, IPv6 subnets that do not overlap, endpoint
// addresses inside their subnet, protocols tcp/udp/sctp, port ranges with
// first <= last inside 1-65535, and no host port published twice.
func Validate(s State) error {
	for _, a := range s.HostAddrs {
		if !isIPv6(a) {
			return fmt.Errorf("host address %s: accepted is an IPv6 address", a)
		}
	}
	for _, u := range s.Uplinks {
		if u == "" || len(u) > maxIfnameLen {
			return fmt.Errorf("uplink %q: accepted are interface names of 1 to %d bytes", u, maxIfnameLen)
		}
	}
	bridges := map[string]bool{}
	addrs := map[netip.Addr]string{}
	for i, n := range s.Networks {
		if err := validateNetwork(n); err != nil {
			return fmt.Errorf("network %q: %w", n.Bridge, err)
		}
		if bridges[n.Bridge] {
			return fmt.Errorf("network %q: bridge name used twice", n.Bridge)
		}
		bridges[n.Bridge] = true
		// An assertion, not a decision: ipam refuses overlapping subnets
		// (and the driver those of networks another IPAM driver gave), so
		// an overlap here is a bug upstream; it stops the State before the
		// ruleset gives one address two networks.
		for _, o := range s.Networks[:i] {
			if o.Subnet.Overlaps(n.Subnet) {
				return fmt.Errorf("network %q: subnet %s overlaps %s of network %q: internal error, the networks' subnets were accepted overlapping", n.Bridge, n.Subnet, o.Subnet, o.Bridge)
			}
		}
		also := map[netip.Addr]netip.Addr{}
		for _, e := range n.Endpoints {
			if err := validateAlso(s.Networks, n, e); err != nil {
				return fmt.Errorf("network %q: %w", n.Bridge, err)
			}
			for _, o := range e.Also {
				if b, ok := also[o]; ok && b != e.Addr {
					return fmt.Errorf("network %q: %w", n.Bridge, alsoTwiceError(e.Addr, o, b))
				}
				also[o] = e.Addr
			}
			if b, ok := addrs[e.Addr]; ok {
				return fmt.Errorf("network %q: endpoint %s also on network %q", n.Bridge, e.Addr, b)
			}
			addrs[e.Addr] = n.Bridge
		}
	}
	if err := CheckConflicts(s); err != nil {
		return err
	}
	if c := countElements(s); c > maxElements {
		return fmt.Errorf("the published and allowed port ranges expand to %d set elements: accepted are at most %d", c, maxElements)
	}
	return nil
}

func validateNetwork(n Network) error {
	if n.Bridge == "" || len(n.Bridge) > maxIfnameLen {
		return fmt.Errorf("bridge name %q: accepted are 1 to %d bytes", n.Bridge, maxIfnameLen)
	}
	switch n.Mode {
	case ModeNAT, ModePublic, ModeRouted, ModeInternal:
	default:
		return fmt.Errorf("mode %q: accepted are nat, public, routed, internal", n.Mode)
	}
	if !n.Subnet.IsValid() || !isIPv6(n.Subnet.Addr()) || n.Subnet.Masked() != n.Subnet {
		return fmt.Errorf("subnet %s: accepted is an IPv6 prefix with no host bits set", n.Subnet)
	}
	if n.Subnet.Addr().IsMulticast() || n.Subnet.Bits() < 8 {
		return fmt.Errorf("subnet %s: accepted is a unicast prefix of length 8 or more", n.Subnet)
	}
	if n.Gateway.IsValid() && !n.Subnet.Contains(n.Gateway) {
		return fmt.Errorf("gateway %s: not in subnet %s", n.Gateway, n.Subnet)
	}
	if n.Mode == ModeInternal && !n.Gateway.IsValid() {
		return fmt.Errorf("internal network without gateway address")
	}
	if n.SNAT.IsValid() {
		if n.Mode != ModeNAT {
			return fmt.Errorf("snat address %s: accepted only in mode nat, not %s", n.SNAT, n.Mode)
		}
		if !isIPv6(n.SNAT) {
			return fmt.Errorf("snat address %s: accepted is an IPv6 address", n.SNAT)
		}
	}
	for _, p := range n.Allow {
		if !validProto(p.Proto) {
			return fmt.Errorf("allowed port: protocol %d: accepted are tcp, udp, sctp", p.Proto)
		}
		if p.First == 0 || p.First > p.Last {
			return fmt.Errorf("allowed port %s/%d-%d: accepted is a range first-last within 1-65535", ProtoName(p.Proto), p.First, p.Last)
		}
	}
	for _, e := range n.Endpoints {
		if err := validateEndpoint(n, e); err != nil {
			return err
		}
	}
	return nil
}

// validateEndpoint checks one endpoint of network n: its address in the
// subnet, its mappings and open ports well formed.
func validateEndpoint(n Network, e Endpoint) error {
	if !isIPv6(e.Addr) || !n.Subnet.Contains(e.Addr) {
		return fmt.Errorf("endpoint address %s: accepted is an address in %s", e.Addr, n.Subnet)
	}
	for _, m := range e.Ports {
		if err := validateMapping(m); err != nil {
			return fmt.Errorf("endpoint %s: %w", e.Addr, err)
		}
	}
	for _, p := range e.Open {
		if !validProto(p.Proto) || p.First == 0 || p.First > p.Last {
			return fmt.Errorf("endpoint %s: open port %s/%d-%d: accepted is tcp, udp or sctp and a range first-last within 1-65535", e.Addr, ProtoName(p.Proto), p.First, p.Last)
		}
	}
	return nil
}

// validateAlso checks the other addresses of endpoint e of network n: each
// in the subnet of another network of nets that is not internal (an
// internal network's address must not leave through another bridge).
func validateAlso(nets []Network, n Network, e Endpoint) error {
	for _, a := range e.Also {
		i := slices.IndexFunc(nets, func(o Network) bool {
			return o.Bridge != n.Bridge && o.Mode != ModeInternal && o.Subnet.Contains(a)
		})
		if !isIPv6(a) || i < 0 {
			return fmt.Errorf("endpoint %s: address %s on another network: accepted is an address in the subnet of another network that is not internal", e.Addr, a)
		}
	}
	return nil
}

// alsoTwiceError says that two endpoints of one network claim the same
// address on another network: an address is one container's.
func alsoTwiceError(e, also, owner netip.Addr) error {
	return fmt.Errorf("endpoint %s: address %s on another network is already the container of endpoint %s's", e, also, owner)
}

func validateMapping(m Mapping) error {
	if !validProto(m.Proto) {
		return fmt.Errorf("published port: protocol %d: accepted are tcp, udp, sctp", m.Proto)
	}
	name := fmt.Sprintf("published port %s/%d-%d:%d", ProtoName(m.Proto), m.HostFirst, m.HostLast, m.ContainerFirst)
	if m.HostFirst == 0 || m.HostFirst > m.HostLast {
		return fmt.Errorf("%s: host ports: accepted is a range first-last within 1-65535", name)
	}
	if m.ContainerFirst == 0 || int(m.ContainerFirst)+int(m.HostLast-m.HostFirst) > 65535 {
		return fmt.Errorf("%s: container ports: accepted is a first port such that the range ends at or below 65535", name)
	}
	if m.HostAddr.IsValid() && !isIPv6(m.HostAddr) {
		return fmt.Errorf("%s: host address %s: accepted is an IPv6 address", name, m.HostAddr)
	}
	return nil
}

// countElements bounds the elements the port sets and maps get: a port
// range is one element of the interval sets, and one dnat_range entry per
// host address when it keeps the port; only a range that shifts the port
// costs a dnat entry per port.
func countElements(s State) int {
	c := 0
	for _, n := range s.Networks {
		if n.Mode == ModeInternal {
			continue
		}
		c += len(n.Allow)
		for _, e := range n.Endpoints {
			c += len(e.Open) + len(e.Also)
			for _, m := range e.Ports {
				addrs := 1
				if !m.HostAddr.IsValid() {
					addrs = max(len(s.HostAddrs), 1)
				}
				per := 1
				if m.HostFirst != m.ContainerFirst {
					per = int(m.HostLast-m.HostFirst) + 1
				}
				c += 1 + per*addrs // published, plus dnat or dnat_range per host address
			}
		}
	}
	return c
}
