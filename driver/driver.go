// Package driver is the network side of v6bridge in domain types: it
// validates network options, keeps the persisted record of networks and
// endpoints, and drives the kernel through small interfaces (Links,
// Firewall, Neighbors) so the whole request flow runs in tests with fakes.
// Every handler is all-or-nothing: a failure half way undoes what it did.
package driver

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/sirupsen/logrus"

	"github.com/v6bridge/v6bridge/fwstate"
	"github.com/v6bridge/v6bridge/netspec"
)

// Config wires a Driver.
type Config struct {
	Links     Links
	Firewall  Firewall  // nil: no firewall (tests)
	Neighbors Neighbors // nil: no NDP proxy
	Store     Store
	// Uplinks are the host's outside interfaces.
	Uplinks []string
	// HostAddrs returns the host's global addresses on the uplinks: where
	// published ports listen and what masquerade uses.
	HostAddrs func() []netip.Addr
	// PublicPrefixes returns the on-link prefixes of the uplinks: a subnet
	// inside one defaults to mode public.
	PublicPrefixes func() []netip.Prefix
	// UplinkMTU returns the MTU new bridges default to (0: kernel default).
	UplinkMTU func() int
	// NDPRange answers NDP for whole public subnets instead of the
	// addresses in use.
	NDPRange bool
	// Routers, if set, is told after every change which containers must
	// hear router advertisements: on networks an engine before 28 made,
	// those that left the network with their static ::/0 (the engine
	// never moves it), on their other non-internal networks.
	Routers Routers
	// Proxies, if set, forwards the ports published on the host's
	// loopback address (-p [::1]:5432:5432), which the firewall cannot
	// deliver (package portfwd). Set is told every forward after each change.
	Proxies Proxies
	// PoolMode returns the mode the IPAM pool of a subnet was requested
	// for (--ipam-opt v6bridge.mode), "" if none: a network without -o
	// v6bridge.mode takes it, one with a different -o is refused. nil: no
	// pools of v6bridge's IPAM (another IPAM serves the network).
	PoolMode func(netip.Prefix) netspec.Mode
	// Instance is the id of this state directory (instance.Identity) and
	// StateDir where it is: links marked by another instance are never
	// touched. Empty: every orphan with v6bridge's prefixes is swept.
	Instance, StateDir string
	// NoSweep, if set, is why orphaned links are left in place at this
	// start (e.g. records were quarantined: their links are not orphans).
	NoSweep string
	Log     logrus.FieldLogger
}

// Driver is the v6bridge network driver.
type Driver struct {
	cfg       Config
	log       logrus.FieldLogger
	mu        sync.Mutex
	networks  map[string]*Network
	endpoints map[string]*Endpoint
	// Indexes over endpoints, kept by index and unindex around every
	// change of an endpoint's sandbox or ports, so a Join looks up what it
	// needs instead of scanning every endpoint.
	bySandbox map[string]map[string]*Endpoint // sandbox key -> endpoint id -> endpoint
	hostPorts map[hostPort]map[netip.Addr]int // published host port -> host address (zero: all) -> mappings
	held      heldAddrs                       // endpoints' addresses, for the IPAM (HoldsAddr)
	// synced is set after a whole-state sync succeeded: from then on a
	// change of a few endpoints goes to the firewall and NDP as an update
	// of those endpoints. syncedHostAddrs are the host addresses it used;
	// when they change, the next sync is a whole one again.
	synced          bool
	syncedHostAddrs []netip.Addr
	// problems are the networks the last Reconcile could not bring up.
	problems map[string]string
}

type hostPort struct {
	proto uint8
	port  uint16
}

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

// CreateEndpointRequest is CreateEndpoint in domain types.
type CreateEndpointRequest struct {
	NetworkID, EndpointID string
	AddressIPv6           netip.Prefix // zero: the container has IPv6 off
	MAC                   string       // "" : v6bridge picks one
}

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

// ErrUnknownNetwork is returned for a network v6bridge holds no record of.
var ErrUnknownNetwork = errors.New("unknown network")

