package link

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/v6bridge/v6bridge/netspec"
)

// Defaults of Config.
const (
	DefaultProcSys      = "/proc/sys"
	DefaultBridgePrefix = netspec.BridgePrefix
	DefaultVethPrefix   = netspec.HostVethPrefix
)

// ErrNoDefaultRoute is returned by DefaultRouteUplink when the namespace
// has no IPv6 default route.
var ErrNoDefaultRoute = errors.New("no IPv6 default route")

// validName reports whether name is usable as an interface name
// (netspec.ValidIfname): checking up front gives a clear error instead of
// the kernel's EINVAL and keeps names safe to use in sysctl paths.
func validName(name string) error { return netspec.ValidIfname(name) }

// sysctlPath is the file of a sysctl key given as path elements, e.g.
// ("net", "ipv6", "conf", "eth0.100", "accept_ra"). Interface names may
// contain dots, so keys are never split on '.'.
func sysctlPath(procSys string, key ...string) string {
	return procSys + "/" + strings.Join(key, "/")
}

// sysctlName is the human form of a key for logs and reports, in sysctl(8)
// style: "net.ipv6.conf.eth0.accept_ra".
func sysctlName(key ...string) string {
	return strings.Join(key, ".")
}

// change is the report line for a sysctl that PrepareHost changed.
func change(name, old, new string) string {
	return fmt.Sprintf("%s: %s -> %s", name, old, new)
}

// linkKind is what OwnedLinks and HostAddrs need to know of a link.
type linkKind struct {
	Name string
	Type string // netlink type: "bridge", "veth", "dummy", ...
}

// ownedKind says whether a link is one of v6bridge's bridges or host-side
// veths: the name carries the prefix and the type matches. A "v6b-x" dummy
// is not ours, whatever its name.
func ownedKind(l linkKind, bridgePrefix, vethPrefix string) (bridge, veth bool) {
	bridge = l.Type == "bridge" && strings.HasPrefix(l.Name, bridgePrefix)
	veth = l.Type == "veth" && strings.HasPrefix(l.Name, vethPrefix)
	return bridge, veth
}

// hostAddr reports whether a is an address the host can be reached at from
// elsewhere: global unicast IPv6, which includes ULA (fc00::/7) and
// excludes link-local, loopback, multicast and IPv4-mapped addresses.
func hostAddr(a netip.Addr) bool {
	return a.Is6() && !a.Is4In6() && a.IsGlobalUnicast()
}

// onLinkPrefixes returns the subnets that the addresses (with their
// prefix lengths) are on, masked, deduplicated and sorted. Only global
// unicast IPv6 addresses count, and /128s are skipped: they name a host,
// not a link.
func onLinkPrefixes(addrs []netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range addrs {
		if !hostAddr(p.Addr()) || p.Bits() < 0 || p.Bits() >= 128 {
			continue
		}
		out = append(out, p.Masked())
	}
	slices.SortFunc(out, comparePrefix)
	return slices.Compact(out)
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return cmp.Compare(a.Bits(), b.Bits())
}

// route is the part of an IPv6 route that picking the default one needs.
type route struct {
	Dst      netip.Prefix // invalid (zero) also means the default route
	Metric   int
	LinkName string // outgoing interface; "" when unknown
}

// defaultUplink picks the interface of the default route (::/0) with the
// lowest metric, the one the kernel uses. Ties go to the first listed.
func defaultUplink(routes []route) (string, error) {
	best := -1
	for i, r := range routes {
		if r.Dst.IsValid() && r.Dst.Bits() != 0 {
			continue
		}
		if r.LinkName == "" {
			continue
		}
		if best < 0 || r.Metric < routes[best].Metric {
			best = i
		}
	}
	if best < 0 {
		return "", ErrNoDefaultRoute
	}
	return routes[best].LinkName, nil
}
