package driver

import (
	"errors"
	"fmt"
	"net/netip"
)

// UsesSubnet reports whether a network records a subnet overlapping p:
// the IPAM's test for a pool still referenced. An IPv4 p is a placeholder
// pool: used by a network that records it, and by every network with an
// IPv4 pool whose record does not say which (older versions).
func (d *Driver) UsesSubnet(p netip.Prefix) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, n := range d.networks {
		if n.Subnet.Overlaps(p) {
			return true
		}
		if p.Addr().Is4() && n.IPv4 && (!n.IPv4Pool.IsValid() || n.IPv4Pool.Overlaps(p)) {
			return true
		}
	}
	return false
}

// StaleNetwork is a network v6bridge holds that the engine does not know.
type StaleNetwork struct {
	ID        string
	Bridge    string
	Subnet    netip.Prefix
	Endpoints int
}

// StaleNetworks lists the networks whose id is not in engine (the ids of
// the engine's networks), sorted by id. With apply it deletes them (their
// endpoints, bridge, firewall entries and record), as the engine's
// DeleteNetwork would have; the first failure is returned after trying
// every network.
func (d *Driver) StaleNetworks(engine map[string]bool, apply bool) ([]StaleNetwork, error) {
	d.mu.Lock()
	var out []StaleNetwork
	for _, n := range d.sortedNetworks() {
		if engine[n.ID] {
			continue
		}
		s := StaleNetwork{ID: n.ID, Bridge: n.Bridge, Subnet: n.Subnet}
		for _, e := range d.endpoints {
			if e.NetworkID == n.ID {
				s.Endpoints++
			}
		}
		out = append(out, s)
	}
	d.mu.Unlock()
	if !apply {
		return out, nil
	}
	var errs []error
	for _, s := range out {
		if err := d.DeleteNetwork(s.ID); err != nil {
			errs = append(errs, fmt.Errorf("delete stale network %s: %w", short(s.ID, 12), err))
			continue
		}
		d.log.WithField("network", short(s.ID, 12)).Info("deleted a network the engine does not know")
	}
	return out, errors.Join(errs...)
}
