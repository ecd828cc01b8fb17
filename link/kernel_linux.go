package link

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/v6bridge/v6bridge/internal/instance"
	"github.com/v6bridge/v6bridge/internal/nlretry"
	"github.com/v6bridge/v6bridge/netspec"
)

// Config says where and on what a Kernel acts.
type Config struct {
	// NetNS is the network namespace to act in; netns.None() (-1) means
	// the current one, and so does the zero value (fd 0 is stdin, never a
	// namespace). The caller keeps ownership: Close does not close it.
	NetNS netns.NsHandle
	// ProcSys is where the proc sysctl tree is mounted, DefaultProcSys if
	// empty. A managed plugin sees /proc/sys read-only and mounts a fresh
	// proc elsewhere, e.g. "/host/proc/sys".
	ProcSys string
	// BridgePrefix and VethPrefix are the name prefixes of the bridges and
	// host-side veths v6bridge owns (DefaultBridgePrefix, DefaultVethPrefix
	// if empty).
	BridgePrefix, VethPrefix string
	// Mark is the alias every bridge and host-side veth this Kernel makes
	// or ensures gets (instance.Mark: which instance and state directory
	// they belong to); empty: links are not marked.
	Mark string
	// Log receives one Info line per change to the kernel; nil: logrus'
	// standard logger.
	Log logrus.FieldLogger
}

// Kernel manages bridges, veths, addresses and sysctls in one network
// namespace through netlink. It is safe for concurrent use.
type Kernel struct {
	h       *netlink.Handle
	addrs   *AddrDumper // one link's addresses, filtered by the kernel
	ns      netns.NsHandle
	procSys string
	brPfx   string
	vethPfx string
	mark    string
	log     logrus.FieldLogger

	mu       sync.Mutex
	isolated map[string]bool // bridge name -> its ports get the isolated flag
}

// New returns a Kernel acting in cfg.NetNS. Close releases its netlink
// socket.
func New(cfg Config) (*Kernel, error) {
	k := &Kernel{
		ns:       cfg.NetNS,
		procSys:  cfg.ProcSys,
		brPfx:    cfg.BridgePrefix,
		vethPfx:  cfg.VethPrefix,
		mark:     cfg.Mark,
		log:      cfg.Log,
		isolated: map[string]bool{},
	}
	if k.procSys == "" {
		k.procSys = DefaultProcSys
	}
	if k.brPfx == "" {
		k.brPfx = DefaultBridgePrefix
	}
	if k.vethPfx == "" {
		k.vethPfx = DefaultVethPrefix
	}
	if k.log == nil {
		k.log = logrus.StandardLogger()
	}
	var err error
	if k.ns > 0 {
		k.h, err = netlink.NewHandleAt(k.ns)
	} else {
		k.ns = netns.None()
		k.h, err = netlink.NewHandle()
	}
	if err != nil {
		return nil, fmt.Errorf("netlink handle: %w", err)
	}
	k.addrs = NewAddrDumper(k.ns, k.h)
	return k, nil
}

// Close releases the netlink sockets. It does not close Config.NetNS.
func (k *Kernel) Close() error {
	k.addrs.Close()
	k.h.Close()
	return nil
}

// linkByName returns the link, or (nil, nil) if there is none.
func (k *Kernel) linkByName(name string) (netlink.Link, error) {
	l, err := k.h.LinkByName(name)
	if notFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return l, nil
}

// notFound reports whether err says the link does not exist.
func notFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, unix.ENODEV)
}

// LinkExists reports whether an interface of that name exists.
func (k *Kernel) LinkExists(name string) (bool, error) {
	if err := validName(name); err != nil {
		return false, fmt.Errorf("link exists: %w", err)
	}
	l, err := k.linkByName(name)
	if err != nil {
		return false, fmt.Errorf("link exists %q: %w", name, err)
	}
	return l != nil, nil
}

// LinkMTU returns the MTU of the named interface.
func (k *Kernel) LinkMTU(name string) (int, error) {
	if err := validName(name); err != nil {
		return 0, fmt.Errorf("link mtu: %w", err)
	}
	l, err := k.h.LinkByName(name)
	if err != nil {
		return 0, fmt.Errorf("link mtu %q: %w", name, err)
	}
	return l.Attrs().MTU, nil
}

