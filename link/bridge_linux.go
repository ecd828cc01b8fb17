package link

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/sirupsen/logrus"
	"github.com/v6bridge/v6bridge/netspec"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/v6bridge/v6bridge/internal/nlretry"
)

// EnsureBridge creates the bridge spec.Name or verifies and repairs an
// existing one: MTU (if spec.MTU > 0), accept_ra=0 and IPv6 enabled (set
// before the bridge goes up, so it never takes router advertisements from
// containers), spec.Gateway as its only global address, added without DAD
// so containers can use the gateway at once, and up. A link-local
// spec.Gateway (fe80::1/64) is added the same way next to the bridge's own
// link-local address, the bridge keeps no global address, and spec.Subnet
// is routed to it. A link of that name
// that is not a bridge is an error. spec.Isolated is applied to the
// bridge's current ports and remembered for EnsureVeth. If the call
// created the bridge and then fails, it deletes it again.
func (k *Kernel) EnsureBridge(spec netspec.BridgeSpec) (err error) {
	name := spec.Name
	if err := validName(name); err != nil {
		return fmt.Errorf("ensure bridge: %w", err)
	}
	if !spec.Gateway.IsValid() || !spec.Gateway.Addr().Is6() || spec.Gateway.Addr().Is4In6() {
		return fmt.Errorf("ensure bridge %q: gateway %s is not an IPv6 address with prefix length", name, spec.Gateway)
	}
	if spec.Gateway.Addr().IsLinkLocalUnicast() && (!spec.Subnet.IsValid() || !spec.Subnet.Addr().Is6() || spec.Subnet.Addr().IsLinkLocalUnicast()) {
		return fmt.Errorf("ensure bridge %q: link-local gateway %s needs the network's subnet to route, got %q", name, spec.Gateway, spec.Subnet)
	}
	if spec.MTU < 0 {
		return fmt.Errorf("ensure bridge %q: negative MTU %d", name, spec.MTU)
	}
	log := k.log.WithField("bridge", name)

	br, created, err := k.ensureBridgeLink(name, spec.MTU)
	if err != nil {
		return fmt.Errorf("ensure bridge %q: %w", name, err)
	}
	if created {
		log.Info("created bridge")
		defer func() {
			if err == nil {
				return
			}
			if derr := k.h.LinkDel(br); derr != nil && !notFound(derr) {
				log.WithError(derr).Warn("could not delete the half-made bridge")
			}
		}()
	}
	if err := k.configureBridge(br, spec, log); err != nil {
		return fmt.Errorf("ensure bridge %q: %w", name, err)
	}
	if err := k.ensureMark(br); err != nil {
		return fmt.Errorf("ensure bridge %q: %w", name, err)
	}
	return nil
}

// ensureBridgeLink returns the bridge named name, creating it if missing.
func (k *Kernel) ensureBridgeLink(name string, mtu int) (br netlink.Link, created bool, err error) {
	l, err := k.linkByName(name)
	if err != nil {
		return nil, false, err
	}
	if l == nil {
		attrs := netlink.NewLinkAttrs()
		attrs.Name = name
		attrs.MTU = mtu
		attrs.Alias = k.mark
		err := k.h.LinkAdd(&netlink.Bridge{LinkAttrs: attrs})
		created = err == nil
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return nil, false, fmt.Errorf("add bridge: %w", err)
		}
		// Re-read: the kernel fills in index and MAC, and on EEXIST
		// someone else made it, which must be checked like any other.
		if l, err = k.h.LinkByName(name); err != nil {
			return nil, false, fmt.Errorf("find new bridge: %w", err)
		}
	}
	if _, ok := l.(*netlink.Bridge); !ok {
		if created {
			_ = k.h.LinkDel(l)
		}
		return nil, false, fmt.Errorf("link %q exists and is a %s, not a bridge", name, l.Type())
	}
	if created {
		// Pin the bridge's MAC. A bridge without one set takes the lowest
		// MAC of its ports, so the gateway's MAC would change as containers
		// come and go, leaving stale neighbour entries in the others.
		if err := k.h.LinkSetHardwareAddr(l, l.Attrs().HardwareAddr); err != nil {
			_ = k.h.LinkDel(l)
			return nil, false, fmt.Errorf("pin bridge mac: %w", err)
		}
	}
	return l, created, nil
}