// New loads the persisted state. Call Reconcile before serving.
func New(cfg Config) (*Driver, error) {
	if cfg.Log == nil {
		l := logrus.New()
		l.SetLevel(logrus.PanicLevel)
		cfg.Log = l
	}
	if cfg.HostAddrs == nil {
		cfg.HostAddrs = func() []netip.Addr { return nil }
	}
	if cfg.PublicPrefixes == nil {
		cfg.PublicPrefixes = func() []netip.Prefix { return nil }
	}
	if cfg.UplinkMTU == nil {
		cfg.UplinkMTU = func() int { return 0 }
	}
	d := &Driver{cfg: cfg, log: cfg.Log, networks: map[string]*Network{}, endpoints: map[string]*Endpoint{},
		bySandbox: map[string]map[string]*Endpoint{}, hostPorts: map[hostPort]map[netip.Addr]int{}}
	ns, es, err := cfg.Store.Load()
	if err != nil {
		return nil, err
	}
	for _, n := range ns {
		d.networks[n.ID] = n
	}
	for _, e := range es {
		if _, ok := d.networks[e.NetworkID]; !ok {
			d.log.WithField("endpoint", e.ID).Warn("dropping endpoint of unknown network from state")
			if err := cfg.Store.DeleteEndpoint(e.ID); err != nil {
				return nil, err
			}
			continue
		}
		if len(e.Ports) > 0 && len(e.PortRequests) == 0 {
			// A record of a version that kept only the host ports: they
			// are the requests now.
			for _, m := range e.Ports {
				for i := 0; i <= int(m.HostLast-m.HostFirst); i++ {
					e.PortRequests = append(e.PortRequests, PortRequest{Proto: m.Proto, HostAddr: m.HostAddr,
						HostFirst: m.HostFirst + uint16(i), HostLast: m.HostFirst + uint16(i), ContainerPort: m.ContainerFirst + uint16(i)})
				}
			}
		}
		d.endpoints[e.ID] = e
		d.index(e)
	}
	return d, nil
}

// Reconcile makes the kernel match the persisted state: host settings,
// bridges re-created (after a reboot), links carrying this instance's mark
// that no record claims removed, the firewall and NDP rebuilt. It refuses
// (ErrForeignLinks, before changing anything) when the kernel holds links
// of another instance, or links of this one while the state holds no
// network: this plugin runs on the wrong state directory. A network whose
// bridge cannot be ensured is reported (Problems, status) and the rest is
// served.
func (d *Driver) Reconcile() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	owned, err := d.cfg.Links.OwnedLinks()
	if err != nil {
		return fmt.Errorf("list v6bridge's links: %w", err)
	}
	if err := d.checkOwnership(owned); err != nil {
		return err
	}
	changed, err := d.cfg.Links.PrepareHost(d.cfg.Uplinks)
	if err != nil {
		return fmt.Errorf("prepare host: %w", err)
	}
	for _, c := range changed {
		d.log.WithField("sysctl", c).Info("changed host setting")
	}
	d.problems = map[string]string{}
	claimed := map[string]bool{}
	for _, n := range d.sortedNetworks() {
		claimed[n.Bridge] = true
		if err := d.cfg.Links.EnsureBridge(d.bridgeSpec(n)); err != nil {
			d.problem(n.ID, fmt.Errorf("ensure bridge: %w", err))
		}
	}
	for _, e := range d.sortedEndpoints() {
		claimed[e.HostVeth] = true
		if _, bad := d.problems[e.NetworkID]; bad {
			continue
		}
		ok, err := d.cfg.Links.LinkExists(e.HostVeth)
		if err != nil {
			d.problem(e.NetworkID, fmt.Errorf("endpoint %s: %w", short(e.ID, 12), err))
			continue
		}
		if !ok && e.Joined {
			// The container's link is gone (its netns died with a reboot or
			// a crash); the engine will delete the endpoint. Until then it
			// publishes nothing and NDP does not answer for it.
			d.log.WithField("endpoint", short(e.ID, 12)).Info("endpoint's link is gone, unpublishing it")
			ss := d.save([]string{e.Sandbox}, e)
			d.leaveLocked(e)
			if err := d.persistChanged(ss); err != nil {
				d.log.WithError(err).WithField("endpoint", short(e.ID, 12)).Warn("save unpublished endpoint; it is unpublished until the next start")
			}
		}
	}
	d.sweep(owned, claimed)
	return d.syncLocked(everything)
}

// ErrForeignLinks says the kernel holds v6bridge links another state
// directory made: this plugin is not on the state it should be.
var ErrForeignLinks = errors.New("the kernel holds v6bridge links of another state directory")

// checkOwnership refuses to go on when owned links show that this
// instance runs on the wrong state: links marked by another instance, or
// its own marks while the state holds no network.
func (d *Driver) checkOwnership(owned []netspec.OwnedLink) error {
	if d.cfg.Instance == "" {
		return nil
	}
	var foreign, mine []string
	var other netspec.OwnedLink
	for _, l := range owned {
		switch l.Instance {
		case "":
		case d.cfg.Instance:
			mine = append(mine, l.Name)
		default:
			foreign = append(foreign, l.Name)
			other = l
		}
	}
	if len(foreign) > 0 {
		return fmt.Errorf("%w: %s belong to v6bridge instance %s, whose state directory is %s; this one is instance %s on %s. "+
			"Start this plugin on %s (managed plugin: docker plugin set <plugin> state.source=%s), or stop the other instance and delete its links (ip link del ...) first",
			ErrForeignLinks, strings.Join(foreign, ", "), other.Instance, other.StateDir, d.cfg.Instance, d.cfg.StateDir, other.StateDir, other.StateDir)
	}
	if len(mine) > 0 && len(d.networks) == 0 && d.cfg.NoSweep == "" {
		return fmt.Errorf("%w: state directory %s (instance %s) records no network, but its links %s exist: the records were lost or replaced; "+
			"restore them (%s/quarantine may hold unreadable ones), or delete those links (ip link del ...) to start empty",
			ErrForeignLinks, d.cfg.StateDir, d.cfg.Instance, strings.Join(mine, ", "), d.cfg.StateDir)
	}
	return nil
}

