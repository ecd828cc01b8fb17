package ndp

import (
	"context"
	"net/netip"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/v6bridge/v6bridge/ndp/ndpproto"
)

// Unsolicited advertisements: unsolicitedCount per new address,
// unsolicitedInterval apart (RFC 4861 7.2.6: a few, spaced), all of them
// paced to Config.AnnounceRate so a start with thousands of addresses
// does not send them in one burst. First announcements go before repeats;
// with Config.PrimeRouter the first also solicits the uplink's router from
// the new address.
const (
	unsolicitedCount    = 3
	unsolicitedInterval = time.Second
	// DefaultAnnounceRate is Config.AnnounceRate's default, per second.
	DefaultAnnounceRate = 2000
	announceTick        = 10 * time.Millisecond
	peakWindow          = 100 * time.Millisecond // the peak rate is measured over
)

type announcement struct {
	addr netip.Addr
	left int
	due  time.Time
}

// announcer queues and paces announcements.
type announcer struct {
	r    *Responder
	mu   sync.Mutex
	kick chan struct{}
	// fresh are first announcements, in order; repeats are due in order
	// (each is queued one interval after it was last sent).
	fresh, repeats []announcement
	pending        map[netip.Addr]bool // queued in fresh
	peak           float64
}

func newAnnouncer(r *Responder) *announcer {
	return &announcer{r: r, kick: make(chan struct{}, 1), pending: map[netip.Addr]bool{}}
}

// queue schedules addrs for announcement from the start (again, for an
// address already queued).
func (a *announcer) queue(addrs []netip.Addr) {
	if len(addrs) == 0 {
		return
	}
	now := time.Now()
	a.mu.Lock()
	for _, ad := range addrs {
		if a.pending[ad] {
			continue
		}
		a.pending[ad] = true
		a.fresh = append(a.fresh, announcement{addr: ad, left: unsolicitedCount, due: now})
	}
	a.mu.Unlock()
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// status returns the announcements waiting and the peak rate so far.
func (a *announcer) status() (int, float64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.fresh) + len(a.repeats), a.peak
}

// take returns up to n announcements due at now, first ones first.
func (a *announcer) take(now time.Time, n int, buf []announcement) []announcement {
	a.mu.Lock()
	defer a.mu.Unlock()
	buf = buf[:0]
	k := min(n, len(a.fresh))
	for _, an := range a.fresh[:k] {
		delete(a.pending, an.addr)
		buf = append(buf, an)
	}
	a.fresh = a.fresh[k:]
	if len(a.fresh) == 0 {
		a.fresh = nil // let the backing array go
	}
	i := 0
	for ; i < len(a.repeats) && len(buf) < n && !a.repeats[i].due.After(now); i++ {
		buf = append(buf, a.repeats[i])
	}
	a.repeats = a.repeats[i:]
	for j := range buf {
		if buf[j].left--; buf[j].left > 0 {
			a.repeats = append(a.repeats, announcement{addr: buf[j].addr, left: buf[j].left, due: now.Add(unsolicitedInterval)})
		}
	}
	return buf
}

// next is when the next announcement is due (zero: none queued).
func (a *announcer) next() time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case len(a.fresh) > 0:
		return time.Now()
	case len(a.repeats) > 0:
		return a.repeats[0].due
	}
	return time.Time{}
}

// run sends the announcements as they fall due, at most rate per second.
func (a *announcer) run(ctx context.Context) {
	perTick := max(1, int(a.r.cfg.AnnounceRate*announceTick.Seconds()))
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var buf []announcement
	var windowStart time.Time
	windowSent := 0
	for {
		now := time.Now()
		buf = a.take(now, perTick, buf)
		for _, an := range buf {
			a.r.announce(ctx, an.addr, an.left == unsolicitedCount-1)
		}
		if len(buf) > 0 {
			if now.Sub(windowStart) >= peakWindow {
				windowStart, windowSent = now, 0
			}
			windowSent += len(buf)
			a.mu.Lock()
			a.peak = max(a.peak, float64(windowSent)/peakWindow.Seconds())
			a.mu.Unlock()
		}
		wait := time.Hour
		switch n := a.next(); {
		case n.IsZero():
		case len(buf) == perTick:
			wait = announceTick // more due: keep the pace
		default:
			wait = max(time.Until(n), announceTick)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-a.kick:
			if len(buf) == perTick {
				<-timer.C // keep the pace even when kicked
			}
		case <-timer.C:
		}
	}
}

// announce sends the unsolicited advertisement for addr on the uplink that
// answers for it, and with first and Config.PrimeRouter the priming
// solicitation to the uplink's router.
func (r *Responder) announce(ctx context.Context, addr netip.Addr, first bool) {
	var pkt, ns [ndpproto.NALen]byte
	var u *uplink
	prime := false
	r.mu.RLock()
	for _, c := range r.uplinks {
		if _, ok := c.st.Addrs[addr]; ok {
			u = c
		}
	}
	ok := u != nil && len(u.mac) == 6
	if ok {
		cfg := r.decideConfig(u)
		flags := byte(0x20)
		if cfg.Router {
			flags |= 0x80
		}
		ndpproto.BuildNA(&pkt, cfg.SourceFor(addr), ndpproto.AllNodes, addr, flags, u.mac)
		if first && r.cfg.PrimeRouter && u.gateway.IsValid() {
			ndpproto.BuildNS(&ns, addr, u.gateway, u.mac)
			prime = true
		}
	}
	r.mu.RUnlock()
	if !ok {
		return // removed meanwhile, or no MAC: say nothing
	}
	if err := r.sendPacket(ctx, u, pkt[:], [6]byte(ndpproto.AllNodesMAC)); err != nil {
		r.log.WithFields(logrus.Fields{"addr": addr, "iface": u.name}).WithError(err).Debug("ndp: unsolicited advertisement")
		return
	}
	r.unsolicited.Add(1)
	if prime {
		if err := r.sendPacket(ctx, u, ns[:], [6]byte(ndpproto.MulticastMACOf(ndpproto.SNMOf(u.gateway)))); err != nil {
			r.log.WithFields(logrus.Fields{"addr": addr, "iface": u.name}).WithError(err).Debug("ndp: priming solicitation")
			return
		}
		r.primed.Add(1)
	}
}