// configureBridge brings an existing bridge to spec, changing only what
// differs.
func (k *Kernel) configureBridge(br netlink.Link, spec netspec.BridgeSpec, log logrus.FieldLogger) error {
	a := br.Attrs()
	if spec.MTU > 0 && a.MTU != spec.MTU {
		if err := k.h.LinkSetMTU(br, spec.MTU); err != nil {
			return fmt.Errorf("set mtu %d: %w", spec.MTU, err)
		}
		log.WithField("mtu", spec.MTU).Info("set bridge mtu")
	}
	// Before up: once up with accept_ra=1 (the default) a container
	// sending router advertisements could give the host routes.
	if _, _, err := k.ensureSysctl("0", "net", "ipv6", "conf", a.Name, "accept_ra"); err != nil {
		return err
	}
	// A host with default.disable_ipv6=1 creates bridges without IPv6.
	if _, _, err := k.ensureSysctl("0", "net", "ipv6", "conf", a.Name, "disable_ipv6"); err != nil {
		return err
	}
	if a.Flags&net.FlagUp == 0 {
		if err := k.h.LinkSetUp(br); err != nil {
			return fmt.Errorf("set up: %w", err)
		}
		log.Info("set bridge up")
	}
	if err := k.ensureGateway(br, spec, log); err != nil {
		return err
	}
	if spec.Gateway.Addr().IsLinkLocalUnicast() {
		if err := k.ensureSubnetRoute(br, spec.Subnet, log); err != nil {
			return err
		}
	}
	k.mu.Lock()
	k.isolated[a.Name] = spec.Isolated
	k.mu.Unlock()
	return k.isolatePorts(br, spec.Isolated)
}

// ensureGateway makes spec.Gateway, without DAD, the only global address
// of the bridge (with a link-local gateway: an address next to the
// bridge's own link-local one, and no global address). Other link-local
// addresses are left alone.
func (k *Kernel) ensureGateway(br netlink.Link, spec netspec.BridgeSpec, log logrus.FieldLogger) error {
	addrs, err := k.addrs.List(br, netlink.FAMILY_V6)
	if err != nil {
		return fmt.Errorf("list addresses: %w", err)
	}
	have := false
	for _, ad := range addrs {
		p, ok := addrPrefix(ad)
		if !ok {
			continue
		}
		// The gateway counts as present only if usable: added without DAD,
		// or through DAD already (not tentative, not failed).
		usable := ad.Flags&unix.IFA_F_NODAD != 0 ||
			ad.Flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) == 0
		if p == spec.Gateway && usable {
			have = true
			continue
		}
		if ad.Scope != unix.RT_SCOPE_UNIVERSE {
			continue
		}
		if err := k.h.AddrDel(br, &ad); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			return fmt.Errorf("remove address %s: %w", p, err)
		}
		log.WithField("addr", p.String()).Info("removed bridge address")
	}
	if have {
		return nil
	}
	gw := &netlink.Addr{IPNet: ipNet(spec.Gateway), Flags: unix.IFA_F_NODAD}
	if err := k.h.AddrAdd(br, gw); err != nil {
		return fmt.Errorf("add gateway %s: %w", spec.Gateway, err)
	}
	log.WithField("addr", spec.Gateway.String()).Info("added gateway address")
	return nil
}