// sweep deletes the owned links that no record claims and that carry this
// instance's mark; unmarked ones are reported and left.
func (d *Driver) sweep(owned []netspec.OwnedLink, claimed map[string]bool) {
	for _, l := range owned {
		if claimed[l.Name] {
			continue
		}
		log := d.log.WithField("iface", l.Name)
		switch {
		case d.cfg.NoSweep != "":
			log.WithField("reason", d.cfg.NoSweep).Warn("orphaned link left in place")
			continue
		case d.cfg.Instance != "" && l.Instance != d.cfg.Instance:
			log.Warn("orphaned link without this instance's mark left in place (made by an older v6bridge or by hand): delete it with ip link del if nothing uses it")
			continue
		}
		var err error
		if l.Bridge {
			log.Info("removing orphaned bridge")
			err = d.cfg.Links.DeleteBridge(l.Name)
		} else {
			log.Info("removing orphaned veth")
			err = d.cfg.Links.DeleteVeth(l.Name)
		}
		if err != nil {
			log.WithError(err).Warn("remove orphaned link")
		}
	}
}

// problem records and logs a network that Reconcile could not bring up.
func (d *Driver) problem(networkID string, err error) {
	d.problems[networkID] = err.Error()
	d.log.WithError(err).WithField("network", short(networkID, 12)).Error("network not reconciled; serving the others")
}

