// Package nftledger is the one owner of this process's nftables batches:
// the firewall (package nat: its tables, the coexistence rule in the
// engine's ip6tables, the fast-path probe) and the NDP ingress filter send
// every batch through a Ledger, which books the generations of the batches
// that leave the firewall's tables alone.
//
// The firewall keeps a patch on top of its last batch only while no other
// batch came since (the ruleset generation is still its own); after any
// other batch it lists its tables and compares them with a fingerprint, a
// cost that grows with the containers on the host. The NDP ingress filter
// commits a batch of its own for every Join, in a table of its own: booked
// in the Ledger, such generations are taken as harmless without a listing
// (Ours). The firewall's own batches (Batch) are sent but not booked: it
// keeps their generations itself, with the fingerprint of what they left.
//
// The name stays: a ledger is the book every transaction is posted
// through, and what it books is what the firewall asks of it.
package nftledger

import "sync"

// keep is how many recorded generations a Ledger remembers: more than the
// batches of this process between two of the firewall's.
const keep = 64

// Ledger sends this process's nftables batches (Flush, Batch, Discard)
// and records the generations of those that left the firewall's tables
// alone. The zero value is ready; a nil *Ledger sends alike but records
// nothing and vouches for nothing.
type Ledger struct {
	mu   sync.Mutex
	gens [keep]uint32
	n    int // recorded so far (gens is a ring once n > keep)
}

// record notes generation g as one of this process's batches that left the
// firewall's tables alone.
func (l *Ledger) record(g uint32) {
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
