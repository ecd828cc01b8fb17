package ndp

import (
	"net/netip"
	"testing"
	"time"

	"github.com/v6bridge/v6bridge/ndp/internal/ndptest"
)

// TestAnnouncerTake: the pacing logic without a clock or sockets. Each
// take hands out at most n; first announcements go before repeats; every
// address is announced unsolicitedCount times, unsolicitedInterval apart;
// queuing an address again while its first announcement waits adds
// nothing.
func TestAnnouncerTake(t *testing.T) {
	a := newAnnouncer(nil)
	var addrs []netip.Addr
	for i := range 25 {
		addrs = append(addrs, ndptest.Nth(ndptest.ContainerNet.Addr(), i+1))
	}
	a.queue(addrs)
	a.queue(addrs[:5]) // again: still one first announcement each
	now := time.Unix(1000, 0)
	sent := map[netip.Addr][]time.Time{}
	var order []netip.Addr
	var buf []announcement
	for step := 0; step < 1000; step++ {
		buf = a.take(now, 10, buf)
		if len(buf) > 10 {
			t.Fatalf("took %d, at most 10", len(buf))
		}
		for _, an := range buf {
			sent[an.addr] = append(sent[an.addr], now)
			order = append(order, an.addr)
		}
		if n, _ := a.status(); n == 0 {
			break
		}
		now = now.Add(100 * time.Millisecond)
	}
	for i, ad := range addrs {
		if order[i] != ad {
			t.Fatalf("announcement %d is %s, want the first announcements in order (%s)", i, order[i], ad)
		}
		ts := sent[ad]
		if len(ts) != unsolicitedCount {
			t.Fatalf("%s announced %d times, want %d", ad, len(ts), unsolicitedCount)
		}
		for j := 1; j < len(ts); j++ {
			if gap := ts[j].Sub(ts[j-1]); gap < unsolicitedInterval {
				t.Errorf("%s: announcements %d and %d %v apart, want at least %v", ad, j-1, j, gap, unsolicitedInterval)
			}
		}
	}
}
