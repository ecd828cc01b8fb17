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
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/v6bridge/v6bridge/internal/store"
	"github.com/v6bridge/v6bridge/netspec"
	"github.com/v6bridge/v6bridge/plan"
)

// AddressOptions say what an address is for, as the engine's RequestAddress
// options do (internal/api decodes them).
type AddressOptions struct {
	// Gateway: the network's gateway address.
	Gateway bool
	// Name is the endpoint's name, if the engine sends it (engines >= 29):
	// an endpoint re-requesting without an address gets the one it had
	// last, if it is free.
	Name string
}

// Placeholder IPv4 pools: non-routed link-local space handed to engines
// before Docker 28, which always request an IPv4 pool. Each placeholder pool
// is its own /22 block of PlaceholderPrefix, so a container attached to
// several v6bridge networks gets non-overlapping on-link IPv4 routes.
var (
	// PlaceholderPrefix is the space the placeholder blocks are carved
	// from.
	PlaceholderPrefix = netip.MustParsePrefix("169.254.0.0/16")
	// placeholderBlocks are the blocks a placeholder pool may get, lowest
	// first.
	placeholderBlocks = carveBlocks(PlaceholderPrefix, PlaceholderBits, placeholderAvoid...)
)

// PlaceholderBits is the prefix length of a placeholder pool's block: 1021
// container addresses per network (network, gateway and broadcast
// addresses excluded).
const PlaceholderBits = 22

// placeholderAvoid are the addresses whose blocks are never handed out: the
// first and last /24 of the space, reserved by RFC 3927, and the cloud
// metadata address, which the host may route.
var placeholderAvoid = []netip.Addr{
	netip.MustParseAddr("169.254.0.0"),
	netip.MustParseAddr("169.254.255.255"),
	netip.MustParseAddr("169.254.169.254"),
}

// carveBlocks splits space into its /bits blocks, lowest first, leaving out
// those that contain one of avoid.
func carveBlocks(space netip.Prefix, bits int, avoid ...netip.Addr) []netip.Prefix {
	var out []netip.Prefix
	for b := netip.PrefixFrom(space.Addr(), bits); b.IsValid() && space.Contains(b.Addr()); {
		if !slices.ContainsFunc(avoid, b.Contains) {
			out = append(out, b)
		}
		next := lastAddr(b).Next()
		if !next.IsValid() {
			break
		}
		b = netip.PrefixFrom(next, bits)
	}
	return out
}

// blockGateway is the gateway of a placeholder block: its first host
// address. It is reported to the engine and never handed out.
func blockGateway(block netip.Prefix) netip.Addr {
	return block.Addr().Next()
}

// Pool ID forms. IDs are opaque to the engine.
const (
	v6IDPrefix          = "v6bridge/"      // + canonical prefix: one pool per prefix
	placeholderIDPrefix = "v4placeholder/" // + random hex: fresh per request
)

