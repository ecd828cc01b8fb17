package ndpproto

import (
	"hash/maphash"
	"net"
	"net/netip"
	"slices"
)

// Budgets of the native responder: how many advertisements it sends, so a
// flood of solicitations for addresses it answers for costs a bounded
// amount of CPU and never turns it into an amplifier. A router resolving
// thousands of new addresses at once stays below the per-solicitor
// budget; a few solicitors cannot take the whole budget from it.
//
// The uplink's default router has a budget of its own that nobody else
// can spend: its solicitations are told apart by source address AND
// link-layer source (the frame's source MAC and the Source Link-Layer
// Address option, when there is one, must be the router's), so a flood
// forging the router's IPv6 source from another MAC spends the shared
// budgets, never the router's.
const (
	// DefaultSourceRate answers per second to one solicitor (burst twice).
	DefaultSourceRate = 5000
	// DefaultTotalRate answers per second in all (burst the same).
	DefaultTotalRate = 30000
	// DefaultDADRate duplicate address detection defences per second for
	// one target (burst 3): each goes to every node on the link.
	DefaultDADRate = 1
	// DefaultRouterRate answers per second reserved for the uplink's
	// default router (burst twice), outside the total.
	DefaultRouterRate = 10000
)

// Reasons the budgets give for not answering (counted like Decide's).
const (
	ReasonSourceLimit = "rate limit: solicitor over its budget"
	ReasonTotalLimit  = "rate limit: responder over its budget"
	ReasonDADLimit    = "rate limit: dad defences of the target over budget"
	ReasonRouterLimit = "rate limit: router over its reserved budget"
	// ReasonOverflowLimit: the in-kernel meter of solicitors is full;
	// the solicitors it cannot hold share one budget of a solicitor.
	ReasonOverflowLimit = "rate limit: solicitors beyond the meter over their shared budget"
)

// maxRouterAddrs bounds the addresses a RouterID holds (the gateway
// first, then those the neighbour cache gives its MAC).
const maxRouterAddrs = 4

// RouterID is the uplink's default router as the budgets know it: its MAC
// and addresses. The zero RouterID knows no router: nobody has a reserve.
type RouterID struct {
	MAC   [6]byte
	Addrs [maxRouterAddrs]netip.Addr // the zero Addr: unused
}

// NewRouterID returns the router with mac and addrs (the first ones
// first, up to maxRouterAddrs, without zones or repeats), or the zero
// RouterID when mac is not a unicast MAC or no address is unicast.
func NewRouterID(mac net.HardwareAddr, addrs []netip.Addr) RouterID {
	var id RouterID
	if len(mac) != 6 || !unicastMAC([6]byte(mac)) {
		return id
	}
	n := 0
	for _, a := range addrs {
		a = a.WithZone("")
		if n == maxRouterAddrs || !a.Is6() || a.IsMulticast() || a.IsUnspecified() || slices.Contains(id.Addrs[:n], a) {
			continue
		}
		id.Addrs[n] = a
		n++
	}
	if n == 0 {
		return RouterID{}
	}
	id.MAC = [6]byte(mac)
	return id
}

// Known reports whether id names a router.
func (id RouterID) Known() bool { return id.Addrs[0].IsValid() }

// List returns id's addresses.
func (id RouterID) List() []netip.Addr {
	var out []netip.Addr
	for _, a := range id.Addrs {
		if a.IsValid() {
			out = append(out, a)
		}
	}
	return out
}

// Sent reports whether ns comes from the router: its source is one of
// the router's addresses, its frame is from the router's MAC, and its
// Source Link-Layer Address option, if any, names the router's MAC.
func (id *RouterID) Sent(ns *FastNS) bool {
	return id.Known() && ns.hasLink && ns.linkSrc == id.MAC && (!ns.hasSLLA || ns.slla == id.MAC) &&
		slices.Contains(id.Addrs[:], ns.Src)
}

