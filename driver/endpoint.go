package driver

import (
	"fmt"
	"net/netip"

	"github.com/sirupsen/logrus"
	"github.com/v6bridge/v6bridge/netspec"
)

// CreateEndpointRequest is CreateEndpoint in domain types.
type CreateEndpointRequest struct {
	NetworkID, EndpointID string
	AddressIPv6           netip.Prefix // zero: the container has IPv6 off
	MAC                   string       // "" : v6bridge picks one
}

// CreateEndpoint creates the endpoint's veth pair, host end on the bridge.
// It returns the MAC it picked when the request had none, else "".
func (d *Driver) CreateEndpoint(req CreateEndpointRequest) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n, ok := d.networks[req.NetworkID]
	if !ok {
		return "", fmt.Errorf("create endpoint: network %s: %w (was it created by another driver, or its state lost?)", short(req.NetworkID, 12), ErrUnknownNetwork)
	}
	if req.EndpointID == "" {
		return "", fmt.Errorf("create endpoint: empty endpoint id")
	}
	if e, ok := d.endpoints[req.EndpointID]; ok {
		if e.Addr != req.AddressIPv6 {
			return "", fmt.Errorf("endpoint %s exists with address %s", short(e.ID, 12), e.Addr)
		}
		if req.MAC == "" {
			return e.MAC, nil
		}
		return "", nil
	}
	if err := d.checkNewEndpoint(n, req); err != nil {
		return "", err
	}
	mac := req.MAC
	picked := ""
	if mac == "" {
		mac = EndpointMAC(req.EndpointID).String()
		picked = mac
	}
	e := &Endpoint{ID: req.EndpointID, NetworkID: n.ID, Addr: req.AddressIPv6, MAC: mac}
	e.HostVeth, e.PeerVeth = VethNames(e.ID)
	if e.hardwareAddr() == nil {
		return "", fmt.Errorf("MAC address %q: accepted is the form 02:42:ac:11:00:02", mac)
	}
	log := d.log.WithFields(logrus.Fields{"network": short(n.ID, 12), "endpoint": short(e.ID, 12), "addr": e.Addr, "iface": e.HostVeth})
	if err := d.cfg.Links.EnsureVeth(netspec.VethSpec{HostName: e.HostVeth, PeerName: e.PeerVeth, Bridge: n.Bridge, MTU: n.MTU, MAC: e.hardwareAddr(), Isolated: !n.ICC}); err != nil {
		return "", err
	}
	if err := d.cfg.Store.PutEndpoint(e); err != nil {
		if derr := d.cfg.Links.DeleteVeth(e.HostVeth); derr != nil {
			log.WithError(derr).Warn("undo: delete veth")
		}
		return "", fmt.Errorf("save endpoint: %w", err)
	}
	d.endpoints[e.ID] = e
	d.held.hold(e)
	d.pub.index(e)
	log.Info("created endpoint")
	return picked, nil
}

// checkNewEndpoint refuses what the engine may send but must not reach the
// kernel: an address outside the network's subnet, one another endpoint
// (of any v6bridge network) holds or a network's gateway (the engine only
// prevents duplicates when our IPAM is used; two holders would share
// firewall and NDP entries, and one leaving would remove the other's), and
// a host veth name another endpoint has.
func (d *Driver) checkNewEndpoint(n *Network, req CreateEndpointRequest) error {
	host, _ := VethNames(req.EndpointID)
	a := req.AddressIPv6.Addr()
	if req.AddressIPv6.IsValid() && !n.Subnet.Contains(a) {
		return fmt.Errorf("address %s is outside subnet %s of the network: accepted is an address inside it", a, n.Subnet)
	}
	if req.AddressIPv6.IsValid() {
		for _, o := range d.networks {
			if o.Gateway == a {
				return fmt.Errorf("address %s is the gateway of network %s: accepted is an address no endpoint or gateway holds", a, short(o.ID, 12))
			}
		}
	}
	for _, e := range d.endpoints {
		if req.AddressIPv6.IsValid() && e.Addr.IsValid() && e.Addr.Addr() == a {
			return fmt.Errorf("address %s is held by endpoint %s of network %s: accepted is an address no endpoint or gateway holds", a, short(e.ID, 12), short(e.NetworkID, 12))
		}
		if e.HostVeth == host {
			return fmt.Errorf("endpoint %s: its veth name %s is taken by endpoint %s: recreate the container for a new endpoint id", short(req.EndpointID, 12), host, short(e.ID, 12))
		}
	}
	return nil
}

// DeleteEndpoint removes the veth pair and the record. Unknown is success.
func (d *Driver) DeleteEndpoint(networkID, endpointID string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := d.endpoints[endpointID]
	if !ok {
		return nil
	}
	return d.deleteEndpointLocked(e, true)
}

// deleteEndpointLocked leaves if joined — unpublishing first, so a failure
// later leaves nothing published — and removes e's veth and record. sync
// says whether to bring the firewall up to date now (DeleteNetwork syncs
// once at the end).
func (d *Driver) deleteEndpointLocked(e *Endpoint, sync bool) error {
	if e.Joined {
		if err := d.leaveAndSyncLocked(e, sync); err != nil {
			return err
		}
	}
	if err := d.cfg.Links.DeleteVeth(e.HostVeth); err != nil {
		return err
	}
	if err := d.cfg.Store.DeleteEndpoint(e.ID); err != nil {
		return err
	}
	d.pub.unindex(e)
	d.held.unhold(e)
	delete(d.endpoints, e.ID)
	d.log.WithFields(logrus.Fields{"network": short(e.NetworkID, 12), "endpoint": short(e.ID, 12)}).Info("deleted endpoint")
	return nil
}

// EndpointInfo returns the endpoint's operational data for the engine.
func (d *Driver) EndpointInfo(networkID, endpointID string) map[string]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := d.endpoints[endpointID]
	if !ok {
		return map[string]string{}
	}
	info := map[string]string{"v6bridge.bridge": d.networks[e.NetworkID].Bridge, "v6bridge.veth": e.HostVeth}
	if e.Addr.IsValid() {
		info["v6bridge.address"] = e.Addr.Addr().String()
	}
	ports, open := d.pub.entry(e)
	if len(ports) > 0 {
		info["v6bridge.ports"] = formatMappings(ports)
	}
	if len(open) > 0 {
		info["v6bridge.open"] = formatOpen(open)
	}
	return info
}
