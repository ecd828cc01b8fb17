package driver

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/v6bridge/v6bridge/fwstate"
	"github.com/v6bridge/v6bridge/netspec"
)

// syncAllLocked rebuilds the firewall and NDP state from the records and
// applies both: the whole-state half of syncLocked.
func (d *Driver) syncAllLocked() error {
	d.synced = false
	s := d.firewallState()
	if d.cfg.Firewall != nil {
		// Apply validates the state (conflicting host ports too) once.
		if err := d.cfg.Firewall.Apply(s); err != nil {
			return fmt.Errorf("apply firewall: %w", err)
		}
	}
	if d.cfg.Neighbors != nil {
		addrs, ranges := d.ndpTargets()
		if err := d.cfg.Neighbors.SetTargets(addrs, ranges); err != nil {
			return fmt.Errorf("ndp: %w", err)
		}
	}
	d.synced, d.syncedHostAddrs = true, s.HostAddrs
	return nil
}

// advertiseLocked tells the routers which containers need advertisements.
func (d *Driver) advertiseLocked() {
	if d.cfg.Routers != nil {
		d.cfg.Routers.SetTargets(d.routerTargets())
	}
}

// routerTargets returns, keyed by bridge, the addresses of the endpoints
// that need router advertisements: on engines before 28, the routed
// endpoints of each sandbox in which no endpoint carries the static ::/0
// any more (its network was disconnected). No other container hears one:
// a starting container that learnt a default route before its engine
// installs the static ::/0 would fail to start (EEXIST).
func (d *Driver) routerTargets() map[string][]netip.Addr {
	out := map[string][]netip.Addr{}
	legacy := false
	for _, n := range d.networks {
		legacy = legacy || !n.EngineSetsGatewayRoute && n.Mode != netspec.ModeInternal
	}
	if !legacy { // engines >= 28 only: no sandbox needs one (not a walk of them all per Join)
		return out
	}
	for _, es := range d.pub.bySandbox {
		routed := false
		for _, e := range es {
			routed = routed || (e.Joined && e.DefaultRoute)
		}
		if routed {
			continue
		}
		for _, e := range es {
			if e.Joined && d.needsLegacyRoute(e) {
				b := d.networks[e.NetworkID].Bridge
				out[b] = append(out[b], e.Addr.Addr())
			}
		}
	}
	for _, addrs := range out {
		slices.SortFunc(addrs, netip.Addr.Compare)
	}
	return out
}

// needsLegacyRoute reports whether e is an endpoint with an address on a
// non-internal network an engine before 28 made: one whose container gets
// its default route from the driver (static ::/0, else advertisements).
func (d *Driver) needsLegacyRoute(e *Endpoint) bool {
	n := d.networks[e.NetworkID]
	return n != nil && !n.EngineSetsGatewayRoute && n.Mode != netspec.ModeInternal && e.Addr.IsValid()
}

// change names what changed in the records since the last sync: a few
// endpoints, and the sandboxes all of whose endpoints count (their
// published ports may have moved). everything is any other change.
type change struct {
	all       bool
	sandboxes []string
	endpoints []*Endpoint
}

// everything is the change of networks, of the host, or at start-up.
var everything = change{all: true}

// syncLocked brings the firewall, NDP and router advertisements in line
// with the records: the one way the driver's state reaches the kernel. A
// change of a few endpoints costs what they change, not what all
// endpoints hold (attaching the thousandth container costs what the first
// did). The whole state is rebuilt instead for everything, before the
// first whole sync succeeded, after any failed sync, and when the host
// addresses changed (kube-proxy's needFullSync). Syncing the same change
// again is a no-op, so a handler undoes a change by restoring the records
// and syncing the same change again.
func (d *Driver) syncLocked(c change) error {
	var err error
	if c.all || d.hostAddrsChanged() {
		err = d.syncAllLocked()
	} else {
		err = d.syncSomeLocked(c)
	}
	if err != nil {
		return err
	}
	d.advertiseLocked()
	if d.cfg.Forwarder != nil {
		if err := d.cfg.Forwarder.Set(d.pub.forwards()); err != nil {
			if !c.all {
				return err // the request that asked for a held port fails
			}
			// At start or a network change: the forwards that bind run;
			// the others bind when their ports are free (Status).
			d.log.WithError(err).Warn("forward ports published on the host's loopback address")
		}
	}
	return nil
}

