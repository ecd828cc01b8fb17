package ndp

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/v6bridge/v6bridge/internal/nlretry"
	"github.com/v6bridge/v6bridge/ndp/ndpproto"
)

// The uplinks' default routers, for their reserved budgets (RouterID):
// the gateway of the uplink's default route, its MAC from the neighbour
// cache, the link-local address that MAC makes (modified EUI-64: Linux
// sends its unicast reachability probes from its link-local address),
// and the other addresses the cache gives that MAC (a router soliciting
// from its global address when the route names its link-local one, or
// the other way round). Followed through the uplink follower's changes of
// the default route (kickRouters: the follower subscribes to routes
// already) and neighbour notifications, and re-read every resyncInterval.

// routerLoop follows the uplinks' default routers until ctx ends.
func (r *Responder) routerLoop(ctx context.Context) {
	for ctx.Err() == nil {
		r.watchRouters(ctx)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func (r *Responder) watchRouters(ctx context.Context) {
	done := make(chan struct{})
	defer close(done)
	neighs := make(chan netlink.NeighUpdate, 256)
	neighOpts := netlink.NeighSubscribeOptions{}
	if !r.own {
		ns := r.ns
		neighOpts.Namespace = &ns
	}
	if err := netlink.NeighSubscribeWithOptions(neighs, done, neighOpts); err != nil {
		r.log.WithError(err).Warn("ndp: subscribe to neighbour changes")
		return
	}
	r.refreshRouters(ctx)
	tick := time.NewTicker(resyncInterval)
	defer tick.Stop()
	for {
		var index int
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			r.refreshRouters(ctx)
			continue
		case <-r.routerKick:
			r.refreshRouters(ctx)
			continue
		case nu, ok := <-neighs:
			if !ok {
				return
			}
			if nu.Family != unix.AF_INET6 || nu.Flags&netlink.NTF_PROXY != 0 {
				continue
			}
			index = nu.LinkIndex
			if !r.routerNeighbour(index, nu.Neigh) {
				continue
			}
		}
		for _, u := range r.uplinks {
			if u.index == index {
				r.refreshRouter(u)
			}
		}
	}
}

// kickRouters tells the router watch that an uplink's default route
// changed (its gateway, or the link it is on): from the uplink follower,
// so refreshRouter keeps running on the watch's goroutine alone.
func (r *Responder) kickRouters() {
	select {
	case r.routerKick <- struct{}{}:
	default:
	}
}

// routerNeighbour reports whether a change of neighbour n may change the
// default router of the uplink with index: n is its gateway, one of its
// addresses or has its MAC. Anyone on the /64 makes neighbour entries
// come and go (a solicitation for the host's own address does); those
// cost no dump.
func (r *Responder) routerNeighbour(index int, n netlink.Neigh) bool {
	a, _ := netip.AddrFromSlice(n.IP)
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, u := range r.uplinks {
		if u.index != index {
			continue
		}
		if a == u.gateway || slices.Contains(u.router.Addrs[:], a) ||
			(u.router.Known() && len(n.HardwareAddr) == 6 && [6]byte(n.HardwareAddr) == u.router.MAC) {
			return true
		}
	}
	return false
}

func (r *Responder) refreshRouters(ctx context.Context) {
	for _, u := range r.uplinks {
		if ctx.Err() != nil {
			return
		}
		r.refreshRouter(u)
	}
}

// refreshRouter re-reads u's default router and, when it changed, moves
// the ingress filter's reserve to it. A gateway the neighbour cache does
// not hold yet is resolved (NTF_USE), so the next notification brings
// its MAC; at most once per resyncInterval, so a dead gateway is not
// solicited for ever.
func (r *Responder) refreshRouter(u *uplink) {
	id, gw := r.readRouter(u)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	if gw.IsValid() && !id.Known() && time.Since(u.routerAsked) >= resyncInterval {
		u.routerAsked = time.Now()
		n := &netlink.Neigh{LinkIndex: u.index, Family: unix.AF_INET6, IP: net.IP(gw.AsSlice()), Flags: unix.NTF_USE}
		if err := r.h.NeighSet(n); err != nil {
			r.log.WithFields(logrus.Fields{"iface": u.name, "addr": gw}).WithError(err).Debug("ndp: resolve the default router")
		}
	}
	if id == u.router {
		return
	}
	r.log.WithFields(logrus.Fields{"iface": u.name, "mac": net.HardwareAddr(id.MAC[:]).String(), "addr": id.List()}).Info("ndp: the default router's solicitations have a reserved budget")
	u.router = id
	r.syncIngress(u)
}

// readRouter reads u's default router from the routing table and the
// neighbour cache; gw is the default route's gateway (zero: none).
func (r *Responder) readRouter(u *uplink) (id ndpproto.RouterID, gw netip.Addr) {
	l := &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Index: u.index}}
	routes, err := nlretry.Dump(func() ([]netlink.Route, error) { return r.h.RouteList(l, netlink.FAMILY_V6) })
	if err != nil {
		return id, gw
	}
	for _, rt := range routes {
		if (rt.Dst == nil || rt.Dst.IP.IsUnspecified()) && rt.Gw != nil {
			gw, _ = netip.AddrFromSlice(rt.Gw)
			break
		}
	}
	if !gw.IsValid() {
		return id, gw
	}
	neighs, err := nlretry.Dump(func() ([]netlink.Neigh, error) { return r.h.NeighList(u.index, netlink.FAMILY_V6) })
	if err != nil {
		return id, gw
	}
	usable := func(n netlink.Neigh) bool {
		return len(n.HardwareAddr) == 6 && n.Flags&netlink.NTF_PROXY == 0 &&
			n.State&(netlink.NUD_INCOMPLETE|netlink.NUD_FAILED|netlink.NUD_NONE) == 0
	}
	var mac net.HardwareAddr
	for _, n := range neighs {
		if a, _ := netip.AddrFromSlice(n.IP); a == gw && usable(n) {
			mac = n.HardwareAddr
		}
	}
	if mac == nil {
		return id, gw
	}
	addrs := []netip.Addr{gw, ndpproto.EUI64LinkLocal(mac)}
	var others []netip.Addr
	for _, n := range neighs {
		if a, ok := netip.AddrFromSlice(n.IP); ok && a != gw && usable(n) && slices.Equal(n.HardwareAddr, mac) {
			others = append(others, a)
		}
	}
	slices.SortFunc(others, netip.Addr.Compare)
	return ndpproto.NewRouterID(mac, append(addrs, others...)), gw
}
