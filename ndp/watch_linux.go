package ndp

import (
	"context"
	"net/netip"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netlink"
)

// watchLoop follows link and address changes of the uplinks, and resyncs
// periodically in case a notification was lost.
func (r *Responder) watchLoop(ctx context.Context) {
	for ctx.Err() == nil {
		r.watch(ctx)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func (r *Responder) watch(ctx context.Context) {
	done := make(chan struct{})
	defer close(done)
	links := make(chan netlink.LinkUpdate, 64)
	addrs := make(chan netlink.AddrUpdate, 64)
	linkOpts, addrOpts := netlink.LinkSubscribeOptions{}, netlink.AddrSubscribeOptions{}
	if !r.own {
		ns := r.ns
		linkOpts.Namespace, addrOpts.Namespace = &ns, &ns
	}
	if err := netlink.LinkSubscribeWithOptions(links, done, linkOpts); err != nil {
		r.log.WithError(err).Warn("ndp: subscribe to link changes")
		return
	}
	if err := netlink.AddrSubscribeWithOptions(addrs, done, addrOpts); err != nil {
		r.log.WithError(err).Warn("ndp: subscribe to address changes")
		return
	}
	// Catch up with what happened before the subscriptions.
	r.resync(ctx, false)
	tick := time.NewTicker(resyncInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			r.resync(ctx, true)
		case lu, ok := <-links:
			if !ok {
				return
			}
			r.linkChanged(int(lu.Index))
		case au, ok := <-addrs:
			if !ok {
				return
			}
			r.linkChanged(au.LinkIndex)
		}
	}
}

// linkChanged refreshes the uplink with that index, if it is one.
func (r *Responder) linkChanged(index int) {
	for _, u := range r.uplinks {
		if u.index != index {
			continue
		}
		r.mu.RLock()
		closed := r.closed
		r.mu.RUnlock()
		if closed {
			return
		}
		changed, err := r.refreshUplink(u)
		if err != nil {
			r.log.WithField("iface", u.name).WithError(err).Warn("ndp: refresh uplink")
			return
		}
		r.mu.Lock()
		if r.cfg.Mode == ModeKernel {
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
				r.log.WithField("iface", u.name).WithError(err).Warn("ndp: reconcile after uplink change")
			}
		}
		r.mu.Unlock()
	}
}

// resync re-reads every uplink and re-applies the state; full also
// re-reads the kernel's proxy entries.
func (r *Responder) resync(ctx context.Context, full bool) {
	for _, u := range r.uplinks {
		if ctx.Err() != nil {
			return
		}
		r.linkChanged(u.index)
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
