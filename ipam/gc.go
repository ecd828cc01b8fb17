package ipam

import (
	"fmt"
	"net/netip"
	"sort"
	"time"

	"github.com/sirupsen/logrus"
)

// MinReclaimAge is how old a stale pool must be before a request of an
// overlapping subnet reclaims it: the engine requests a pool and its
// gateway a moment before it creates the network that references them.
const MinReclaimAge = 30 * time.Second

// DefaultGrace is how long GC leaves a stale pool or a sticky name whose
// address is free before reclaiming it.
const DefaultGrace = 10 * time.Minute

// StalePool is a pool no network references and no address but its
// gateway uses.
type StalePool struct {
	ID      string
	Prefix  netip.Prefix
	Created time.Time `json:",omitzero"` // zero: before v6bridge recorded it
}

// StaleName is a remembered endpoint name whose address has been free for
// longer than the grace period.
type StaleName struct {
	Pool string
	Name string
	Addr netip.Addr
}

// Reclaimable is what GC found (and, applied, removed).
type Reclaimable struct {
	Pools []StalePool
	Names []StaleName
}

// stale reports whether p is unreferenced, holds no address but its
// gateway and is older than minAge. A placeholder pool's gateway is
// reserved, not allocated; Referenced says whether a network records the
// placeholder block (conservatively: the driver counts every network
// whose record does not name its block). m.mu is held.
func (m *IPAM) stale(p *pool, minAge time.Duration) bool {
	if m.referenced == nil || p.rec.Placeholder && p.rec.Created.IsZero() || m.referenced(p.rec.Prefix) {
		return false // a placeholder of an older version: its network may not record it
	}
	n := p.allocated()
	if p.gateway.IsValid() && !p.rec.Placeholder {
		n--
	}
	if n > 0 {
		return false
	}
	return p.rec.Created.IsZero() || m.now().Sub(p.rec.Created) >= minAge
}

// GC finds stale state: pools no network references and no address but
// their gateway uses (IPv6 pools, and placeholder IPv4 pools of this
// version) older than grace, and remembered endpoint names whose
// address has been free for longer than grace. With apply it removes
// them. It needs Config.Referenced; without it nothing is stale.
func (m *IPAM) GC(grace time.Duration, apply bool) (Reclaimable, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var r Reclaimable
	for _, id := range m.sortedIDs() {
		p := m.pools[id]
		if m.stale(p, grace) {
			r.Pools = append(r.Pools, StalePool{ID: id, Prefix: p.rec.Prefix, Created: p.rec.Created})
			if apply {
				if err := m.releaseLocked(id, "Stale pool reclaimed"); err != nil {
					return r, err
				}
			}
			continue
		}
		var names []StaleName
		for name, a := range p.names {
			if t, free := p.freed[a]; free && !p.has(a) && m.now().Sub(t) >= grace {
				names = append(names, StaleName{Pool: id, Name: name, Addr: a})
			}
		}
		sort.Slice(names, func(i, j int) bool { return names[i].Name < names[j].Name })
		for _, n := range names {
			if apply {
				if err := m.be.deleteName(id, n.Name); err != nil {
					return r, err
				}
				delete(p.names, n.Name)
			}
			r.Names = append(r.Names, n)
		}
		if apply {
			for a := range p.freed {
				if !m.remembered(p, a) {
					delete(p.freed, a)
				}
			}
		}
	}
	if apply && len(r.Names) > 0 {
		m.log.WithField("names", len(r.Names)).Info("Forgot endpoint names whose address stayed free")
	}
	return r, nil
}

// remembered reports whether a name remembers address a. m.mu is held.
func (m *IPAM) remembered(p *pool, a netip.Addr) bool {
	for _, b := range p.names {
		if b == a {
			return true
		}
	}
	return false
}

// forgetOtherNames drops the names other than keep that remember a, which
// now belongs to another endpoint: a name record lives only as long as its
// address is its own. m.mu is held.
func (m *IPAM) forgetOtherNames(p *pool, a netip.Addr, keep string) {
	for name, b := range p.names {
		if b != a || name == keep {
			continue
		}
		if err := m.be.deleteName(p.rec.ID, name); err != nil {
			m.log.WithError(err).WithFields(logrus.Fields{"pool": p.rec.ID, "endpoint": name}).Warn("forget endpoint name")
			continue
		}
		delete(p.names, name)
	}
}

// String describes r for logs.
func (r Reclaimable) String() string {
	return fmt.Sprintf("%d stale pools, %d stale endpoint names", len(r.Pools), len(r.Names))
}