// EUI64LinkLocal is the link-local address a host with mac forms by
// modified EUI-64 (RFC 4291 appendix A).
func EUI64LinkLocal(mac net.HardwareAddr) netip.Addr {
	if len(mac) != 6 {
		return netip.Addr{}
	}
	return netip.AddrFrom16([16]byte{0: 0xfe, 1: 0x80, 8: mac[0] ^ 2, 9: mac[1], 10: mac[2], 11: 0xff, 12: 0xfe, 13: mac[3], 14: mac[4], 15: mac[5]})
}

// unicastMAC reports whether mac can be answered to: neither a group
// (multicast, broadcast) address nor all zeros.
func unicastMAC(mac [6]byte) bool {
	return mac[0]&1 == 0 && mac != [6]byte{}
}

// bucket is a token bucket on a nanosecond clock.
type bucket struct {
	tokens float64
	last   int64
}

// take refills b for the time since its last use at rate per second up to
// burst, and takes a token if there is one.
func (b *bucket) take(now int64, rate, burst float64) bool {
	if b.last == 0 {
		b.tokens = burst
	} else if dt := now - b.last; dt > 0 {
		b.tokens = min(burst, b.tokens+float64(dt)*rate/1e9)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// sourceSlots is the size of the per-solicitor table: solicitors are
// hashed into it with a per-process seed, so memory stays fixed whatever
// the number of sources and an attacker cannot aim at the router's slot.
const sourceSlots = 4096

// Limiter applies the budgets. Not safe for concurrent use: each capture
// loop owns one. Rates of 0 mean the defaults; negative ones no limit.
type Limiter struct {
	sourceRate, totalRate, dadRate, routerRate float64
	seed                                       maphash.Seed
	total, router                              bucket
	sources                                    [sourceSlots]bucket
	dad                                        map[netip.Addr]*bucket
}

// limitRates resolves Config's budgets: 0 means the default, negative no
// limit (kept negative).
func limitRates(sourceRate, totalRate, dadRate float64) (source, total, dad float64) {
	def := func(v, d float64) float64 {
		if v == 0 {
			return d
		}
		return v
	}
	return def(sourceRate, DefaultSourceRate), def(totalRate, DefaultTotalRate), def(dadRate, DefaultDADRate)
}

// routerRate resolves Config.RouterRate the same way.
func routerRate(rate float64) float64 {
	if rate == 0 {
		return DefaultRouterRate
	}
	return rate
}

// NewLimiter makes a Limiter with the given rates (answers per second; 0
// the default, negative no limit) for each solicitor, in total, for the DAD
// defences of each target, and for the router's reserve.
func NewLimiter(sourceRate, totalRate, dadRate, router float64) *Limiter {
	l := &Limiter{seed: maphash.MakeSeed(), dad: map[netip.Addr]*bucket{}, routerRate: routerRate(router)}
	l.sourceRate, l.totalRate, l.dadRate = limitRates(sourceRate, totalRate, dadRate)
	return l
}

// Allow reports whether an answer of kind to src for target may go out at
// now (nanoseconds), and if not the reason. fromRouter (RouterID.Sent)
// takes it from the router's reserve, which nothing else spends, and
// not from the others' budgets.
func (l *Limiter) Allow(now int64, src, target netip.Addr, kind int, fromRouter bool) string {
	if fromRouter && kind != KindDAD {
		if l.routerRate >= 0 && !l.router.take(now, l.routerRate, 2*l.routerRate) {
			return ReasonRouterLimit
		}
		return ""
	}
	if kind == KindDAD && l.dadRate >= 0 {
		b := l.dad[target]
		if b == nil {
			if len(l.dad) >= 1<<16 { // bounded: forget everything rather than grow
				clear(l.dad)
			}
			b = &bucket{}
			l.dad[target] = b
		}
		if !b.take(now, l.dadRate, 3) {
			return ReasonDADLimit
		}
	}
	if kind != KindDAD && l.sourceRate >= 0 {
		a := src.As16()
		s := &l.sources[maphash.Bytes(l.seed, a[:])%sourceSlots]
		if !s.take(now, l.sourceRate, 2*l.sourceRate) {
			return ReasonSourceLimit
		}
	}
	if l.totalRate >= 0 && !l.total.take(now, l.totalRate, l.totalRate) {
		return ReasonTotalLimit
	}
	return ""
}
