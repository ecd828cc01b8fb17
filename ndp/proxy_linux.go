package ndp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/v6bridge/v6bridge/link"
	"github.com/v6bridge/v6bridge/ndp/ndpproto"
)

// Kernel proxy-neighbour entries: kernel mode's way of answering, and
// native mode's hand-over while v6bridge is stopped.

// proxySysctls turns on proxy answering for the uplinks: proxy_ndp on
// "all" (the forwarding path checks it before handing unicast probes to
// ndisc) and on each uplink, proxy_delay=0 so multicast solicitations are
// answered at once. Sysctls are written in the responder's namespace.
func (r *Responder) proxySysctls() error {
	set := [][]string{{"net", "ipv6", "conf", "all", "proxy_ndp"}}
	for _, u := range r.uplinks {
		set = append(set, []string{"net", "ipv6", "conf", u.name, "proxy_ndp"}, []string{"net", "ipv6", "neigh", u.name, "proxy_delay"})
	}
	for _, key := range set {
		want := "1"
		if key[len(key)-1] == "proxy_delay" {
			want = "0"
		}
		if _, _, err := link.EnsureSysctl(r.sysctlNS(), r.cfg.ProcSys, want, key...); err != nil {
			return fmt.Errorf("ndp proxy: %w", err)
		}
	}
	for _, u := range r.uplinks {
		if v, err := link.ReadSysctl(r.sysctlNS(), r.cfg.ProcSys, "net", "ipv6", "conf", u.name, "forwarding"); err == nil && v == "0" {
			r.log.WithField("iface", u.name).Warn("ndp proxy: forwarding is off on the uplink, the kernel will not answer as a proxy")
		}
	}
	return nil
}

// adoptProxiesLocked reads the proxy entries already on the uplinks: they
// are the responder's (a previous run's), so the next plan removes those
// it does not want.
func (r *Responder) adoptProxiesLocked() error {
	for _, u := range r.uplinks {
		list, err := r.h.NeighProxyList(u.index, netlink.FAMILY_V6)
		if err != nil {
			return fmt.Errorf("ndp uplink %q: list proxy entries: %w", u.name, err)
		}
		clear(u.st.Proxies)
		for _, n := range list {
			if a, ok := netip.AddrFromSlice(n.IP); ok && n.Flags&netlink.NTF_PROXY != 0 {
				u.st.Proxies[a] = struct{}{}
			}
		}
	}
	return nil
}

func (r *Responder) addProxy(u *uplink, a netip.Addr) error {
	if err := r.h.NeighSet(proxyNeigh(u, a)); err != nil {
		return fmt.Errorf("ndp uplink %q: add proxy entry %s: %w", u.name, a, err)
	}
	u.st.Proxies[a] = struct{}{}
	return nil
}

func (r *Responder) delProxy(u *uplink, a netip.Addr) error {
	err := r.h.NeighDel(proxyNeigh(u, a))
	if err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("ndp uplink %q: delete proxy entry %s: %w", u.name, a, err)
	}
	delete(u.st.Proxies, a)
	return nil
}

func proxyNeigh(u *uplink, a netip.Addr) *netlink.Neigh {
	return &netlink.Neigh{
		LinkIndex: u.index,
		Family:    netlink.FAMILY_V6,
		Flags:     netlink.NTF_PROXY,
		State:     netlink.NUD_PERMANENT,
		IP:        a.AsSlice(),
	}
}

// CloseLeavingProxies closes the responder (see Close) and leaves the
// kernel answering in its place until the next start takes over: a
// proxy-neighbour entry on its uplink for every single address answered
// (ranges cannot be proxied and go dark), proxy_ndp on, proxy_delay 0. It
// is what a stop for an upgrade, a disable or a service restart calls, so
// the provider's router keeps reaching public containers meanwhile. Off
// mode leaves nothing. Errors are returned after everything was tried.
func (r *Responder) CloseLeavingProxies() error {
	var errs []error
	r.mu.Lock()
	if r.closed || r.cfg.Mode == ndpproto.ModeOff {
		r.mu.Unlock()
		return r.Close()
	}
	// From here on nothing takes entries back. The entries are added
	// without holding the lock, so answering goes on meanwhile.
	r.handingOver = true
	type entry struct {
		u *uplink
		a netip.Addr
	}
	var todo []entry
	for _, u := range r.uplinks {
		for a := range u.st.Addrs {
			if _, ok := u.st.Proxies[a]; !ok {
				todo = append(todo, entry{u, a})
			}
		}
		if len(u.st.Ranges) > 0 {
			r.log.WithFields(logrus.Fields{"iface": u.name, "ranges": u.st.Ranges}).Warn("ndp: ranges cannot be handed over to the kernel; they go unanswered until the next start")
		}
	}
	r.mu.Unlock()
	if err := r.proxySysctls(); err != nil {
		errs = append(errs, err)
	}
	n := 0
	for _, e := range todo {
		if err := r.h.NeighSet(proxyNeigh(e.u, e.a)); err != nil {
			errs = append(errs, fmt.Errorf("ndp uplink %q: add proxy entry %s: %w", e.u.name, e.a, err))
			continue
		}
		n++
	}
	r.log.WithField("entries", n).Info("ndp: handed answering over to kernel proxy entries until the next start")
	errs = append(errs, r.Close())
	return errors.Join(errs...)
}

// kickTakeBack tells takeBackLoop there are proxy entries to remove.
func (r *Responder) kickTakeBack() {
	select {
	case r.takeBack <- struct{}{}:
	default:
	}
}

// takeBackLoop removes, in native mode, the proxy entries a previous run
// left for the hand-over, once this run answers itself (it runs beside the
// capture loops). One entry at a time under the lock, so answering is
// never held up for long and a hand-over starting meanwhile keeps the
// entries it needs.
func (r *Responder) takeBackLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.takeBack:
		}
		n := 0
		for ctx.Err() == nil {
			r.mu.Lock()
			var u *uplink
			var a netip.Addr
			for _, c := range r.uplinks {
				for p := range c.st.Proxies {
					u, a = c, p
					break
				}
				if u != nil {
					break
				}
			}
			if u == nil || r.closed || r.handingOver {
				r.mu.Unlock()
				break
			}
			err := r.delProxy(u, a)
			r.mu.Unlock()
			if err != nil {
				r.log.WithError(err).Warn("ndp: take back a hand-over proxy entry")
				r.mu.Lock()
				r.dirty = true
				r.mu.Unlock()
				break
			}
			n++
		}
		if n > 0 {
			r.log.WithField("entries", n).Info("ndp: took back the kernel proxy entries of the hand-over")
		}
	}
}
