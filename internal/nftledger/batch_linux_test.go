package nftledger

import (
	"testing"

	"github.com/google/nftables"
	"github.com/vishvananda/netns"

	"github.com/v6bridge/v6bridge/internal/nettest"
)

// TestPrivilegedBatches: in a throwaway namespace, the ledger vouches for
// its Flush batches alone, a Batch tells its generation only while no
// other batch came, and a BatchOn a stale generation is refused whole.
func TestPrivilegedBatches(t *testing.T) {
	ns := nettest.NewNS(t)
	ours, other := conn(t, ns), conn(t, ns) // other: another party's, around the ledger
	gen := func() uint32 {
		t.Helper()
		g, err := ours.GetGen()
		if err != nil {
			t.Fatal(err)
		}
		return g.ID
	}
	add := func(c *nftables.Conn, name string) {
		c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: name})
	}
	var l Ledger

	from := gen()
	add(ours, "flushed")
	if err := l.Flush(ours); err != nil {
		t.Fatal(err)
	}
	if to := gen(); to != from+1 || !l.Ours(from, to) {
		t.Errorf("a Flush batch moved the generation from %d to %d: want one step, vouched for", from, to)
	}

	from = gen()
	add(other, "foreign")
	if err := other.Flush(); err != nil {
		t.Fatal(err)
	}
	if l.Ours(from, gen()) {
		t.Error("vouched for another party's batch")
	}

	from = gen()
	add(ours, "firewall")
	b := l.Batch(ours)
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}
	if g, ok := b.Gen(); !ok || g != from+1 {
		t.Errorf("Batch.Gen = %d, %v; want %d, true", g, ok, from+1)
	}
	if l.Ours(from, from+1) {
		t.Error("vouched for a Batch: only Flush batches leave the firewall's tables alone")
	}
	add(other, "after")
	if err := other.Flush(); err != nil {
		t.Fatal(err)
	}
	if g, ok := b.Gen(); ok {
		t.Errorf("Batch.Gen = %d after another party's batch: want not certain", g)
	}

	stale := gen()
	add(other, "between")
	if err := other.Flush(); err != nil {
		t.Fatal(err)
	}
	add(ours, "refused")
	if err := l.BatchOn(ours, stale).Send(); err == nil {
		t.Fatal("a batch on a stale generation was taken")
	}
	if _, err := ours.ListTableOfFamily("refused", nftables.TableFamilyINet); err == nil {
		t.Error("the refused batch was applied")
	}
}

func conn(t *testing.T, ns netns.NsHandle) *nftables.Conn {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		t.Fatal(err)
	}
	return c
}
