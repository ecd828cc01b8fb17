package ipam

import (
	"net/netip"
	"testing"
)

// benchAllocate measures one dynamic allocation (and the release of the
// oldest address, so the pool stays at live addresses) in subnet. It fills
// the pool with live addresses first; live is also reported.
func benchAllocate(b *testing.B, m *IPAM, subnet string, live int) {
	p, err := m.RequestPool(PoolRequest{Pool: subnet, V6: true})
	if err != nil {
		b.Fatal(err)
	}
	ring := make([]netip.Addr, live)
	for i := range ring {
		a, err := m.RequestAddress(p.ID, "", AddressOptions{})
		if err != nil {
			b.Fatal(err)
		}
		ring[i] = a.Addr()
	}
	b.ReportAllocs()
	b.ReportMetric(float64(live), "live-addrs")
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		j := i % live
		if err := m.ReleaseAddress(p.ID, ring[j].String()); err != nil {
			b.Fatal(err)
		}
		a, err := m.RequestAddress(p.ID, "", AddressOptions{})
		if err != nil {
			b.Fatal(err)
		}
		ring[j] = a.Addr()
	}
}

func benchBoth(b *testing.B, subnet string, live, liveDisk int) {
	b.Run("memory", func(b *testing.B) {
		m, err := newIPAM(Config{}, newMem())
		if err != nil {
			b.Fatal(err)
		}
		benchAllocate(b, m, subnet, live)
	})
	b.Run("disk", func(b *testing.B) {
		m, err := New(Config{StateDir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		benchAllocate(b, m, subnet, liveDisk)
	})
}

// BenchmarkAllocate112 allocates in a nearly full /112 (60,000 of 65,535
// addresses live; 100k and more allocations over a benchmark run wrap the
// range). The disk variant includes the two fsynced file writes.
func BenchmarkAllocate112(b *testing.B) { benchBoth(b, "fd12::/112", 60000, 1000) }

// BenchmarkAllocate64 allocates in a /64 holding 100,000 live addresses.
func BenchmarkAllocate64(b *testing.B) { benchBoth(b, "fd12::/64", 100000, 1000) }
