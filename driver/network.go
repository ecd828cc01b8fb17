package driver

import (
	"fmt"
	"net/netip"

	"github.com/sirupsen/logrus"

	"github.com/v6bridge/v6bridge/ipam"
	"github.com/v6bridge/v6bridge/netspec"
)

// PoolData is one address pool the engine hands to CreateNetwork.
type PoolData struct {
	Pool    netip.Prefix
	Gateway netip.Prefix // zero if the engine sent none
}

// CreateNetworkRequest is CreateNetwork in domain types.
type CreateNetworkRequest struct {
	NetworkID  string
	Generic    map[string]string
	EnableIPv6 bool
	EnableIPv4 *bool // nil: the engine did not send it (engines < 28)
	Internal   bool
	IPv4, IPv6 []PoolData
}

func (d *Driver) bridgeSpec(n *Network) netspec.BridgeSpec {
	gw := netip.PrefixFrom(n.Gateway, n.Subnet.Bits())
	if n.LinkLocalGateway() {
		gw = netip.PrefixFrom(n.Gateway, 64)
	}
	return netspec.BridgeSpec{Name: n.Bridge, MTU: n.MTU, Gateway: gw, Subnet: n.Subnet, Isolated: !n.ICC}
}

// CreateNetwork validates the options, creates the bridge and records the
// network.
func (d *Driver) CreateNetwork(req CreateNetworkRequest) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	n, err := d.newNetwork(req)
	if err != nil {
		return err
	}
	log := d.log.WithFields(logrus.Fields{"network": short(n.ID, 12), "bridge": n.Bridge, "pool": n.Subnet, "mode": n.Mode})
	if old, ok := d.networks[n.ID]; ok {
		if !sameNetwork(old, n) {
			return fmt.Errorf("network %s exists with other settings", short(n.ID, 12))
		}
		return d.cfg.Links.EnsureBridge(d.bridgeSpec(old))
	}
	existed, err := d.cfg.Links.LinkExists(n.Bridge)
	if err != nil {
		return err
	}
	if existed && req.Generic[OptBridgeName] != "" {
		return fmt.Errorf("network option %s=%s: an interface of that name exists already: accepted is a name no interface has", OptBridgeName, n.Bridge)
	}
	ok := false
	defer func() {
		if ok {
			return
		}
		delete(d.networks, n.ID)
		if err := d.cfg.Store.DeleteNetwork(n.ID); err != nil {
			log.WithError(err).Warn("undo: forget network")
		}
		if err := d.cfg.Links.DeleteBridge(n.Bridge); err != nil {
			log.WithError(err).Warn("undo: delete bridge")
		}
		if err := d.syncLocked(everything); err != nil {
			log.WithError(err).Warn("undo: firewall")
		}
	}()
	if err := d.cfg.Links.EnsureBridge(d.bridgeSpec(n)); err != nil {
		return err
	}
	d.networks[n.ID] = n
	if err := d.cfg.Store.PutNetwork(n); err != nil {
		return fmt.Errorf("save network: %w", err)
	}
	if err := d.syncLocked(everything); err != nil {
		return err
	}
	ok = true
	log.Info("created network")
	return nil
}

func sameNetwork(a, b *Network) bool {
	return a.ID == b.ID && a.Bridge == b.Bridge && a.Subnet == b.Subnet && a.Gateway == b.Gateway && a.Mode == b.Mode
}

