package nftledger

import "testing"

func TestLedgerOurs(t *testing.T) {
	var l Ledger
	for _, g := range []uint32{11, 12, 14} {
		l.record(g)
	}
	for _, tt := range []struct {
		from, to uint32
		want     bool
	}{
		{10, 10, true},  // nothing moved
		{10, 11, true},  // one batch of ours
		{10, 12, true},  // two
		{10, 13, false}, // 13 was somebody else's
		{12, 14, false},
		{13, 14, true},
		{14, 15, false}, // not (yet) recorded
		{14, 10, false}, // backwards: a span of almost 2^32
	} {
		if got := l.Ours(tt.from, tt.to); got != tt.want {
			t.Errorf("Ours(%d, %d) = %v, want %v", tt.from, tt.to, got, tt.want)
		}
	}
}

func TestLedgerWrapsAndForgets(t *testing.T) {
	var l Ledger
	max := ^uint32(0)
	l.record(max)
	l.record(0)
	if !l.Ours(max-1, 0) {
		t.Error("the generation counter wrapped: want ours")
	}
	for g := uint32(1); g <= keep; g++ {
		l.record(g)
	}
	if l.Ours(max-1, max) {
		t.Errorf("%d recorded after it: the oldest should be forgotten", keep)
	}
	if !l.Ours(0, keep) {
		t.Error("the last recorded generations should be remembered")
	}
	if l.Ours(0, keep+1) {
		t.Error("a span longer than the ledger keeps cannot be vouched for")
	}
}

func TestNilLedger(t *testing.T) {
	var l *Ledger
	l.record(1)
	if l.Ours(0, 1) || l.Ours(1, 1) {
		t.Error("a nil ledger vouches for nothing")
	}
}