// ensureSubnetRoute routes subnet to the bridge br, whose gateway is
// link-local: without an address of the subnet the kernel adds no such
// route itself.
func (k *Kernel) ensureSubnetRoute(br netlink.Link, subnet netip.Prefix, log logrus.FieldLogger) error {
	filter := &netlink.Route{Table: unix.RT_TABLE_MAIN, LinkIndex: br.Attrs().Index}
	routes, err := nlretry.Dump(func() ([]netlink.Route, error) {
		return k.h.RouteListFiltered(netlink.FAMILY_V6, filter, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_OIF)
	})
	if err != nil {
		return fmt.Errorf("list routes: %w", err)
	}
	for _, r := range routes {
		if r.Dst == nil || r.Gw != nil || len(r.MultiPath) > 0 {
			continue
		}
		if p, ok := netipPrefix(r.Dst.IP, r.Dst.Mask); ok && p == subnet {
			return nil
		}
	}
	r := &netlink.Route{LinkIndex: br.Attrs().Index, Dst: ipNet(subnet), Table: unix.RT_TABLE_MAIN, Protocol: unix.RTPROT_STATIC}
	if err := k.h.RouteReplace(r); err != nil {
		return fmt.Errorf("route %s to the bridge: %w", subnet, err)
	}
	log.WithField("pool", subnet.String()).Info("routed subnet to the bridge")
	return nil
}

// isolatePorts sets every port of the bridge to the isolated flag, so
// that flipping a network's isolation also reaches the endpoints that
// already exist.
func (k *Kernel) isolatePorts(br netlink.Link, isolated bool) error {
	links, err := nlretry.Dump(k.h.LinkList)
	if err != nil {
		return fmt.Errorf("list ports: %w", err)
	}
	for _, l := range links {
		if l.Attrs().MasterIndex != br.Attrs().Index {
			continue
		}
		if err := k.ensureIsolated(l, isolated); err != nil {
			return err
		}
	}
	return nil
}

// ensureIsolated sets the "isolated" bridge-port flag of port to want.
// It writes without reading first: the kernel can only report a port's
// flags in a dump of every bridge port of the host, which made each call
// cost O(ports) and a thousand attaches O(ports²); a write is one request
// and idempotent.
func (k *Kernel) ensureIsolated(port netlink.Link, want bool) error {
	if err := k.h.LinkSetIsolated(port, want); err != nil {
		return fmt.Errorf("set isolated=%v on port %q: %w", want, port.Attrs().Name, err)
	}
	return nil
}

// ensureHairpin turns on hairpin mode of a container's bridge port: a
// container reaching its own published port through the host's address is
// DNATed back to itself, and with br_netfilter loaded (container engines
// load it) that frame leaves through the port it came in on, which a bridge
// only does in hairpin mode. Like ensureIsolated it writes without reading.
func (k *Kernel) ensureHairpin(port netlink.Link) error {
	if err := k.h.LinkSetHairpin(port, true); err != nil {
		return fmt.Errorf("set hairpin on port %q: %w", port.Attrs().Name, err)
	}
	return nil
}

// DeleteBridge deletes the bridge name. A missing bridge is success; a
// link of that name that is not a bridge is left alone and reported.
func (k *Kernel) DeleteBridge(name string) error {
	if err := validName(name); err != nil {
		return fmt.Errorf("delete bridge: %w", err)
	}
	k.mu.Lock()
	delete(k.isolated, name)
	k.mu.Unlock()
	return k.deleteLink("bridge", name, func(l netlink.Link) bool { _, ok := l.(*netlink.Bridge); return ok }, "bridge")
}

// deleteLink deletes link name if it is of the kind is checks (named kind
// in errors, logged under field); a missing link is success.
func (k *Kernel) deleteLink(kind, name string, is func(netlink.Link) bool, field string) error {
	l, err := k.linkByName(name)
	if err != nil {
		return fmt.Errorf("delete %s %q: %w", kind, name, err)
	}
	if l == nil {
		return nil
	}
	if !is(l) {
		return fmt.Errorf("delete %s %q: it is a %s, not a %s", kind, name, l.Type(), kind)
	}
	if err := k.h.LinkDel(l); err != nil && !notFound(err) {
		return fmt.Errorf("delete %s %q: %w", kind, name, err)
	}
	k.log.WithField(field, name).Info("deleted " + kind)
	return nil
}