// newNetwork validates a request into a record, without side effects.
func (d *Driver) newNetwork(req CreateNetworkRequest) (*Network, error) {
	if req.NetworkID == "" {
		return nil, fmt.Errorf("create network: empty network id")
	}
	opts, err := ParseNetworkOptions(req.Generic, req.Internal)
	if err != nil {
		return nil, err
	}
	if !req.EnableIPv6 || len(req.IPv6) == 0 {
		return nil, fmt.Errorf("v6bridge networks are IPv6 networks: create it with --ipv6 and --subnet (compose: enable_ipv6: true and an ipam config subnet)")
	}
	if len(req.IPv6) > 1 {
		return nil, fmt.Errorf("v6bridge takes one IPv6 subnet per network, got %d: create one network per subnet", len(req.IPv6))
	}
	pool := req.IPv6[0]
	n := &Network{
		ID:                     req.NetworkID,
		Bridge:                 opts.BridgeName,
		Mode:                   opts.Mode,
		Subnet:                 pool.Pool.Masked(),
		Gateway:                pool.Gateway.Addr(),
		MTU:                    opts.MTU,
		ICC:                    opts.ICC,
		AllowPing:              opts.AllowPing,
		Allow:                  opts.Allow,
		HostIPv6:               opts.HostIPv6,
		EngineSetsGatewayRoute: req.EnableIPv4 != nil,
		IPv4:                   len(req.IPv4) > 0,
	}
	if n.IPv4 {
		n.IPv4Pool = req.IPv4[0].Pool.Masked()
	}
	if opts.LinkLocal {
		if err := checkLinkLocalRequest(req, pool); err != nil {
			return nil, err
		}
		n.Gateway = d.linkLocalGateway(n.ID)
	}
	if !n.Gateway.IsValid() {
		n.Gateway = n.Subnet.Addr().Next()
	}
	if !n.LinkLocalGateway() && !n.Subnet.Contains(n.Gateway) {
		return nil, fmt.Errorf("gateway %s is outside subnet %s: accepted is an address inside it", n.Gateway, n.Subnet)
	}
	if d.cfg.PoolMode != nil {
		// The mode is decided once: by the IPAM option that chose the
		// subnet, or by -o when the IPAM got none.
		switch pm := d.cfg.PoolMode(n.Subnet); {
		case pm == "":
		case n.Mode == "":
			n.Mode = pm
		case n.Mode != pm:
			return nil, fmt.Errorf("network option %s=%s contradicts the ipam option %s=%s the subnet %s was chosen for: give the mode once — --ipam-opt %s=%s alone picks the subnet and the network's mode, or -o %s=%s alone with --subnet",
				OptMode, n.Mode, OptMode, pm, n.Subnet, OptMode, pm, OptMode, n.Mode)
		}
	}
	if n.Mode == "" {
		n.Mode = DefaultMode(n.Subnet, d.cfg.Host.PublicPrefixes())
	}
	if (n.Mode == netspec.ModePublic || n.Mode == netspec.ModeRouted) && netspec.IsULA(n.Subnet.Addr()) {
		return nil, fmt.Errorf("network option %s=%s needs a global subnet, %s is a unique local (ULA) one: accepted are nat or internal for ULA subnets (for an automatic public subnet add --ipam-opt %s=%s)", OptMode, n.Mode, n.Subnet, OptMode, n.Mode)
	}
	if n.HostIPv6.IsValid() && n.Mode != netspec.ModeNAT {
		return nil, fmt.Errorf("network option %s applies only to %s=nat, not %s", OptHostIPv6, OptMode, n.Mode)
	}
	if len(n.Allow) > 0 && n.Mode != netspec.ModePublic && n.Mode != netspec.ModeRouted {
		return nil, fmt.Errorf("network option %s applies only to public and routed networks, not %s=%s", OptAllow, OptMode, n.Mode)
	}
	if err := checkLinkLocal(opts.LinkLocal, n.Mode); err != nil {
		return nil, err
	}
	if n.Bridge == "" {
		n.Bridge = BridgeName(n.ID)
	}
	if n.MTU == 0 {
		n.MTU = d.cfg.Host.UplinkMTU()
	}
	subnets := make(map[string]netip.Prefix, len(d.networks))
	for _, o := range d.networks {
		if o.ID == n.ID {
			continue
		}
		if o.Bridge == n.Bridge {
			return nil, fmt.Errorf("network option %s=%s: network %s uses that bridge already: accepted is a name no other network uses", OptBridgeName, n.Bridge, short(o.ID, 12))
		}
		subnets[o.ID] = o.Subnet
	}
	// v6bridge's IPAM refuses an overlapping pool before the engine gets
	// here; networks another IPAM serves never reach it (the engine asks
	// v6bridge's IPAM nothing for them), so its rule is asked here.
	if id, ok := ipam.FindOverlap(n.Subnet, subnets); ok {
		return nil, fmt.Errorf("subnet %s overlaps subnet %s of network %s: accepted is a subnet no other v6bridge network uses", n.Subnet, subnets[id], short(id, 12))
	}
	return n, nil
}

