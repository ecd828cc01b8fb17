package ipam

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/v6bridge/v6bridge/netspec"
)

// Prefix length bounds for v6bridge subnets.
const (
	MinPrefixLen = 48
	MaxPrefixLen = 120
)

// IPAM options (--ipam-opt, compose ipam.options). The engine passes the
// network's -o options to the network driver only, so what the IPAM needs
// to know about the network comes as IPAM options.
const (
	// OptPrefixLen sets the prefix length of an automatic subnet (no
	// --subnet): /48 to /120, at least the length of the prefix it is
	// carved from. Default: PUBLIC_SUBNET_LEN or ULA_SUBNET_LEN.
	OptPrefixLen = "v6bridge.prefix_len"
	// OptMode says which part of the address plan an automatic subnet
	// comes from: public from PUBLIC_PREFIX; nat and internal (the
	// default) from this host's ULA /64. routed has no automatic subnet:
	// its subnet is the prefix the provider routes to the host, given
	// with --subnet. With --subnet the option is not needed and ignored.
	OptMode = "v6bridge.mode"
)

// optionPrefix marks the IPAM options that belong to v6bridge; other keys
// are ignored.
const optionPrefix = "v6bridge."

// acceptedOptions are the v6bridge IPAM options.
var acceptedOptions = []string{OptMode, OptPrefixLen}

// example is the subnet used in messages.
const example = "fd12:3456:789a:1::/112"

// poolOptions are the parsed v6bridge IPAM options.
type poolOptions struct {
	PrefixLen int          // 0: not given
	Mode      netspec.Mode // "" when not given
}

// parseOptions validates the v6bridge.* keys of opts; other keys are
// ignored.
func parseOptions(opts map[string]string) (poolOptions, error) {
	var po poolOptions
	keys := make([]string, 0, len(opts))
	for k := range opts {
		keys = append(keys, k)
	}
	sort.Strings(keys) // the first bad key is the same on every call
	for _, k := range keys {
		if !strings.HasPrefix(k, optionPrefix) {
			continue
		}
		v := opts[k]
		switch k {
		case OptPrefixLen:
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				return po, refuse(ErrInvalidRequest, "ipam option %s=%q is not an integer: accepted are %d to %d",
					k, v, MinPrefixLen, MaxPrefixLen)
			}
			if n < MinPrefixLen || n > MaxPrefixLen {
				return po, refuse(ErrInvalidRequest, "ipam option %s=%q is out of bounds: accepted are %d to %d",
					k, v, MinPrefixLen, MaxPrefixLen)
			}
			po.PrefixLen = n
		case OptMode:
			m, err := netspec.ParseMode(strings.TrimSpace(v))
			switch {
			case err == nil:
				po.Mode = m
			default:
				return po, refuse(ErrInvalidRequest, "ipam option %s=%q is not a mode: accepted are public (a subnet from PUBLIC_PREFIX), nat or internal (a subnet from this host's ULA /64)",
					k, v)
			}
		default:
			return po, refuse(ErrInvalidRequest, "unknown ipam option %q: accepted v6bridge options are %s",
				k, strings.Join(acceptedOptions, ", "))
		}
	}
	return po, nil
}

// parseV6Prefix parses what (a subnet or ip-range, named by flag in
// messages) as a canonical IPv6 prefix of a global unicast or unique local
// network.
func parseV6Prefix(flag, s string) (netip.Prefix, error) {
	accepted := fmt.Sprintf("accepted is an IPv6 prefix from /%d to /%d such as %s", MinPrefixLen, MaxPrefixLen, example)
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil {
		if _, aerr := netip.ParseAddr(strings.TrimSpace(s)); aerr == nil {
			return netip.Prefix{}, refuse(ErrInvalidRequest, "%s %q is an address without prefix length: %s",
				flag, s, accepted)
		}
		return netip.Prefix{}, refuse(ErrInvalidRequest, "%s %q is not a CIDR prefix: %s", flag, s, accepted)
	}
	a := p.Addr()
	switch {
	case a.Is4():
		return netip.Prefix{}, refuse(ErrInvalidRequest, "%s %q is IPv4, v6bridge is IPv6-only: %s", flag, s, accepted)
	case a.Is4In6():
		return netip.Prefix{}, refuse(ErrInvalidRequest, "%s %q is an IPv4-mapped IPv6 prefix: %s", flag, s, accepted)
	case a.IsLinkLocalUnicast():
		return netip.Prefix{}, refuse(ErrInvalidRequest, "%s %q is link-local (fe80::/10): %s", flag, s, accepted)
	case a.IsMulticast():
		return netip.Prefix{}, refuse(ErrInvalidRequest, "%s %q is multicast (ff00::/8): %s", flag, s, accepted)
	}
	if p.Bits() < MinPrefixLen || p.Bits() > MaxPrefixLen {
		return netip.Prefix{}, refuse(ErrInvalidRequest, "%s %q is a /%d: accepted are prefixes from /%d to /%d, e.g. a /112 (%s)",
			flag, s, p.Bits(), MinPrefixLen, MaxPrefixLen, example)
	}
	m := p.Masked()
	if m.Contains(netip.IPv6Unspecified()) || m.Contains(netip.IPv6Loopback()) {
		return netip.Prefix{}, refuse(ErrInvalidRequest, "%s %q contains the unspecified or loopback address: %s",
			flag, s, accepted)
	}
	if !m.Addr().IsGlobalUnicast() {
		return netip.Prefix{}, refuse(ErrInvalidRequest, "%s %q is not a unicast network: %s", flag, s, accepted)
	}
	if m != p {
		return netip.Prefix{}, refuse(ErrInvalidRequest, "%s %q has host bits set: did you mean %s?", flag, s, m)
	}
	return p, nil
}

