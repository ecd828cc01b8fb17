package ndp

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"github.com/mdlayher/socket"
	"github.com/vishvananda/netlink"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/v6bridge/v6bridge/internal/nlretry"
	"github.com/v6bridge/v6bridge/ndp/ndpproto"
)

// uplink is one interface the responder answers on. Fields below pc are
// guarded by Responder.mu.
type uplink struct {
	name  string
	index int
	pc    *socket.Conn // packet socket: capture (native) and send

	st             *ndpproto.UplinkState
	mac            net.HardwareAddr
	up             bool
	linkLocal      netip.Addr
	global         netip.Addr
	gateway        netip.Addr        // the default router on this uplink, if any
	router         ndpproto.RouterID // the default router's MAC and addresses: its reserved budget
	routerAsked    time.Time         // when the kernel was last asked to resolve the gateway
	allmulti       bool
	coarse         bool // the capture filter passes more than the targets
	filtered       bool // a filter for u.st was loaded
	filteredRanges []netip.Prefix
	filterRaw      []bpf.RawInstruction // the filter attached last
	groups         groupJoiner
	owns           func(netip.Addr) bool // u.st's addresses and ranges
	own            []netip.Addr          // the uplink's global addresses, tentative ones too
	ingress        ingressState
	drops          atomic.Uint64 // socket queue overflows so far
}

func (r *Responder) openUplink(name string) (*uplink, error) {
	l, err := r.h.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("ndp uplink %q: %w", name, err)
	}
	u := &uplink{name: name, index: l.Attrs().Index, st: ndpproto.NewUplinkState()}
	u.owns = func(a netip.Addr) bool {
		if _, ok := u.st.Addrs[a]; ok {
			return true
		}
		for _, p := range u.st.Ranges {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	u.groups.init(r, u)
	if u.pc, err = openCapture(u, r.cfg.Mode == ndpproto.ModeNative); err != nil {
		return nil, err
	}
	return u, nil
}

// refreshUplink re-reads u's MAC, state, addresses and default router. It
// reports whether the uplink came up or changed its MAC (so neighbours
// need telling).
func (r *Responder) refreshUplink(u *uplink) (bool, error) {
	l, err := r.h.LinkByIndex(u.index)
	if err != nil {
		return false, fmt.Errorf("ndp uplink %q: %w", u.name, err)
	}
	addrs, err := nlretry.Dump(func() ([]netlink.Addr, error) { return r.h.AddrList(l, netlink.FAMILY_V6) })
	if err != nil {
		return false, fmt.Errorf("ndp uplink %q: list addresses: %w", u.name, err)
	}
	var ll, global, deprecated netip.Addr
	var onLink []netip.Prefix
	var own []netip.Addr
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if ok && ip.Is6() && ip.IsGlobalUnicast() && !ip.IsLinkLocalUnicast() {
			own = append(own, ip)
		}
		if !ok || !ip.Is6() || a.Flags&unix.IFA_F_TENTATIVE != 0 {
			continue
		}
		ones, _ := a.Mask.Size()
		switch {
		case ip.IsLinkLocalUnicast():
			if !ll.IsValid() {
				ll = ip
			}
		case ip.IsGlobalUnicast():
			switch {
			case a.Flags&unix.IFA_F_DEPRECATED != 0:
				if !deprecated.IsValid() {
					deprecated = ip
				}
			case !global.IsValid():
				global = ip
			}
			if ones < 128 {
				onLink = append(onLink, netip.PrefixFrom(ip, ones).Masked())
			}
		}
	}
	if !global.IsValid() {
		global = deprecated
	}
	var gw netip.Addr
	if routes, err := nlretry.Dump(func() ([]netlink.Route, error) { return r.h.RouteList(l, netlink.FAMILY_V6) }); err == nil {
		for _, rt := range routes {
			if (rt.Dst == nil || rt.Dst.IP.IsUnspecified()) && rt.Gw != nil {
				gw, _ = netip.AddrFromSlice(rt.Gw)
				break
			}
		}
	}
	up := l.Attrs().Flags&net.FlagUp != 0 && l.Attrs().OperState != netlink.OperDown
	mac := slices.Clone(l.Attrs().HardwareAddr)

	r.mu.Lock()
	defer r.mu.Unlock()
	changed := (up && !u.up) || (u.mac != nil && !slices.Equal(mac, u.mac))
	moved := !slices.Equal(onLink, u.st.OnLink)
	slices.SortFunc(own, netip.Addr.Compare)
	u.mac, u.up, u.linkLocal, u.global, u.gateway, u.st.OnLink, u.own = mac, up, ll, global, gw, onLink, own
	if moved {
		r.dirty = true
	}
	if !moved && !r.closed {
		// Let solicitations for a new own address through at once (it
		// may still be tentative: duplicate address detection), and
		// answer in the kernel with the uplink's new MAC or source.
		r.syncIngress(u)
	}
	return changed, nil
}

// decideConfig is the uplink as Decide sees it. Callers hold r.mu.
func (r *Responder) decideConfig(u *uplink) ndpproto.DecideConfig {
	return ndpproto.DecideConfig{
		LinkAddr:  u.mac,
		Router:    r.cfg.Router,
		Source:    r.cfg.Source,
		LinkLocal: u.linkLocal,
		Global:    u.global,
	}
}