// linkLocalGateway picks the gateway of the v6bridge.gateway=link-local
// network id: its own if the record exists (CreateNetwork again), else the
// lowest of LinkLocalGateway, fe80::2, fe80::3, ... no other network has.
// Each bridge's gateway is its own because the engine finds the interface
// of a container's gateway by a route lookup in the container: with
// fe80::1 on every bridge, a container on two such networks could carry
// the connected fe80::1/128 on one interface only, and the default route
// went through whichever network joined first, not the one the engine
// chose (gw-priority).
func (d *Driver) linkLocalGateway(id string) netip.Addr {
	if o, ok := d.networks[id]; ok && o.LinkLocalGateway() {
		return o.Gateway
	}
	used := make(map[netip.Addr]bool, len(d.networks))
	for _, o := range d.networks {
		used[o.Gateway] = true
	}
	gw := LinkLocalGateway
	for used[gw] {
		gw = gw.Next()
	}
	return gw
}

// checkLinkLocalRequest refuses v6bridge.gateway=link-local where the
// engine cannot serve it: engines before 28 (they install no default route
// from GatewayIPv6, and never ask GwAllocCheck), and a pool that got a
// gateway address of the subnet anyway (--gateway given, or an engine that
// did not ask GwAllocCheck).
func checkLinkLocalRequest(req CreateNetworkRequest, pool PoolData) error {
	if req.EnableIPv4 == nil {
		return fmt.Errorf("network option %s=%s needs Docker >= 28 (API 1.48), and this engine is older: drop the option; the gateway is then the subnet's first address",
			OptGateway, GatewayLinkLocal)
	}
	if pool.Gateway.IsValid() {
		return fmt.Errorf("network option %s=%s: the engine reserved gateway %s of the subnet (given with --gateway, or the engine does not support the driver's GwAllocChecker capability): drop --gateway, or drop the option",
			OptGateway, GatewayLinkLocal, pool.Gateway.Addr())
	}
	return nil
}

// GwAllocCheck answers the engine's question before CreateNetwork (engines
// >= 28): whether the network with these options needs no IPv6 gateway
// address of its subnet. With v6bridge.gateway=link-local it does not; the
// options are validated here too, so a bad one fails before any address is
// reserved. Only engines >= 28 ask (CreateNetwork refuses the option on
// older ones).
func (d *Driver) GwAllocCheck(req CreateNetworkRequest) (skipIPv6 bool, err error) {
	opts, err := ParseNetworkOptions(req.Generic, req.Internal)
	if err != nil {
		return false, err
	}
	return opts.LinkLocal, nil
}

// DeleteNetwork removes a network's endpoints, bridge and record. An unknown
// network is success.
func (d *Driver) DeleteNetwork(id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	n, ok := d.networks[id]
	if !ok {
		return nil
	}
	log := d.log.WithFields(logrus.Fields{"network": short(id, 12), "bridge": n.Bridge})
	for _, e := range d.sortedEndpoints() {
		if e.NetworkID == id {
			if err := d.deleteEndpointLocked(e, false); err != nil {
				return err
			}
		}
	}
	// From here a failure puts the (now empty) network back, bridge,
	// firewall and NDP included, so that the engine's retry finds it.
	delete(d.networks, id)
	undo := func(err error) error {
		d.networks[id] = n
		if uerr := d.cfg.Links.EnsureBridge(d.bridgeSpec(n)); uerr != nil {
			log.WithError(uerr).Warn("undo: re-create bridge")
		}
		if uerr := d.syncLocked(everything); uerr != nil {
			log.WithError(uerr).Warn("undo: firewall")
		}
		return err
	}
	if err := d.syncLocked(everything); err != nil {
		return undo(err)
	}
	if err := d.cfg.Links.DeleteBridge(n.Bridge); err != nil {
		return undo(err)
	}
	if err := d.cfg.Store.DeleteNetwork(id); err != nil {
		return undo(fmt.Errorf("forget network: %w", err))
	}
	log.Info("deleted network")
	return nil
}