// parseRange parses the --ip-range of a pool; "" means the whole subnet.
func parseRange(s string, subnet netip.Prefix) (netip.Prefix, error) {
	if strings.TrimSpace(s) == "" {
		return subnet, nil
	}
	r, err := parseV6Prefix("ip-range", s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if r.Bits() < subnet.Bits() || !subnet.Contains(r.Addr()) {
		return netip.Prefix{}, refuse(ErrInvalidRequest, "ip-range %q is not inside subnet %s: accepted is a prefix within the subnet",
			s, subnet)
	}
	return r, nil
}

// autoSubnet chooses where the automatic subnet of a pool requested
// without --subnet comes from: the space to carve from, the prefix length
// and a name for the space in messages. public (OptMode) takes
// PUBLIC_PREFIX (public, a func since the uplink's /64 may change; nil or
// a zero prefix when there is none); every other mode the host's ULA /64
// (ulaHost).
// v6bridge.prefix_len overrides the configured length.
func autoSubnet(opts poolOptions, public func() (netip.Prefix, error), pubLen int, ulaHost netip.Prefix, ulaLen int) (space netip.Prefix, bits int, name string, err error) {
	switch opts.Mode {
	case netspec.ModeRouted:
		return space, 0, "", refuse(ErrSubnetRequired, "a routed network needs --subnet: the prefix your provider routes to this host, e.g. --subnet 2001:db8:5678::/64; automatic subnets come from PUBLIC_PREFIX (--ipam-opt %s=public) or this host's ULA (nat, internal)",
			OptMode)
	case netspec.ModePublic:
		if public != nil {
			space, err = public()
		}
		if err != nil {
			return space, 0, "", refuse(ErrSubnetRequired, "no PUBLIC_PREFIX for an automatic public subnet (%v): set PUBLIC_PREFIX, or give --subnet, e.g. a /112 of the host's /64", err)
		}
		if !space.IsValid() {
			return space, 0, "", refuse(ErrSubnetRequired, "no PUBLIC_PREFIX is configured for automatic public subnets: set PUBLIC_PREFIX, or give --subnet, e.g. a /112 of the host's /64")
		}
		if !netspec.IsPublic(space.Addr()) {
			return space, 0, "", refuse(ErrSubnetRequired, "PUBLIC_PREFIX %s is not a global IPv6 prefix: set PUBLIC_PREFIX to the provider's prefix, e.g. 2001:db8:1234:a1::/64, or give --subnet", space)
		}
		space, bits, name = space.Masked(), pubLen, fmt.Sprintf("PUBLIC_PREFIX %s", space.Masked())
	default:
		space, bits, name = ulaHost, ulaLen, fmt.Sprintf("this host's ULA subnet %s", ulaHost)
	}
	if opts.PrefixLen != 0 {
		bits = opts.PrefixLen
	}
	if bits < space.Bits() {
		return space, 0, "", refuse(ErrInvalidRequest, "an automatic /%d does not fit in %s: accepted are %s=%d to %d, or --subnet",
			bits, name, OptPrefixLen, max(space.Bits(), MinPrefixLen), MaxPrefixLen)
	}
	return space, bits, name, nil
}

// subnetSuggestion returns a /112 inside p that contains none of avoid, for
// the message refusing p; ok is false when p is too small or none of the
// first candidates is free.
func subnetSuggestion(p netip.Prefix, avoid []netip.Addr) (netip.Prefix, bool) {
	const bits = 112
	if p.Bits() >= bits {
		return netip.Prefix{}, false
	}
	// Candidates p:1::/112, p:2::/112, ...: the 16 bits just above the
	// /112's host part count up.
	for i := 1; i <= 16; i++ {
		b := p.Addr().As16()
		b[12] |= byte(i >> 8)
		b[13] |= byte(i)
		c := netip.PrefixFrom(netip.AddrFrom16(b), bits)
		if !p.Contains(c.Addr()) {
			return netip.Prefix{}, false
		}
		free := true
		for _, a := range avoid {
			if c.Contains(a) {
				free = false
				break
			}
		}
		if free {
			return c, true
		}
	}
	return netip.Prefix{}, false
}