// syncSomeLocked is syncLocked for a change of a few endpoints.
func (d *Driver) syncSomeLocked(c change) error {
	es := slices.Clone(c.endpoints)
	seen := map[*Endpoint]bool{}
	for _, sb := range c.sandboxes {
		es = append(es, d.pub.sortedSandbox(sb)...)
	}
	var us []fwstate.EndpointUpdate
	var add, remove []netip.Addr
	for _, e := range es {
		if e == nil || seen[e] || !e.Addr.IsValid() {
			continue
		}
		seen[e] = true
		n := d.networks[e.NetworkID]
		present := e.Joined && d.endpoints[e.ID] == e
		ports, open := d.pub.entry(e)
		us = append(us, fwstate.EndpointUpdate{Bridge: n.Bridge, Addr: e.Addr.Addr(), Ports: natMappings(ports), Open: open, Also: d.otherAddrs(e), Remove: !present})
		if n.Mode == netspec.ModePublic && !d.cfg.NDPRange {
			if present {
				add = append(add, e.Addr.Addr())
			} else {
				remove = append(remove, e.Addr.Addr())
			}
		}
	}
	if d.cfg.Firewall != nil && len(us) > 0 {
		if err := d.cfg.Firewall.UpdateEndpoints(us); err != nil {
			d.synced = false
			return fmt.Errorf("apply firewall: %w", err)
		}
	}
	if d.cfg.Neighbors != nil && len(add)+len(remove) > 0 {
		if err := d.cfg.Neighbors.UpdateTargets(add, remove); err != nil {
			d.synced = false
			return fmt.Errorf("ndp: %w", err)
		}
	}
	return nil
}

// endpointsByNetwork returns the joined endpoints with an address of each
// network, sorted by id: one sort for all networks.
func (d *Driver) endpointsByNetwork() map[string][]*Endpoint {
	out := map[string][]*Endpoint{}
	for _, e := range d.sortedEndpoints() {
		if e.Joined && e.Addr.IsValid() {
			out[e.NetworkID] = append(out[e.NetworkID], e)
		}
	}
	return out
}

func (d *Driver) firewallState() fwstate.State {
	s := fwstate.State{Uplinks: d.cfg.Uplinks, HostAddrs: d.cfg.Host.UplinkAddrs()}
	byNet := d.endpointsByNetwork()
	for _, n := range d.sortedNetworks() {
		gw := n.Gateway
		if n.LinkLocalGateway() {
			gw = netip.Addr{} // only internal networks' gateways are in the ruleset, and they have none of these
		}
		fn := fwstate.Network{Bridge: n.Bridge, Subnet: n.Subnet, Gateway: gw, Mode: n.Mode, ICC: n.ICC, AllowPing: n.AllowPing, Allow: n.Allow, SNAT: n.HostIPv6}
		for _, e := range byNet[n.ID] {
			ports, open := d.pub.entry(e)
			fn.Endpoints = append(fn.Endpoints, fwstate.Endpoint{Addr: e.Addr.Addr(), Ports: natMappings(ports), Open: open, Also: d.otherAddrs(e)})
		}
		s.Networks = append(s.Networks, fn)
	}
	return s
}

// otherAddrs returns the addresses e's container holds on its other
// joined networks that are not internal (fwstate.Endpoint.Also): its replies
// from them may leave through e's bridge.
func (d *Driver) otherAddrs(e *Endpoint) []netip.Addr {
	var out []netip.Addr
	for _, o := range d.pub.sortedSandbox(e.Sandbox) {
		on := d.networks[o.NetworkID]
		if o.NetworkID != e.NetworkID && o.Joined && o.Addr.IsValid() && d.endpoints[o.ID] == o && on != nil && on.Mode != netspec.ModeInternal {
			out = append(out, o.Addr.Addr())
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

func (d *Driver) ndpTargets() ([]netip.Addr, []netip.Prefix) {
	var addrs []netip.Addr
	var ranges []netip.Prefix
	byNet := d.endpointsByNetwork()
	for _, n := range d.sortedNetworks() {
		if n.Mode != netspec.ModePublic {
			continue
		}
		if d.cfg.NDPRange {
			ranges = append(ranges, n.Subnet)
			continue
		}
		for _, e := range byNet[n.ID] {
			addrs = append(addrs, e.Addr.Addr())
		}
	}
	return addrs, ranges
}

// hostAddrsChanged reports whether the next sync must be a whole one for
// the host: none succeeded yet, or the uplinks' addresses are not those
// the last one used.
func (d *Driver) hostAddrsChanged() bool {
	return !d.synced || !slices.Equal(d.cfg.Host.UplinkAddrs(), d.syncedHostAddrs)
}