// Problems returns the networks Reconcile could not bring up, by id, with
// the error.
func (d *Driver) Problems() map[string]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return maps.Clone(d.problems)
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
		ID:        req.NetworkID,
		Bridge:    opts.BridgeName,
		Mode:      opts.Mode,
		Subnet:    pool.Pool.Masked(),
		Gateway:   pool.Gateway.Addr(),
		MTU:       opts.MTU,
		ICC:       opts.ICC,
		AllowPing: opts.AllowPing,
		Allow:     opts.Allow,
		HostIPv6:  opts.HostIPv6,
		Modern:    req.EnableIPv4 != nil,
		IPv4:      len(req.IPv4) > 0,
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
		n.Mode = DefaultMode(n.Subnet, d.cfg.PublicPrefixes())
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
		n.MTU = d.cfg.UplinkMTU()
	}
	for _, o := range d.networks {
		if o.ID == n.ID {
			continue
		}
		if o.Bridge == n.Bridge {
			return nil, fmt.Errorf("network option %s=%s: network %s uses that bridge already: accepted is a name no other network uses", OptBridgeName, n.Bridge, short(o.ID, 12))
		}
		if o.Subnet.Overlaps(n.Subnet) {
			return nil, fmt.Errorf("subnet %s overlaps subnet %s of network %s: accepted is a subnet no other v6bridge network uses", n.Subnet, o.Subnet, short(o.ID, 12))
		}
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
	d.index(e)
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
	d.unindex(e)
	delete(d.endpoints, e.ID)
	d.log.WithFields(logrus.Fields{"network": short(e.NetworkID, 12), "endpoint": short(e.ID, 12)}).Info("deleted endpoint")
	return nil
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
	ss := d.save(sandboxes, e)
	if e.Joined && e.Sandbox != req.SandboxKey {
		d.leaveLocked(e)
	}
	d.unindex(e)
	e.Joined, e.Sandbox = true, req.SandboxKey
	d.index(e)
	if len(req.Ports) > 0 && d.carrier(e.Sandbox) == nil {
		d.unindex(e)
		e.PortRequests, e.Ports = slices.Clone(req.Ports), nil
		d.index(e)
	}
	if err := d.settle(e.Sandbox); err != nil {
		d.restoreAll(ss)
		return JoinResponse{}, err
	}
	resp := JoinResponse{SrcName: e.PeerVeth, DstPrefix: "eth"}
	if e.Addr.IsValid() && n.Mode != netspec.ModeInternal {
		if n.Modern {
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
	ports, open := d.entry(e)
	log.WithFields(logrus.Fields{"ports": formatMappings(ports), "open": formatOpen(open)}).Info("joined")
	return resp, nil
}

// commitLocked persists the saved endpoints that changed and brings the
// firewall and NDP up to date for them and the sandboxes; on a failure it
// restores the saved records, the kernel state and the records on disk.
func (d *Driver) commitLocked(ss []saved, sandboxes []string) error {
	es := make([]*Endpoint, len(ss))
	for i, s := range ss {
		es[i] = s.e
	}
	err := d.persistChanged(ss)
	if err == nil {
		err = d.syncLocked(change{sandboxes: sandboxes, endpoints: es})
	}
	if err == nil {
		return nil
	}
	d.restoreAll(ss)
	for _, s := range ss {
		if d.endpoints[s.e.ID] == s.e {
			if perr := d.cfg.Store.PutEndpoint(s.e); perr != nil {
				d.log.WithError(perr).WithField("endpoint", short(s.e.ID, 12)).Warn("undo: save endpoint")
			}
		}
	}
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
	for _, o := range d.bySandbox[e.Sandbox] {
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
	ss := d.save([]string{sb}, e)
	d.leaveLocked(e)
	if sync {
		es := make([]*Endpoint, len(ss))
		for i, s := range ss {
			es[i] = s.e
		}
		if err := d.syncLocked(change{sandboxes: []string{sb}, endpoints: es}); err != nil {
			d.restoreAll(ss)
			if serr := d.syncLocked(change{sandboxes: []string{sb}, endpoints: es}); serr != nil {
				d.log.WithError(serr).Warn("undo: firewall")
			}
			return err
		}
	}
	return d.persistChanged(ss)
}

// leaveLocked takes e out of its sandbox: its port requests go to another
// endpoint of the sandbox, whose host ports then lead to the sandbox's
// next target, or are released when none is left.
func (d *Driver) leaveLocked(e *Endpoint) {
	sb := e.Sandbox
	d.handOver(e)
	d.unindex(e)
	e.Joined, e.Sandbox, e.DefaultRoute, e.GatewayRoute = false, "", false, false
	d.index(e)
	if err := d.settle(sb); err != nil {
		// Only releasing or keeping is possible here: the requests held
		// ports before and hold them still.
		d.log.WithError(err).Warn("leave: settle published ports")
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
	if !ok || !e.Joined || len(ports) == 0 || d.carrier(e.Sandbox) != nil {
		return nil
	}
	ss := d.save([]string{e.Sandbox}, e)
	d.unindex(e)
	e.PortRequests, e.Ports = slices.Clone(ports), nil
	d.index(e)
	if err := d.settle(e.Sandbox); err != nil {
		d.restoreAll(ss)
		return err
	}
	return d.commitLocked(ss, []string{e.Sandbox})
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
	ports, open := d.entry(e)
	if len(ports) > 0 {
		info["v6bridge.ports"] = formatMappings(ports)
	}
	if len(open) > 0 {
		info["v6bridge.open"] = formatOpen(open)
	}
	return info
}

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
		legacy = legacy || !n.Modern && n.Mode != netspec.ModeInternal
	}
	if !legacy { // engines >= 28 only: no sandbox needs one (not a walk of them all per Join)
		return out
	}
	for _, es := range d.bySandbox {
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
	return n != nil && !n.Modern && n.Mode != netspec.ModeInternal && e.Addr.IsValid()
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
	if c.all || !d.synced || !slices.Equal(d.cfg.HostAddrs(), d.syncedHostAddrs) {
		err = d.syncAllLocked()
	} else {
		err = d.syncSomeLocked(c)
	}
	if err != nil {
		return err
	}
	d.advertiseLocked()
	if d.cfg.Proxies != nil {
		if err := d.cfg.Proxies.Set(d.forwards()); err != nil {
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
		es = append(es, d.sortedSandbox(sb)...)
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
		ports, open := d.entry(e)
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
	s := fwstate.State{Uplinks: d.cfg.Uplinks, HostAddrs: d.cfg.HostAddrs()}
	byNet := d.endpointsByNetwork()
	for _, n := range d.sortedNetworks() {
		gw := n.Gateway
		if n.LinkLocalGateway() {
			gw = netip.Addr{} // only internal networks' gateways are in the ruleset, and they have none of these
		}
		fn := fwstate.Network{Bridge: n.Bridge, Subnet: n.Subnet, Gateway: gw, Mode: n.Mode, ICC: n.ICC, AllowPing: n.AllowPing, Allow: n.Allow, SNAT: n.HostIPv6}
		for _, e := range byNet[n.ID] {
			ports, open := d.entry(e)
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
	for _, o := range d.sortedSandbox(e.Sandbox) {
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

func (d *Driver) sortedNetworks() []*Network {
	out := make([]*Network, 0, len(d.networks))
	for _, n := range d.networks {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Bridge < out[j].Bridge })
	return out
}

func (d *Driver) sortedEndpoints() []*Endpoint {
	out := make([]*Endpoint, 0, len(d.endpoints))
	for _, e := range d.endpoints {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