// OwnedLinks lists the bridges and host-side veths whose names carry
// v6bridge's prefixes, with the instance their mark names, sorted by
// name. A link with the prefix but of another type is not listed.
func (k *Kernel) OwnedLinks() ([]netspec.OwnedLink, error) {
	links, err := nlretry.Dump(k.h.LinkList)
	if err != nil {
		return nil, fmt.Errorf("list owned links: %w", err)
	}
	var out []netspec.OwnedLink
	for _, l := range links {
		b, v := k.owned(l)
		if !b && !v {
			continue
		}
		o := netspec.OwnedLink{Name: l.Attrs().Name, Bridge: b}
		o.Instance, o.StateDir, _ = instance.ParseMark(l.Attrs().Alias)
		out = append(out, o)
	}
	slices.SortFunc(out, func(a, b netspec.OwnedLink) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// ensureMark gives l this Kernel's mark (Config.Mark) as its alias, if it
// has another one.
func (k *Kernel) ensureMark(l netlink.Link) error {
	if k.mark == "" || l.Attrs().Alias == k.mark {
		return nil
	}
	if err := k.h.LinkSetAlias(l, k.mark); err != nil {
		return fmt.Errorf("mark %q: %w", l.Attrs().Name, err)
	}
	return nil
}

func (k *Kernel) owned(l netlink.Link) (bridge, veth bool) {
	return ownedKind(linkKind{Name: l.Attrs().Name, Type: l.Type()}, k.brPfx, k.vethPfx)
}

// HostAddrs returns the global-scope IPv6 addresses (ULA included) on the
// interfaces that are not v6bridge's bridges or veths: the addresses the
// host itself is reached at. Addresses that failed DAD are left out. The
// result is sorted and has no duplicates.
func (k *Kernel) HostAddrs() ([]netip.Addr, error) {
	links, err := nlretry.Dump(k.h.LinkList)
	if err != nil {
		return nil, fmt.Errorf("host addrs: list links: %w", err)
	}
	ours := map[int]bool{}
	for _, l := range links {
		if b, v := k.owned(l); b || v {
			ours[l.Attrs().Index] = true
		}
	}
	addrs, err := nlretry.Dump(func() ([]netlink.Addr, error) { return k.h.AddrList(nil, netlink.FAMILY_V6) })
	if err != nil {
		return nil, fmt.Errorf("host addrs: list addresses: %w", err)
	}
	var out []netip.Addr
	for _, a := range addrs {
		if ours[a.LinkIndex] || a.Scope != unix.RT_SCOPE_UNIVERSE || a.Flags&unix.IFA_F_DADFAILED != 0 {
			continue
		}
		p, ok := addrPrefix(a)
		if !ok || !hostAddr(p.Addr()) {
			continue
		}
		out = append(out, p.Addr())
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out), nil
}

// DefaultRouteUplink returns the interface of the IPv6 default route with
// the lowest metric in the main table, or an error wrapping
// ErrNoDefaultRoute.
func (k *Kernel) DefaultRouteUplink() (string, error) {
	routes, err := nlretry.Dump(func() ([]netlink.Route, error) {
		return k.h.RouteListFiltered(netlink.FAMILY_V6, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return "", fmt.Errorf("default route uplink: %w", err)
	}
	names := map[int]string{}
	var rs []route
	for _, r := range routes {
		if r.Type != unix.RTN_UNICAST {
			continue
		}
		idx := r.LinkIndex
		if idx == 0 && len(r.MultiPath) > 0 {
			idx = r.MultiPath[0].LinkIndex
		}
		if idx == 0 {
			continue
		}
		name, ok := names[idx]
		if !ok {
			l, err := k.h.LinkByIndex(idx)
			if err != nil {
				return "", fmt.Errorf("default route uplink: link %d: %w", idx, err)
			}
			name = l.Attrs().Name
			names[idx] = name
		}
		var dst netip.Prefix
		if r.Dst != nil {
			dst, _ = netipPrefix(r.Dst.IP, r.Dst.Mask)
		}
		rs = append(rs, route{Dst: dst, Metric: r.Priority, LinkName: name})
	}
	name, err := defaultUplink(rs)
	if err != nil {
		return "", fmt.Errorf("default route uplink: %w", err)
	}
	return name, nil
}

// UplinkPrefixes returns the on-link global prefixes of an uplink, from
// its global IPv6 addresses and their prefix lengths (/128s name no link
// and are skipped), sorted.
func (k *Kernel) UplinkPrefixes(uplink string) ([]netip.Prefix, error) {
	ps, err := k.globalAddrs(uplink, "uplink prefixes")
	if err != nil {
		return nil, err
	}
	return onLinkPrefixes(ps), nil
}

// UplinkAddrs returns the global IPv6 addresses of an uplink (ULA
// included): the host addresses published ports listen on.
func (k *Kernel) UplinkAddrs(uplink string) ([]netip.Addr, error) {
	ps, err := k.globalAddrs(uplink, "uplink addresses")
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, p := range ps {
		out = append(out, p.Addr())
	}
	return out, nil
}

// globalAddrs returns the global IPv6 addresses of an uplink that passed
// duplicate address detection, with their prefix lengths; what names the
// caller's question in errors.
func (k *Kernel) globalAddrs(uplink, what string) ([]netip.Prefix, error) {
	if err := validName(uplink); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	l, err := k.h.LinkByName(uplink)
	if err != nil {
		return nil, fmt.Errorf("%s of %q: %w", what, uplink, err)
	}
	addrs, err := k.addrs.List(l, netlink.FAMILY_V6)
	if err != nil {
		return nil, fmt.Errorf("%s of %q: %w", what, uplink, err)
	}
	var ps []netip.Prefix
	for _, a := range addrs {
		if a.Scope != unix.RT_SCOPE_UNIVERSE || a.Flags&unix.IFA_F_DADFAILED != 0 {
			continue
		}
		if p, ok := addrPrefix(a); ok {
			ps = append(ps, p)
		}
	}
	return ps, nil
}

// UplinkGateways returns the next hops of the IPv6 default routes through
// an uplink in the main table.
func (k *Kernel) UplinkGateways(uplink string) ([]netip.Addr, error) {
	l, err := k.h.LinkByName(uplink)
	if err != nil {
		return nil, fmt.Errorf("gateways of %q: %w", uplink, err)
	}
	routes, err := nlretry.Dump(func() ([]netlink.Route, error) {
		return k.h.RouteListFiltered(netlink.FAMILY_V6,
			&netlink.Route{LinkIndex: l.Attrs().Index, Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_OIF|netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return nil, fmt.Errorf("gateways of %q: %w", uplink, err)
	}
	var out []netip.Addr
	for _, r := range routes {
		if r.Dst != nil && !r.Dst.IP.IsUnspecified() {
			continue
		}
		if a, ok := netip.AddrFromSlice(r.Gw); ok {
			out = append(out, a.Unmap())
		}
	}
	return out, nil
}
