// Package driver is the network side of v6bridge in domain types: it
// validates network options, keeps the persisted record of networks and
// endpoints, and drives the kernel through small interfaces (Links,
// Firewall, Neighbors) so the whole request flow runs in tests with fakes.
// Every handler is all-or-nothing: a failure half way undoes what it did.
package driver

import (
	"cmp"
	"errors"
	"maps"
	"net/netip"
	"slices"
	"sync"

	"github.com/sirupsen/logrus"

	"github.com/v6bridge/v6bridge/internal/hostos"
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
	// Host is what the driver asks of the host's OS: its addresses on
	// the uplinks (where published ports listen, what masquerade uses),
	// the uplinks' on-link prefixes (a subnet inside one defaults to mode
	// public) and the MTU new bridges default to. nil: no addresses, no
	// prefixes, the kernel's default MTU.
	Host hostos.State
	// NDPRange answers NDP for whole public subnets instead of the
	// addresses in use.
	NDPRange bool
	// Routers, if set, is told after every change which containers must
	// hear router advertisements: on networks an engine before 28 made,
	// those that left the network with their static ::/0 (the engine
	// never moves it), on their other non-internal networks.
	Routers Routers
	// Forwarder, if set, forwards the ports published on the host's
	// loopback address (-p [::1]:5432:5432), which the firewall cannot
	// deliver (package portfwd). Set is told every forward after each change.
	Forwarder Forwarder
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
	// pub keeps the sandboxes' published ports and the indexes over
	// endpoints (publish.go).
	pub  *publisher
	held heldAddrs // endpoints' addresses, for the IPAM (HoldsAddr)
	// synced is set after a whole-state sync succeeded: from then on a
	// change of a few endpoints goes to the firewall and NDP as an update
	// of those endpoints. syncedHostAddrs are the host addresses it used;
	// when they change, the next sync is a whole one again.
	synced          bool
	syncedHostAddrs []netip.Addr
	// problems are the networks the last Reconcile could not bring up.
	problems map[string]string
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
	if cfg.Host == nil {
		cfg.Host = &hostos.TestState{} // the zero State: a host with nothing to say
	}
	d := &Driver{cfg: cfg, log: cfg.Log, networks: map[string]*Network{}, endpoints: map[string]*Endpoint{}}
	d.pub = newPublisher(d.networks, d.endpoints)
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
		d.endpoints[e.ID] = e
		d.held.hold(e)
		d.pub.index(e)
	}
	sbs, err := cfg.Store.LoadSandboxes()
	if err != nil {
		return nil, err
	}
	if err := d.loadSandboxes(sbs); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *Driver) sortedNetworks() []*Network {
	return sortedBy(d.networks, func(n *Network) string { return n.Bridge })
}

func (d *Driver) sortedEndpoints() []*Endpoint {
	return sortedBy(d.endpoints, func(e *Endpoint) string { return e.ID })
}

// sortedBy returns the values of m sorted by key.
func sortedBy[T any](m map[string]T, key func(T) string) []T {
	out := slices.Collect(maps.Values(m))
	slices.SortFunc(out, func(a, b T) int { return cmp.Compare(key(a), key(b)) })
	return out
}
