package ipam

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// clock is a settable time for GC tests.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }
func prefixes(ps ...string) map[string]bool {
	m := map[string]bool{}
	for _, p := range ps {
		m[p] = true
	}
	return m
}

// gcIPAM is an IPAM on disk whose networks are the keys of used.
func gcIPAM(t *testing.T, dir string, used map[string]bool, c *clock) *IPAM {
	t.Helper()
	m, err := New(Config{StateDir: dir, Referenced: func(p netip.Prefix) bool { return used[p.String()] }})
	if err != nil {
		t.Fatal(err)
	}
	m.now = c.now
	return m
}

func TestGCReclaimsStalePoolsAfterGrace(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	used := prefixes("fd00:1::/112")
	m := gcIPAM(t, t.TempDir(), used, c)
	live := mustPool(t, m, "fd00:1::/112", "")
	stale := mustPool(t, m, "fd00:2::/112", "")
	busy := mustPool(t, m, "fd00:3::/112", "")
	for _, p := range []Pool{live, stale, busy} {
		if _, err := m.RequestAddress(p.ID, "", gwOpts); err != nil {
			t.Fatal(err)
		}
	}
	mustAddr(t, m, busy.ID, "") // a container the engine still has
	// Placeholder IPv4 pools (engines < 28): one a network records, one
	// with a container's address; one of an older version whose network
	// may not record it (no creation time) is never judged.
	for range 3 {
		p, err := m.RequestPool(PoolRequest{})
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case len(used) == 1:
			used[p.Prefix.String()] = true
		case len(used) == 2:
			used["busy placeholder"] = true
			mustAddr(t, m, p.ID, "")
		default:
			m.pools[p.ID].rec.Created = time.Time{}
		}
	}
	if r, _ := m.GC(DefaultGrace, false); len(r.Pools) != 0 {
		t.Errorf("young pools found stale: %+v", r.Pools)
	}
	c.advance(DefaultGrace)
	r, err := m.GC(DefaultGrace, false)
	if err != nil {
		t.Fatal(err)
	}
	want := []StalePool{{ID: stale.ID, Prefix: stale.Prefix, Created: c.t.Add(-DefaultGrace)}}
	if diff := cmp.Diff(want, r.Pools, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("stale pools (-want +got):\n%s", diff)
	}
	if _, ok := m.Pool(stale.ID); !ok {
		t.Fatal("a dry run removed the pool")
	}
	if _, err := m.GC(DefaultGrace, true); err != nil {
		t.Fatal(err)
	}
	if _, ok := m.Pool(stale.ID); ok {
		t.Error("stale pool survived GC --apply")
	}
	for _, p := range []Pool{live, busy} {
		if _, ok := m.Pool(p.ID); !ok {
			t.Errorf("pool %s in use was reclaimed", p.ID)
		}
	}
}

// After the engine's data is wiped the same subnet is requested again:
// the stale pool is reclaimed at once, unless a network still uses it.
func TestRequestOfSameSubnetReclaimsStalePool(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	used := prefixes()
	m := gcIPAM(t, t.TempDir(), used, c)
	old := mustPool(t, m, "fd00:7::/112", "")
	if _, err := m.RequestAddress(old.ID, "", gwOpts); err != nil {
		t.Fatal(err)
	}
	// Moments later (a network being created): not reclaimed.
	if _, err := m.RequestPool(PoolRequest{Pool: "fd00:7::/112", V6: true}); !errors.Is(err, ErrPoolOverlap) {
		t.Fatalf("young pool: %v, want ErrPoolOverlap", err)
	}
	c.advance(MinReclaimAge)
	used["fd00:7::/112"] = true
	_, err := m.RequestPool(PoolRequest{Pool: "fd00:7::/112", V6: true})
	if !errors.Is(err, ErrPoolOverlap) || !strings.Contains(err.Error(), "v6bridge gc") {
		t.Fatalf("referenced pool: %v, want ErrPoolOverlap with a hint at v6bridge gc", err)
	}
	delete(used, "fd00:7::/112")
	p, err := m.RequestPool(PoolRequest{Pool: "fd00:7::/112", V6: true})
	if err != nil {
		t.Fatalf("stale pool not reclaimed: %v", err)
	}
	if _, err := m.RequestAddress(p.ID, "", gwOpts); err != nil {
		t.Errorf("gateway of the new pool: %v (old allocations kept?)", err)
	}
}

// 2,000 request/release cycles with distinct endpoint names leave at most
// one name per address, and none once their addresses stayed free for the
// grace period.
func TestNamesArePrunedWithTheirAddress(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	be := newMem()
	m, err := newIPAM(Config{Referenced: func(netip.Prefix) bool { return true }}, be)
	if err != nil {
		t.Fatal(err)
	}
	m.now = c.now
	p := mustPool(t, m, "fd00:8::/120", "")
	for i := range 2000 {
		a, err := m.RequestAddress(p.ID, "", AddressOptions{Name: fmt.Sprintf("job-%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.ReleaseAddress(p.ID, a.Addr().String()); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(be.names[p.ID]); n > 255 {
		t.Errorf("%d name records for a pool of 255 addresses", n)
	}
	c.advance(DefaultGrace)
	keep, err := m.RequestAddress(p.ID, "", AddressOptions{Name: "still-here"})
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := m.GC(DefaultGrace, false); len(r.Names) == 0 || len(be.names[p.ID]) < len(r.Names) {
		t.Fatalf("dry run found %d stale names, %d records", len(r.Names), len(be.names[p.ID]))
	}
	if _, err := m.GC(DefaultGrace, true); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"still-here"}, slices.Collect(maps.Keys(be.names[p.ID]))); diff != "" {
		t.Errorf("names left (-want +got):\n%s", diff)
	}
	// A restart reads one name, and still-here keeps its address.
	m2, err := newIPAM(Config{}, be)
	if err != nil {
		t.Fatal(err)
	}
	if err := m2.ReleaseAddress(p.ID, keep.Addr().String()); err != nil {
		t.Fatal(err)
	}
	if got, err := m2.RequestAddress(p.ID, "", AddressOptions{Name: "still-here"}); err != nil || got != keep {
		t.Errorf("still-here got %v (%v), want %v", got, err, keep)
	}
}
