// Package nftledger tells the nftables generations this process made apart
// from other parties' batches. The firewall (package nat) keeps a patch
// on top of its last batch only while no other batch came since (the
// ruleset generation is still its own); after any other batch it lists its
// tables and compares them with a fingerprint, a cost that grows with the
// containers on the host. The NDP ingress filter commits a batch of its
// own for every Join, in a table of its own: recorded in a Ledger, those
// generations are taken as harmless without a listing.
package nftledger

import "sync"

// keep is how many recorded generations a Ledger remembers: more than the
// batches of this process between two of the firewall's.
const keep = 64

// Ledger records generations committed by this process in tables the
// firewall does not own. The zero value is ready; a nil *Ledger records
// nothing and vouches for nothing.
type Ledger struct {
	mu   sync.Mutex
	gens [keep]uint32
	n    int // recorded so far (gens is a ring once n > keep)
}

// Record notes generation g as one of this process's batches that left the
// firewall's tables alone.
func (l *Ledger) Record(g uint32) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.gens[l.n%keep] = g
	l.n++
}

// Ours reports whether every generation after from, up to and including
// to, was recorded: the ruleset moved from from to to by this process's
// own batches in other tables only. Generation numbers wrap around.
func (l *Ledger) Ours(from, to uint32) bool {
	if l == nil {
		return false
	}
	span := to - from // wraps like the kernel's counter
	if span == 0 {
		return true
	}
	if span > keep {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for g := from + 1; g != to+1; g++ {
		if !l.recorded(g) {
			return false
		}
	}
	return true
}

func (l *Ledger) recorded(g uint32) bool {
	for i := range min(l.n, keep) {
		if l.gens[i] == g {
			return true
		}
	}
	return false
}
