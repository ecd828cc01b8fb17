package ndp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/v6bridge/v6bridge/link"
	"github.com/v6bridge/v6bridge/ndp/ndpproto"
)

// watchLoop follows the uplinks with a link.Follower of its own, unless
// Config.Followed (the caller's follower tells UplinkChanged), and
// resyncs periodically in case a change was missed.
func (r *Responder) watchLoop(ctx context.Context) {
	if !r.cfg.Followed {
		f, err := link.NewFollower(link.FollowConfig{Uplinks: r.cfg.Uplinks, NetNS: r.sysctlNS(), Log: r.log})
		if err != nil {
			r.log.WithError(err).Warn("ndp: follow the uplinks; only resyncing every " + resyncInterval.String())
		} else {
			defer f.Close()
			f.Tell(link.Part{Name: "ndp", Changed: r.UplinkChanged})
			// A default route changed before the follower read the
			// uplinks, after the router watch did, is read again.
			r.kickRouters()
			done := make(chan struct{})
			defer func() { <-done }()
			go func() { defer close(done); f.Run(ctx) }()
		}
	}
	// Catch up with what happened before.
	r.resync(ctx, false)
	tick := time.NewTicker(resyncInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			r.resync(ctx, true)
		}
	}
}

// UplinkChanged follows a change of an uplink (a link.Part): on a new link
// of the uplink's name (deleted and created again) it re-attaches first
// (Reattach); then it reads the uplink again, tells neighbours when it
// came up or changed its MAC, and re-applies the targets. A new default
// route, or a new link, has the router watch read the default router again.
func (r *Responder) UplinkChanged(c link.Change) error {
	if r.cfg.Mode == ndpproto.ModeOff {
		return nil
	}
	u := r.uplinkNamed(c.New.Name)
	if u == nil {
		return nil
	}
	if c.New.Gateway != c.Old.Gateway || c.Reattach() {
		defer r.kickRouters() // after Reattach: the router is read on the new index
	}
	if c.New.Index == 0 {
		// Gone: answering resumes once a link of the name is back, and
		// neighbours are told then.
		r.mu.Lock()
		u.up = false
		r.mu.Unlock()
		return nil
	}
	if err := r.Reattach(u.name, c.New.Index); err != nil {
		return err
	}
	return r.linkChanged(u)
}

func (r *Responder) uplinkNamed(name string) *uplink {
	for _, u := range r.uplinks {
		if u.name == name {
			return u
		}
	}
	return nil
}

// Reattach moves the uplink named name to the link with index, if it is
// on another one: a link deleted and created again under the same name
// (hot-plug, a bond or VLAN re-created) has a new index, and what was
// bound to the old one answers nothing. The capture socket is bound to
// the new link, the solicited-node groups are joined on it, kernel mode's
// proxy entries and sysctls are made again and the ingress filter is made
// anew for it (its chain and its answers name the link). The same index
// again is a no-op.
func (r *Responder) Reattach(name string, index int) error {
	u := r.uplinkNamed(name)
	if u == nil {
		return fmt.Errorf("ndp: re-attach %q: not an uplink", name)
	}
	r.mu.Lock()
	if r.closed || u.index == index || r.cfg.Mode == ndpproto.ModeOff {
		r.mu.Unlock()
		return nil
	}
	r.log.WithFields(logrus.Fields{"iface": u.name, "index": index, "was": u.index}).Info("ndp: uplink created again, re-attaching")
	u.index, u.up = index, false
	r.mu.Unlock()
	// The new link's MAC, state and addresses, before anything answers
	// on it (an answer must carry the new MAC).
	if _, err := r.refreshUplink(u); err != nil {
		return fmt.Errorf("ndp: re-attach: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	var errs []error
	if r.cfg.Mode == ndpproto.ModeNative {
		if err := u.pc.Bind(&unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IPV6), Ifindex: index}); err != nil {
			errs = append(errs, fmt.Errorf("ndp uplink %q: bind packet socket to index %d: %w", u.name, index, err))
		}
		u.allmulti = false // the membership went with the old link
	}
	// The join sockets name the old index: closed, the groups are joined
	// again on the new link by the reconcile below.
	if err := u.groups.close(); err != nil {
		r.log.WithField("iface", u.name).WithError(err).Debug("ndp: close the old link's join sockets")
	}
	if r.cfg.Mode == ndpproto.ModeKernel {
		// proxy_ndp and proxy_delay of the new link are the defaults.
		if err := r.proxySysctls(); err != nil {
			errs = append(errs, err)
		}
	}
	r.adopted = false // the old link's proxy entries are gone with it
	r.dirty = true
	if err := r.reconcileLocked(); err != nil {
		errs = append(errs, err)
	}
	// The ingress filter names the old index (ingressState.index): made
	// anew.
	r.syncIngress(u)
	// Neighbours know the old MAC, if another.
	again := make([]netip.Addr, 0, len(u.st.Addrs))
	for a := range u.st.Addrs {
		again = append(again, a)
	}
	r.ann.queue(again)
	return errors.Join(errs...)
}

// linkChanged reads u again and re-applies what changed.
func (r *Responder) linkChanged(u *uplink) error {
	r.mu.RLock()
	closed := r.closed
	r.mu.RUnlock()
	if closed {
		return nil
	}
	changed, err := r.refreshUplink(u)
	if err != nil {
		return fmt.Errorf("ndp: refresh uplink: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cfg.Mode == ndpproto.ModeKernel {
		// Going down flushes the kernel's proxy entries, and a
		// quick down/up may be seen as "up" twice: re-read them
		// on every event of the uplink (rare) and reconcile.
		r.adopted = false
		r.dirty = true
	}
	if changed {
		r.log.WithFields(logrus.Fields{"iface": u.name, "mac": u.mac.String(), "up": u.up}).Info("ndp: uplink changed, announcing again")
		r.adopted = false
		r.dirty = true
		var again []netip.Addr
		for a := range u.st.Addrs {
			again = append(again, a)
		}
		r.ann.queue(again)
	}
	if r.dirty && !r.closed {
		if err := r.reconcileLocked(); err != nil {
			return fmt.Errorf("ndp: reconcile after uplink change of %q: %w", u.name, err)
		}
	}
	return nil
}

// resync re-reads every uplink, re-attaches to a link created again under
// its name, and re-applies the state; full also re-reads the kernel's
// proxy entries.
func (r *Responder) resync(ctx context.Context, full bool) {
	for _, u := range r.uplinks {
		if ctx.Err() != nil {
			return
		}
		if l, err := r.h.LinkByName(u.name); err == nil {
			if err := r.Reattach(u.name, l.Attrs().Index); err != nil {
				r.log.WithField("iface", u.name).WithError(err).Warn("ndp: re-attach")
			}
		}
		if err := r.linkChanged(u); err != nil {
			r.log.WithField("iface", u.name).WithError(err).Warn("ndp: resync")
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	if full {
		r.adopted = false
		r.dirty = true
	}
	if r.dirty {
		if err := r.reconcileLocked(); err != nil {
			r.log.WithError(err).Warn("ndp: resync")
		}
	}
}
