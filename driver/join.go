package driver

import (
	"fmt"
	"net/netip"

	"github.com/sirupsen/logrus"
	"github.com/v6bridge/v6bridge/netspec"
)

// JoinRequest is Join in domain types.
type JoinRequest struct {
	NetworkID, EndpointID, SandboxKey string
	// Ports are the ports the container publishes, if the engine sent
	// them with this Join.
	Ports []PortRequest
}

// StaticRoute is a route the engine installs in the container: via
// NextHop, or, with NextHop zero, a connected route on the endpoint's
// interface.
type StaticRoute struct {
	Destination netip.Prefix
	NextHop     netip.Addr
}

// JoinResponse is Join's answer in domain types.
type JoinResponse struct {
	SrcName      string
	DstPrefix    string
	GatewayIPv6  netip.Addr // zero: none
	StaticRoutes []StaticRoute
}

// Join hands the container end to the engine, publishes the container's
// ports (see publish.go) and starts answering NDP for its address.
func (d *Driver) Join(req JoinRequest) (JoinResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := d.endpoints[req.EndpointID]
	if !ok {
		return JoinResponse{}, fmt.Errorf("join: unknown endpoint %s", short(req.EndpointID, 12))
	}
	n := d.networks[e.NetworkID]
	log := d.log.WithFields(logrus.Fields{"network": short(n.ID, 12), "endpoint": short(e.ID, 12), "addr": e.Addr})
	// Re-create a bridge deleted behind our back, but do not re-check a
	// present one: EnsureBridge walks every port of the bridge, so calling
	// it on each Join made attaching cost grow with the endpoints on the
	// network (bench/bench.sh scale). CreateEndpoint configured this
	// endpoint's port; Reconcile re-checks the whole bridge at start-up.
	if ok, err := d.cfg.Links.LinkExists(n.Bridge); err != nil {
		return JoinResponse{}, err
	} else if !ok {
		if err := d.cfg.Links.EnsureBridge(d.bridgeSpec(n)); err != nil {
			return JoinResponse{}, err
		}
	}
	sandboxes := []string{req.SandboxKey}
	if e.Sandbox != "" && e.Sandbox != req.SandboxKey {
		sandboxes = append(sandboxes, e.Sandbox) // a Join again, elsewhere
	}
	ss := d.pub.save(sandboxes, e)
	if e.Joined && e.Sandbox != req.SandboxKey {
		d.leaveLocked(e)
	}
	d.pub.update(e, func() { e.Joined, e.Sandbox = true, req.SandboxKey })
	d.pub.request(e, req.Ports)
	if err := d.pub.holdOrReleasePorts(e.Sandbox); err != nil {
		d.pub.restoreAll(ss)
		return JoinResponse{}, err
	}
	resp := JoinResponse{SrcName: e.PeerVeth, DstPrefix: "eth"}
	if e.Addr.IsValid() && n.Mode != netspec.ModeInternal {
		if n.EngineSetsGatewayRoute {
			resp.GatewayIPv6 = n.Gateway
			if n.LinkLocalGateway() && !d.sandboxHasGatewayRoute(e, n.Gateway) {
				// The engine finds the interface of the gateway by a
				// route lookup in the container; every interface has
				// fe80::/64, so a connected <gateway>/128 names this one.
				// Networks get gateways of their own (linkLocalGateway),
				// but records of older versions all have fe80::1, and
				// only one interface may carry a route to it (a second
				// fails the join with EEXIST): another network of the
				// container that has it serves as well (its bridge holds
				// fe80::1 too).
				e.GatewayRoute = true
				resp.StaticRoutes = []StaticRoute{{Destination: netip.PrefixFrom(n.Gateway, 128)}}
			}
		} else if e.DefaultRoute || !d.sandboxRouted(e) {
			// Engines < 28 install no IPv6 default route from GatewayIPv6
			// when the endpoint has no IPv4 gateway: a static route does.
			// Only one endpoint of a sandbox may carry it (a second ::/0
			// would fail the join with EEXIST): the first joined wins.
			// A container whose first routed network left has a default
			// route from advertisements (routerTargets) and gets none.
			e.DefaultRoute = true
			resp.StaticRoutes = []StaticRoute{{Destination: netip.MustParsePrefix("::/0"), NextHop: n.Gateway}}
		}
	}
	if err := d.commitLocked(ss, sandboxes); err != nil {
		return JoinResponse{}, err
	}
	ports, open := d.pub.entry(e)
	log.WithFields(logrus.Fields{"ports": formatMappings(ports), "open": formatOpen(open)}).Info("joined")
	return resp, nil
}

