// Package ipam is v6bridge's IP address management: IPv6 pools from the
// user's --subnet or carved automatically from the address plan (package
// plan: PUBLIC_PREFIX for public networks, this host's ULA /64 for the
// others), inert IPv4 placeholder pools for engines that insist on IPv4,
// round-robin address allocation that never reuses a released address
// immediately, and the on-disk state that survives a restart.
//
// It speaks in domain types (netip); the libnetwork wire format lives in
// internal/api. Refusals wrap the sentinel errors of this package and their
// text, which reaches the Docker user, names the bad value and what is
// accepted.
package ipam

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/v6bridge/v6bridge/internal/hostos"
	"github.com/v6bridge/v6bridge/internal/store"
	"github.com/v6bridge/v6bridge/plan"
)

// Config configures an IPAM.
type Config struct {
	// StateDir holds the persisted pools, addresses and cursors (subdirs
	// pools/, addrs/<pool>/, cursors/). Required.
	StateDir string
	// Host is what the IPAM asks of the host's OS, at each request so a
	// changed uplink address is seen: the host's own IPv6 addresses
	// (global and ULA; a subnet containing one is refused), the uplink's
	// gateways (an automatic subnet never contains one) and PUBLIC_PREFIX,
	// where automatic subnets of public networks are carved from (by
	// default the uplink's on-link global /64). Nil: no host address
	// check, no gateways, and automatic public subnets are refused.
	Host hostos.State
	// ULAPrefix is ULA_PREFIX: a /48 to /64 of fd00::/8. Automatic
	// subnets of the other networks are carved from its first /64, this
	// host's ULA subnet (plan.HostULA with host id 0). Zero: a random /48
	// generated at the first start and persisted as ula.json in StateDir,
	// so it never changes on this host and differs between hosts.
	ULAPrefix netip.Prefix
	// PublicSubnetLen and ULASubnetLen (PUBLIC_SUBNET_LEN,
	// ULA_SUBNET_LEN) are the lengths of automatic subnets;
	// 0 means plan.DefaultSubnetLen (/112).
	PublicSubnetLen, ULASubnetLen int

	// Referenced says whether a network uses the subnet (the driver's
	// records). A pool no network references and no address but its
	// gateway uses is stale: GC reclaims it after a grace period, and a
	// request of an overlapping subnet reclaims it at once (if older than
	// MinReclaimAge). Nil: every pool counts as referenced.
	Referenced func(netip.Prefix) bool

	// Held says whether an endpoint of the network driver still has the
	// address. Since Docker 29 the engine releases an endpoint's address
	// here without telling the driver when per-endpoint sysctls remove the
	// container's IPv6 address; the driver keeps its firewall and NDP
	// state for it until the endpoint is deleted. Such an address is
	// handed to nobody else until then: the next free address is taken
	// instead, and a request of exactly it is refused. Nil: none is held.
	Held func(netip.Addr) bool

	// Quarantine, if set, receives state entries that cannot be read
	// (a truncated pool, address, name or cursor file): they are moved
	// there and reported, and the rest loads. Nil: such an entry fails New.
	Quarantine *store.Quarantine

	// Log receives one Info line per state change. May be nil.
	Log logrus.FieldLogger
}

// IPAM allocates pools and addresses. It is safe for concurrent use.
type IPAM struct {
	mu      sync.Mutex
	be      backend
	host    hostos.State // Config.Host; may be nil
	ula     netip.Prefix // ULA_PREFIX in effect
	ulaHost netip.Prefix // this host's ULA /64 inside ula
	pubLen  int
	ulaLen  int
	log     logrus.FieldLogger
	pools   map[string]*pool
	// referenced says whether a network uses a subnet (Config.Referenced).
	referenced func(netip.Prefix) bool
	held       func(netip.Addr) bool // Config.Held
	now        func() time.Time
}

// New returns an IPAM with the state persisted under cfg.StateDir.
func New(cfg Config) (*IPAM, error) {
	if cfg.StateDir == "" {
		return nil, errors.New("ipam: no state directory configured")
	}
	be, err := openDisk(cfg.StateDir, cfg.Quarantine)
	if err != nil {
		return nil, fmt.Errorf("ipam: %w", err)
	}
	return newIPAM(cfg, be)
}

// newIPAM returns an IPAM over be, with its state loaded.
func newIPAM(cfg Config, be backend) (*IPAM, error) {
	log := cfg.Log
	if log == nil {
		l := logrus.New()
		l.Out = io.Discard
		l.Level = logrus.PanicLevel
		log = l
	}
	m := &IPAM{
		be:     be,
		host:   cfg.Host,
		pubLen: cmp.Or(cfg.PublicSubnetLen, plan.DefaultSubnetLen),
		ulaLen: cmp.Or(cfg.ULASubnetLen, plan.DefaultSubnetLen),
		log:    log,
		pools:  map[string]*pool{},
		now:    time.Now,

		referenced: cfg.Referenced,
		held:       cfg.Held,
	}
	for _, l := range []struct {
		key  string
		bits int
	}{{"PUBLIC_SUBNET_LEN", m.pubLen}, {"ULA_SUBNET_LEN", m.ulaLen}} {
		if l.bits < MinPrefixLen || l.bits > MaxPrefixLen {
			return nil, fmt.Errorf("ipam: %s=%d: accepted are %d to %d", l.key, l.bits, MinPrefixLen, MaxPrefixLen)
		}
	}
	if err := m.setULA(cfg.ULAPrefix); err != nil {
		return nil, fmt.Errorf("ipam: %w", err)
	}
	s, err := be.load()
	if err != nil {
		return nil, fmt.Errorf("ipam: load state: %w", err)
	}
	if err := m.restore(s); err != nil {
		return nil, fmt.Errorf("ipam: load state: %w", err)
	}
	return m, nil
}

// restore rebuilds the in-memory state from a snapshot, checking that it is
// consistent.
func (m *IPAM) restore(s snapshot) error {
	blocks := map[netip.Prefix]string{} // placeholder block -> pool
	for _, r := range s.pools {
		if !r.Prefix.IsValid() || r.Prefix != r.Prefix.Masked() || !r.Range.IsValid() ||
			r.Range.Bits() < r.Prefix.Bits() || !r.Prefix.Contains(r.Range.Addr()) {
			return fmt.Errorf("pool %s: bad prefix %s or range %s", r.ID, r.Prefix, r.Range)
		}
		if r.Placeholder {
			if err := checkPlaceholderRecord(r); err != nil {
				return err
			}
			if o, dup := blocks[r.Prefix]; dup {
				return fmt.Errorf("placeholder block %s belongs to both pool %s and pool %s", r.Prefix, o, r.ID)
			}
			blocks[r.Prefix] = r.ID
		}
		p := newPool(r)
		p.alloc.cursor = s.cursors[r.ID]
		for _, n := range s.names[r.ID] {
			p.names[n.Name] = n.Addr
		}
		for _, a := range s.addrs[r.ID] {
			if !r.Prefix.Contains(a.Addr) {
				return fmt.Errorf("pool %s: address %s is outside %s", r.ID, a.Addr, r.Prefix)
			}
			if r.Placeholder && (a.Gateway || p.alloc.isReserved(a.Addr)) {
				return fmt.Errorf("placeholder pool %s: address %s is reserved in %s", r.ID, a.Addr, r.Prefix)
			}
			p.take(a.Addr)
			if a.Gateway {
				p.gateway = a.Addr
			}
		}
		now := m.now()
		for _, a := range p.names {
			if !p.has(a) {
				p.freed[a] = now
			}
		}
		m.pools[r.ID] = p
	}
	return nil
}
