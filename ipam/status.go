package ipam

import (
	"net/netip"
	"sort"
)

// PoolStatus describes a pool for the status command.
type PoolStatus struct {
	ID          string
	Prefix      netip.Prefix
	Range       netip.Prefix
	Placeholder bool
	Gateway     netip.Addr // zero if no gateway was requested; always set for placeholders
	Allocated   int        // addresses allocated from the pool, gateway included (a placeholder's is reserved, not allocated)
	// Capacity is how many addresses Range can hand out, saturated at
	// math.MaxUint64 (a /64 has more).
	Capacity uint64
}

// Pool returns the pool id; ok is false if there is none.
func (m *IPAM) Pool(id string) (Pool, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.pools[id]
	if !ok {
		return Pool{}, false
	}
	return p.public(), true
}

// Pools describes every pool: IPv6 pools by prefix, then placeholder pools
// by ID.
func (m *IPAM) Pools() []PoolStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]PoolStatus, 0, len(m.pools))
	for _, id := range m.sortedIDs() {
		p := m.pools[id]
		s := PoolStatus{
			ID:          id,
			Prefix:      p.rec.Prefix,
			Range:       p.rec.Range,
			Placeholder: p.rec.Placeholder,
			Gateway:     p.gateway,
			Allocated:   p.allocated(),
			Capacity:    p.alloc.capacity(),
		}
		out = append(out, s)
	}
	return out
}

// sortedIDs lists pool IDs: IPv6 pools by prefix, then placeholders by ID.
// m.mu is held.
func (m *IPAM) sortedIDs() []string {
	ids := make([]string, 0, len(m.pools))
	for id := range m.pools {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool {
		a, b := m.pools[ids[i]].rec, m.pools[ids[j]].rec
		if a.Placeholder != b.Placeholder {
			return !a.Placeholder
		}
		if c := a.Prefix.Addr().Compare(b.Prefix.Addr()); c != 0 {
			return c < 0
		}
		if a.Prefix.Bits() != b.Prefix.Bits() {
			return a.Prefix.Bits() < b.Prefix.Bits()
		}
		return a.ID < b.ID
	})
	return ids
}