// commitLocked persists the saved endpoints that changed and brings the
// firewall and NDP up to date for them and the sandboxes; on a failure it
// restores the saved records, the kernel state and the records on disk.
func (d *Driver) commitLocked(ss saved, sandboxes []string) error {
	es := ss.changed()
	err := d.persistChanged(ss)
	if err == nil {
		err = d.syncLocked(change{sandboxes: sandboxes, endpoints: es})
	}
	if err == nil {
		return nil
	}
	d.pub.restoreAll(ss)
	d.persistSaved(ss)
	if serr := d.syncLocked(change{sandboxes: sandboxes, endpoints: es}); serr != nil {
		d.log.WithError(serr).Warn("undo: firewall")
	}
	return err
}

// sandboxHas reports whether another joined endpoint of e's sandbox
// satisfies has.
func (d *Driver) sandboxHas(e *Endpoint, has func(o *Endpoint) bool) bool {
	if e.Sandbox == "" {
		return false
	}
	for _, o := range d.pub.bySandbox[e.Sandbox] {
		if o != e && o.Joined && has(o) {
			return true
		}
	}
	return false
}

// sandboxRouted reports whether another endpoint of e's sandbox gives the
// container its default route: the static ::/0, or advertisements.
func (d *Driver) sandboxRouted(e *Endpoint) bool {
	return d.sandboxHas(e, func(o *Endpoint) bool { return o.DefaultRoute || d.needsLegacyRoute(o) })
}

// sandboxHasGatewayRoute reports whether another joined endpoint of e's
// sandbox carries the connected route to the link-local gateway gw.
func (d *Driver) sandboxHasGatewayRoute(e *Endpoint, gw netip.Addr) bool {
	return d.sandboxHas(e, func(o *Endpoint) bool {
		on := d.networks[o.NetworkID]
		return o.GatewayRoute && on != nil && on.Gateway == gw
	})
}

// Leave unpublishes the endpoint's ports and stops NDP for it. Unknown is
// success.
func (d *Driver) Leave(networkID, endpointID string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := d.endpoints[endpointID]
	if !ok || !e.Joined {
		return nil
	}
	return d.leaveAndSyncLocked(e, true)
}

// leaveAndSyncLocked leaves and brings the firewall and NDP up to date
// first (with sync), then persists: a record that could not be written
// must not keep a port published or an address answered.
func (d *Driver) leaveAndSyncLocked(e *Endpoint, sync bool) error {
	sb := e.Sandbox
	ss := d.pub.save([]string{sb}, e)
	d.leaveLocked(e)
	if sync {
		es := ss.changed()
		if err := d.syncLocked(change{sandboxes: []string{sb}, endpoints: es}); err != nil {
			d.pub.restoreAll(ss)
			if serr := d.syncLocked(change{sandboxes: []string{sb}, endpoints: es}); serr != nil {
				d.log.WithError(serr).Warn("undo: firewall")
			}
			return err
		}
	}
	return d.persistChanged(ss)
}

// leaveLocked takes e out of its sandbox: the sandbox's host ports then
// lead to its next target, or are released when none is left; its record
// is deleted when e was its last endpoint.
func (d *Driver) leaveLocked(e *Endpoint) {
	sb := e.Sandbox
	d.pub.update(e, func() { e.Joined, e.Sandbox, e.DefaultRoute, e.GatewayRoute = false, "", false, false })
	d.pub.forget(sb)
	if err := d.pub.holdOrReleasePorts(sb); err != nil {
		// Only releasing or keeping is possible here: the requests held
		// ports before and hold them still.
		d.log.WithError(err).Warn("leave: hold or release published ports")
	}
	d.log.WithFields(logrus.Fields{"network": short(e.NetworkID, 12), "endpoint": short(e.ID, 12)}).Info("left")
}

// ProgramExternalConnectivity publishes the ports it carries if no Join of
// the sandbox did (some engines send them only here); otherwise it is a
// no-op.
func (d *Driver) ProgramExternalConnectivity(networkID, endpointID string, ports []PortRequest) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := d.endpoints[endpointID]
	if !ok || !e.Joined || len(ports) == 0 || d.pub.requested(e.Sandbox) {
		return nil
	}
	ss := d.pub.save([]string{e.Sandbox}, e)
	d.pub.request(e, ports)
	if err := d.pub.holdOrReleasePorts(e.Sandbox); err != nil {
		d.pub.restoreAll(ss)
		return err
	}
	return d.commitLocked(ss, []string{e.Sandbox})
}