// Config configures an IPAM.
type Config struct {
	// StateDir holds the persisted pools, addresses and cursors (subdirs
	// pools/, addrs/<pool>/, cursors/). Required.
	StateDir string
	// HostAddrs lists the host's own IPv6 addresses (global and ULA); a
	// subnet containing one is refused. May be nil: no check.
	HostAddrs func() ([]netip.Addr, error)
	// Gateways lists the uplink's gateway addresses; an automatic subnet
	// never contains one. May be nil.
	Gateways func() ([]netip.Addr, error)

	// PublicPrefix returns PUBLIC_PREFIX, where automatic subnets of
	// public networks are carved from (by default the uplink's on-link
	// global /64). It is asked at each such request, so a changed uplink
	// address is seen. Nil: automatic public subnets are refused.
	PublicPrefix func() (netip.Prefix, error)
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

// PoolRequest is a RequestPool call as the engine sends it.
type PoolRequest struct {
	Pool    string            // --subnet CIDR, or "" (always "" for the engine's implicit IPv4 pool)
	SubPool string            // --ip-range CIDR, or ""
	Options map[string]string // --ipam-opt
	V6      bool
}

// Pool is an allocated pool.
type Pool struct {
	ID          string
	Prefix      netip.Prefix // the subnet
	Range       netip.Prefix // where dynamic addresses come from: --ip-range, or Prefix
	Placeholder bool         // an inert IPv4 pool for engines before Docker 28
	// Gateway is the pool's own gateway, which the engine then does not
	// request (placeholders); zero for IPv6 pools.
	Gateway   netip.Prefix
	PrefixLen int // the v6bridge.prefix_len option; 0 if not given
}

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

// pool is a pool with its allocation state.
type pool struct {
	rec     poolRecord
	alloc   *allocator
	gateway netip.Addr            // a placeholder's is reserved in alloc, not allocated
	names   map[string]netip.Addr // endpoint name -> its last address
	// freed is when a remembered address was released (or found free at
	// start), so GC can forget names whose address stayed free too long.
	freed map[netip.Addr]time.Time
}

// newPool returns a pool with an empty allocator for its record. A
// placeholder pool's network address, gateway and broadcast address are
// reserved; an IPv6 pool's subnet-router anycast address is.
func newPool(r poolRecord) *pool {
	p := &pool{rec: r, names: map[string]netip.Addr{}, freed: map[netip.Addr]time.Time{}}
	if r.Placeholder {
		p.gateway = blockGateway(r.Prefix)
		p.alloc = newAllocator(r.Range, r.Prefix.Addr(), p.gateway, lastAddr(r.Prefix))
	} else {
		p.alloc = newAllocator(r.Range, r.Prefix.Addr())
	}
	return p
}

// has reports whether a was allocated from p.
func (p *pool) has(a netip.Addr) bool {
	return p.alloc.inUse(a)
}

func (p *pool) take(a netip.Addr) {
	p.alloc.add(a)
}

func (p *pool) free(a netip.Addr) {
	p.alloc.remove(a)
	if a == p.gateway && !p.rec.Placeholder {
		p.gateway = netip.Addr{}
	}
}

func (p *pool) allocated() int {
	return len(p.alloc.used)
}

// gatewayPrefix is a placeholder's gateway with the block's length; zero
// for IPv6 pools, whose gateway the engine requests.
func (p *pool) gatewayPrefix() netip.Prefix {
	if !p.rec.Placeholder {
		return netip.Prefix{}
	}
	return netip.PrefixFrom(p.gateway, p.rec.Prefix.Bits())
}

func (p *pool) public() Pool {
	return Pool{
		ID:          p.rec.ID,
		Prefix:      p.rec.Prefix,
		Range:       p.rec.Range,
		Placeholder: p.rec.Placeholder,
		Gateway:     p.gatewayPrefix(),
		PrefixLen:   p.rec.PrefixLen,
	}
}

// IPAM allocates pools and addresses. It is safe for concurrent use.
type IPAM struct {
	mu        sync.Mutex
	be        backend
	hostAddrs func() ([]netip.Addr, error)
	gateways  func() ([]netip.Addr, error)
	public    func() (netip.Prefix, error)
	ula       netip.Prefix // ULA_PREFIX in effect
	ulaHost   netip.Prefix // this host's ULA /64 inside ula
	pubLen    int
	ulaLen    int
	log       logrus.FieldLogger
	pools     map[string]*pool
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
		be:        be,
		hostAddrs: cfg.HostAddrs,
		gateways:  cfg.Gateways,
		public:    cfg.PublicPrefix,
		pubLen:    cmp.Or(cfg.PublicSubnetLen, plan.DefaultSubnetLen),
		ulaLen:    cmp.Or(cfg.ULASubnetLen, plan.DefaultSubnetLen),
		log:       log,
		pools:     map[string]*pool{},
		now:       time.Now,

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

// checkPlaceholderRecord refuses a persisted placeholder pool that is not
// one of the placeholder blocks. Records of the layout before per-network
// blocks (every placeholder pool 169.254.0.0/16) are refused, not migrated:
// the engine keeps that subnet in its own network record, so only
// re-creating the network helps.
func checkPlaceholderRecord(r poolRecord) error {
	if r.Prefix == PlaceholderPrefix {
		return fmt.Errorf("placeholder pool %s uses all of %s, the layout of an older v6bridge (now one /%d per network): "+
			"delete pools/%s.json and addrs/%s/ under the ipam state directory, then re-create the network",
			r.ID, r.Prefix, PlaceholderBits, dirName(r.ID), dirName(r.ID))
	}
	if r.Range != r.Prefix || !slices.Contains(placeholderBlocks, r.Prefix) {
		return fmt.Errorf("placeholder pool %s: prefix %s or range %s is not a /%d placeholder block of %s",
			r.ID, r.Prefix, r.Range, PlaceholderBits, PlaceholderPrefix)
	}
	return nil
}

// RequestPool allocates a pool. An IPv6 --subnet must be canonical, /48 to
// /120, overlap no other v6bridge pool and contain no host address; without
// one the pool gets the next free subnet of the address plan (see
// requestAuto). IPv4 requests without a subnet (engines before Docker 28 always
// send one) get a fresh placeholder pool; IPv4 subnets are refused.
func (m *IPAM) RequestPool(req PoolRequest) (Pool, error) {
	opts, err := parseOptions(req.Options)
	if err != nil {
		return Pool{}, err
	}
	if !req.V6 {
		return m.requestPlaceholder(req)
	}
	if strings.TrimSpace(req.Pool) == "" {
		return m.requestAuto(opts, req.SubPool)
	}
	subnet, err := parseV6Prefix("subnet", req.Pool)
	if err != nil {
		return Pool{}, err
	}
	rng, err := parseRange(req.SubPool, subnet)
	if err != nil {
		return Pool{}, err
	}
	var host []netip.Addr
	if m.hostAddrs != nil {
		if host, err = m.hostAddrs(); err != nil {
			return Pool{}, fmt.Errorf("check subnet %s against the host's addresses: %w", subnet, err)
		}
	}
	if err := checkHost(subnet, host); err != nil {
		return Pool{}, err
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.checkOverlap(subnet); err != nil {
		return Pool{}, err
	}
	return m.addV6Pool(subnet, rng, opts, "IPv6 pool allocated")
}

// addV6Pool persists and registers an IPv6 pool. m.mu is held.
func (m *IPAM) addV6Pool(subnet, rng netip.Prefix, opts poolOptions, msg string) (Pool, error) {
	p := newPool(poolRecord{
		ID:        v6IDPrefix + subnet.String(),
		Prefix:    subnet,
		Range:     rng,
		PrefixLen: opts.PrefixLen,
		Mode:      opts.Mode,
		Created:   m.now().UTC(),
	})
	if err := m.be.putPool(p.rec); err != nil {
		return Pool{}, err
	}
	m.pools[p.rec.ID] = p
	m.log.WithFields(logrus.Fields{"pool": p.rec.ID, "subnet": subnet, "range": rng}).Info(msg)
	return p.public(), nil
}

// PoolMode returns the mode an IPv6 pool of exactly subnet was requested
// for (--ipam-opt v6bridge.mode), or "" when it was requested without one
// or there is no such pool. The network driver, in the same process, takes
// the network's mode from it, so the mode is decided once.
func (m *IPAM) PoolMode(subnet netip.Prefix) netspec.Mode {
	m.mu.Lock()
	defer m.mu.Unlock()
	if p, ok := m.pools[v6IDPrefix+subnet.Masked().String()]; ok {
		return p.rec.Mode
	}
	return ""
}

// checkHost refuses a subnet that contains one of the host's addresses.
func checkHost(subnet netip.Prefix, host []netip.Addr) error {
	for _, h := range host {
		if !subnet.Contains(h.WithZone("")) {
			continue
		}
		hint := "carve a /112 or similar from it instead"
		if s, ok := subnetSuggestion(subnet, host); ok {
			hint += fmt.Sprintf(", e.g. --subnet %s", s)
		}
		return refuse(ErrHostAddress, "subnet %s contains %s, an address of this host: %s", subnet, h, hint)
	}
	return nil
}

// checkOverlap refuses a subnet that overlaps an existing IPv6 pool.
// m.mu is held.
func (m *IPAM) checkOverlap(subnet netip.Prefix) error {
	for _, id := range m.sortedIDs() {
		p := m.pools[id]
		if p.rec.Placeholder || !p.rec.Prefix.Overlaps(subnet) {
			continue
		}
		if m.stale(p, MinReclaimAge) {
			// Left by a network the engine forgot (its data wiped or
			// restored): the subnet is free again.
			if err := m.releaseLocked(id, "Stale pool reclaimed for a new request of an overlapping subnet"); err != nil {
				return err
			}
			continue
		}
		const hint = " (if `docker network ls` shows no such network, the plugin kept it from an engine whose data was wiped: " +
			"on the host, as root, `v6bridge gc` lists such state and `v6bridge gc --apply` removes it; " +
			"it finds the plugin's socket, managed or not. No v6bridge binary on the host? " +
			"The managed plugin carries one: /var/lib/docker/plugins/<plugin id>/rootfs/v6bridge (README, \"The v6bridge command\"))"
		if p.rec.Prefix == subnet {
			return refuse(ErrPoolOverlap, "subnet %s is already used by another v6bridge network (pool %s): choose a subnet no other v6bridge network uses"+hint,
				subnet, id)
		}
		return refuse(ErrPoolOverlap, "subnet %s overlaps %s of another v6bridge network (pool %s): choose a subnet that does not overlap it"+hint,
			subnet, p.rec.Prefix, id)
	}
	return nil
}

// requestPlaceholder answers an IPv4 pool request with the lowest free
// placeholder block.
func (m *IPAM) requestPlaceholder(req PoolRequest) (Pool, error) {
	if v := strings.TrimSpace(req.Pool); v != "" {
		return Pool{}, refuse(ErrIPv4Subnet, "v6bridge is IPv6-only: IPv4 subnet %s is not accepted; on Docker >= 28 use --ipv4=false",
			v)
	}
	if v := strings.TrimSpace(req.SubPool); v != "" {
		return Pool{}, refuse(ErrIPv4Subnet, "v6bridge is IPv6-only: IPv4 ip-range %s is not accepted; on Docker >= 28 use --ipv4=false",
			v)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var id string
	for {
		var b [8]byte
		rand.Read(b[:]) // never fails (crypto/rand, Go 1.24+)
		id = placeholderIDPrefix + hex.EncodeToString(b[:])
		if _, taken := m.pools[id]; !taken {
			break
		}
	}
	block, ok := m.freeBlock()
	if !ok {
		return Pool{}, refuse(ErrPoolExhausted, "IPv4 placeholder space %s is exhausted: it holds %d v6bridge networks (one /%d each) on engines before Docker 28, and all are in use; "+
			"remove a v6bridge network, or use Docker >= 28 with --ipv4=false, which needs no placeholder",
			PlaceholderPrefix, len(placeholderBlocks), PlaceholderBits)
	}
	p := newPool(poolRecord{
		ID:          id,
		Prefix:      block,
		Range:       block,
		Placeholder: true,
		Created:     m.now().UTC(),
	})
	if err := m.be.putPool(p.rec); err != nil {
		return Pool{}, err
	}
	m.pools[id] = p
	m.log.WithFields(logrus.Fields{"pool": id, "subnet": block}).Info("IPv4 placeholder pool allocated")
	return p.public(), nil
}

// freeBlock returns the lowest placeholder block no placeholder pool uses.
// m.mu is held.
func (m *IPAM) freeBlock() (netip.Prefix, bool) {
	used := map[netip.Prefix]bool{}
	for _, p := range m.pools {
		if p.rec.Placeholder {
			used[p.rec.Prefix] = true
		}
	}
	for _, b := range placeholderBlocks {
		if !used[b] {
			return b, true
		}
	}
	return netip.Prefix{}, false
}

// ReleasePool releases a pool and all its addresses. Unknown IDs succeed.
func (m *IPAM) ReleasePool(id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.releaseLocked(id, "Pool released")
}

// releaseLocked removes pool id, logging msg. m.mu is held.
func (m *IPAM) releaseLocked(id, msg string) error {
	p, ok := m.pools[id]
	if !ok {
		return nil
	}
	if err := m.be.deletePool(id); err != nil {
		return err
	}
	delete(m.pools, id)
	if err := m.be.purgePool(id); err != nil {
		// The pool is gone; leftovers are dropped at the next start.
		m.log.WithField("pool", id).WithError(err).Warn("Leftover state of released pool")
	}
	m.log.WithFields(logrus.Fields{"pool": id, "addresses": p.allocated()}).Info(msg)
	return nil
}

// RequestAddress allocates an address of pool poolID and returns it with
// the pool's prefix length.
//
// addr is a bare IP or "". With opts.Gateway it is the pool's gateway:
// addr, or the first address of the subnet. Otherwise a given addr is honoured exactly (anywhere in the
// subnet, even outside the ip-range), and without one the next free address
// of the range comes in round-robin order.
func (m *IPAM) RequestAddress(poolID, addr string, opts AddressOptions) (netip.Prefix, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.pools[poolID]
	if !ok {
		return netip.Prefix{}, refuse(ErrUnknownPool, "pool %q does not exist (released, or never requested from v6bridge)", poolID)
	}
	var want netip.Addr
	if strings.TrimSpace(addr) != "" {
		a, err := parseAddr(addr)
		if err != nil {
			return netip.Prefix{}, err
		}
		want = a
	}
	gateway := opts.Gateway
	var (
		got netip.Addr
		err error
	)
	switch {
	case p.rec.Placeholder && gateway:
		return placeholderGateway(p, want)
	case gateway:
		got, err = m.takeGateway(p, want)
	case want.IsValid():
		got, err = m.takeStatic(p, want)
	default:
		got, err = m.takeRemembered(p, opts.Name)
		if !got.IsValid() && err == nil {
			got, err = m.takeNext(p)
		}
	}
	if err != nil {
		return netip.Prefix{}, err
	}
	delete(p.freed, got)
	if name := opts.Name; name != "" && !gateway && p.names[name] != got {
		if err := m.be.putName(p.rec.ID, nameRecord{Name: name, Addr: got}); err != nil {
			m.log.WithError(err).WithField("pool", p.rec.ID).Warn("remember endpoint address")
		} else {
			p.names[name] = got
		}
	}
	if !gateway {
		m.forgetOtherNames(p, got, opts.Name)
	}
	return netip.PrefixFrom(got, p.rec.Prefix.Bits()), nil
}

// parseAddr parses an address as the engine sends it: a bare IP (a CIDR
// suffix is tolerated and dropped).
func parseAddr(s string) (netip.Addr, error) {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '/'); i >= 0 {
		s = s[:i]
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, refuse(ErrInvalidRequest, "address %q is not an IP address: accepted is a bare address such as fd12:3456:789a:1::10",
			s)
	}
	return a, nil
}

// placeholderGateway answers a gateway request in a placeholder pool: the
// gateway is always the first host address of the pool's block and is
// reserved, not allocated.
func placeholderGateway(p *pool, want netip.Addr) (netip.Prefix, error) {
	if want.IsValid() && want != p.gateway {
		return netip.Prefix{}, refuse(ErrOutOfRange, "gateway %s is not accepted: v6bridge's IPv4 placeholder pool %s always uses %s",
			want, p.rec.Prefix, p.gateway)
	}
	return netip.PrefixFrom(p.gateway, p.rec.Prefix.Bits()), nil
}

// checkInPool refuses an address a caller asked for that is outside the
// pool's subnet or may never be handed out.
func checkInPool(p *pool, a netip.Addr, what string) error {
	if !p.rec.Prefix.Contains(a) {
		return refuse(ErrOutOfRange, "%s %s is not in subnet %s", what, a, p.rec.Prefix)
	}
	if p.rec.Placeholder && p.alloc.isReserved(a) {
		return refuse(ErrReservedAddress, "%s %s is reserved in the IPv4 placeholder pool %s: pick another address",
			what, a, p.rec.Prefix)
	}
	if a == p.rec.Prefix.Addr() {
		return refuse(ErrReservedAddress, "%s %s is the subnet-router anycast address of %s (all-zero host part): pick another address",
			what, a, p.rec.Prefix)
	}
	return nil
}

// takeGateway allocates the gateway of an IPv6 pool. m.mu is held.
func (m *IPAM) takeGateway(p *pool, want netip.Addr) (netip.Addr, error) {
	if !want.IsValid() {
		want = p.rec.Prefix.Addr().Next()
	}
	if err := checkInPool(p, want, "gateway"); err != nil {
		return netip.Addr{}, err
	}
	if want == p.gateway {
		return want, nil // a repeated request
	}
	if p.gateway.IsValid() {
		return netip.Addr{}, refuse(ErrAddressInUse, "pool %s already has gateway %s; a second gateway %s is not accepted",
			p.rec.Prefix, p.gateway, want)
	}
	if p.alloc.inUse(want) {
		return netip.Addr{}, refuse(ErrAddressInUse, "gateway %s is already in use in subnet %s", want, p.rec.Prefix)
	}
	if err := m.be.putAddr(p.rec.ID, addrRecord{Addr: want, Gateway: true}); err != nil {
		return netip.Addr{}, err
	}
	p.take(want)
	p.gateway = want
	m.log.WithFields(logrus.Fields{"pool": p.rec.ID, "addr": want}).Info("Gateway address allocated")
	return want, nil
}

// takeStatic allocates a requested address. m.mu is held.
func (m *IPAM) takeStatic(p *pool, want netip.Addr) (netip.Addr, error) {
	if err := checkInPool(p, want, "address"); err != nil {
		return netip.Addr{}, err
	}
	if p.alloc.inUse(want) {
		what := "in use"
		if want == p.gateway {
			what = "the gateway"
		}
		return netip.Addr{}, refuse(ErrAddressInUse, "address %s is already %s in subnet %s", want, what, p.rec.Prefix)
	}
	if m.heldByEndpoint(want) {
		return netip.Addr{}, refuse(ErrAddressInUse, "address %s is still held by an endpoint of subnet %s (the engine released it while the container is attached, "+
			"e.g. after a sysctl disabled its IPv6): it is free once that container leaves the network; pick another address", want, p.rec.Prefix)
	}
	if err := m.be.putAddr(p.rec.ID, addrRecord{Addr: want}); err != nil {
		return netip.Addr{}, err
	}
	p.take(want)
	m.log.WithFields(logrus.Fields{"pool": p.rec.ID, "addr": want}).Info("Requested address allocated")
	return want, nil
}

// takeRemembered gives an endpoint the address it had last, if it is still
// free and in the range; otherwise it returns the zero address and no error.
// m.mu is held.
func (m *IPAM) takeRemembered(p *pool, name string) (netip.Addr, error) {
	a, ok := p.names[name]
	if name == "" || !ok || p.alloc.inUse(a) || p.alloc.isReserved(a) || !p.rec.Range.Contains(a) || m.heldByEndpoint(a) {
		return netip.Addr{}, nil
	}
	if err := m.be.putAddr(p.rec.ID, addrRecord{Addr: a}); err != nil {
		return netip.Addr{}, err
	}
	p.take(a)
	m.log.WithFields(logrus.Fields{"pool": p.rec.ID, "addr": a, "endpoint": name}).Info("Address allocated again to the same endpoint")
	return a, nil
}

// takeNext allocates the next free address of the pool's range in
// round-robin order. m.mu is held.
func (m *IPAM) takeNext(p *pool) (netip.Addr, error) {
	a, ok := p.alloc.next()
	// Skip addresses an endpoint still holds (Config.Held): marked used
	// for this scan only, so they come back once the endpoint is gone.
	var skipped []netip.Addr
	for ok && m.heldByEndpoint(a) {
		p.alloc.add(a)
		skipped = append(skipped, a)
		a, ok = p.alloc.next()
	}
	for _, s := range skipped {
		p.alloc.remove(s)
	}
	if len(skipped) > 0 {
		m.log.WithFields(logrus.Fields{"pool": p.rec.ID, "skipped": skipped}).Info("Addresses released by the engine but still held by an endpoint skipped")
	}
	if !ok {
		return netip.Addr{}, refuse(ErrPoolExhausted, "%s", exhaustedText(p))
	}
	if err := m.be.putAddr(p.rec.ID, addrRecord{Addr: a}); err != nil {
		return netip.Addr{}, err
	}
	if err := m.be.putCursor(p.rec.ID, a); err != nil {
		if derr := m.be.deleteAddr(p.rec.ID, a); derr != nil {
			m.log.WithFields(logrus.Fields{"pool": p.rec.ID, "addr": a}).WithError(derr).Warn("Undo address allocation")
		}
		return netip.Addr{}, err
	}
	p.take(a)
	p.alloc.cursor = a
	m.log.WithFields(logrus.Fields{"pool": p.rec.ID, "addr": a}).Info("Address allocated")
	return a, nil
}

// heldByEndpoint reports whether an endpoint of the driver still has a
// (Config.Held).
func (m *IPAM) heldByEndpoint(a netip.Addr) bool {
	return m.held != nil && m.held(a)
}

// exhaustedText describes an exhausted pool.
func exhaustedText(p *pool) string {
	if p.rec.Placeholder {
		return fmt.Sprintf("placeholder IPv4 pool %s is exhausted: all %d addresses a v6bridge network has on engines before Docker 28 are in use; "+
			"spread the containers over more networks, or use Docker >= 28 with --ipv4=false",
			p.rec.Prefix, p.alloc.capacity())
	}
	where := fmt.Sprintf("subnet %s", p.rec.Prefix)
	if p.rec.Range != p.rec.Prefix {
		where += fmt.Sprintf(" (ip-range %s)", p.rec.Range)
	}
	return fmt.Sprintf("pool %s is exhausted: all %d usable of its %s addresses are in use; use a larger subnet or ip-range",
		where, p.alloc.capacity(), prefixSizeText(p.rec.Range))
}

// ReleaseAddress frees an address of pool poolID. Unknown pools and
// addresses succeed.
func (m *IPAM) ReleaseAddress(poolID, addr string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.pools[poolID]
	if !ok {
		return nil
	}
	a, err := parseAddr(addr)
	if err != nil {
		return err
	}
	if !p.has(a) {
		return nil
	}
	if err := m.be.deleteAddr(poolID, a); err != nil {
		return err
	}
	p.free(a)
	p.freed[a] = m.now()
	m.log.WithFields(logrus.Fields{"pool": poolID, "addr": a}).Info("Address released")
	return nil
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
