package ndp

import (
	"hash/maphash"
	"net/netip"
)

// Budgets of the native responder: how many advertisements it sends, so a
// flood of solicitations for addresses it answers for costs a bounded
// amount of CPU and never turns it into an amplifier. A router resolving
// thousands of new addresses at once stays below the per-solicitor
// budget; a few solicitors cannot take the whole budget from it.
const (
	// DefaultSourceRate answers per second to one solicitor (burst twice).
	DefaultSourceRate = 5000
	// DefaultTotalRate answers per second in all (burst the same).
	DefaultTotalRate = 30000
	// DefaultDADRate duplicate address detection defences per second for
	// one target (burst 3): each goes to every node on the link.
	DefaultDADRate = 1
)

// Reasons the budgets give for not answering (counted like Decide's).
const (
	ReasonSourceLimit = "rate limit: solicitor over its budget"
	ReasonTotalLimit  = "rate limit: responder over its budget"
	ReasonDADLimit    = "rate limit: dad defences of the target over budget"
)

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

// limiter applies the budgets. Not safe for concurrent use: each capture
// loop owns one. Rates of 0 mean the defaults; negative ones no limit.
type limiter struct {
	sourceRate, totalRate, dadRate float64
	seed                           maphash.Seed
	total                          bucket
	sources                        [sourceSlots]bucket
	dad                            map[netip.Addr]*bucket
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

func newLimiter(sourceRate, totalRate, dadRate float64) *limiter {
	l := &limiter{seed: maphash.MakeSeed(), dad: map[netip.Addr]*bucket{}}
	l.sourceRate, l.totalRate, l.dadRate = limitRates(sourceRate, totalRate, dadRate)
	return l
}

// allow reports whether an answer of kind to src for target may go out at
// now (nanoseconds), and if not the reason.
func (l *limiter) allow(now int64, src, target netip.Addr, kind int) string {
	if kind == kindDAD && l.dadRate >= 0 {
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
	if kind != kindDAD && l.sourceRate >= 0 {
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
