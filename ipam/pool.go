package ipam

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/v6bridge/v6bridge/netspec"
)

// Pool ID forms. IDs are opaque to the engine.
const (
	v6IDPrefix          = "v6bridge/"      // + canonical prefix: one pool per prefix
	placeholderIDPrefix = "v4placeholder/" // + random hex: fresh per request
)

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
	if m.host != nil {
		if host, err = m.host.HostAddrs(); err != nil {
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

// FindOverlap is v6bridge's one rule on subnet overlap (issue 23): it
// returns who uses a subnet that overlaps (or equals) subnet, from used
// (who uses which subnet), and false when no one does. Of several, it
// returns the lowest subnet (by address, then length, then who). The IPAM
// refuses a requested --subnet with it (RequestPool; automatic subnets are
// carved around every pool, so no two pools overlap), and the network
// driver refuses with it a network another IPAM serves, which never
// reaches this package; each names the other user in its own words.
// Other packages (nat) may assert that subnets do not overlap, but never
// decide it.
func FindOverlap(subnet netip.Prefix, used map[string]netip.Prefix) (who string, ok bool) {
	var best netip.Prefix
	for w, p := range used {
		if !p.Overlaps(subnet) {
			continue
		}
		c := p.Addr().Compare(best.Addr())
		if !ok || c < 0 || c == 0 && (p.Bits() < best.Bits() || p.Bits() == best.Bits() && w < who) {
			who, best, ok = w, p, true
		}
	}
	return who, ok
}

// checkOverlap refuses a subnet that overlaps an existing IPv6 pool
// (FindOverlap), after reclaiming the stale pools that overlap it below
// the first one in use. m.mu is held.
func (m *IPAM) checkOverlap(subnet netip.Prefix) error {
	used := make(map[string]netip.Prefix, len(m.pools))
	for id, p := range m.pools {
		if !p.rec.Placeholder {
			used[id] = p.rec.Prefix
		}
	}
	for {
		id, ok := FindOverlap(subnet, used)
		if !ok {
			return nil
		}
		p := m.pools[id]
		if !m.stale(p, MinReclaimAge) {
			return overlapRefusal(subnet, p.rec.Prefix, id)
		}
		// Left by a network the engine forgot (its data wiped or
		// restored): the subnet is free again.
		if err := m.releaseLocked(id, "Stale pool reclaimed for a new request of an overlapping subnet"); err != nil {
			return err
		}
		delete(used, id)
	}
}

// overlapRefusal refuses subnet, which overlaps other, the subnet of pool id.
func overlapRefusal(subnet, other netip.Prefix, id string) error {
	const hint = " (if `docker network ls` shows no such network, the plugin kept it from an engine whose data was wiped: " +
		"on the host, as root, `v6bridge gc` lists such state and `v6bridge gc --apply` removes it; " +
		"it finds the plugin's socket, managed or not. No v6bridge binary on the host? " +
		"The managed plugin carries one: /var/lib/docker/plugins/<plugin id>/rootfs/v6bridge (README, \"The v6bridge command\"))"
	if other == subnet {
		return refuse(ErrPoolOverlap, "subnet %s is already used by another v6bridge network (pool %s): choose a subnet no other v6bridge network uses"+hint,
			subnet, id)
	}
	return refuse(ErrPoolOverlap, "subnet %s overlaps %s of another v6bridge network (pool %s): choose a subnet that does not overlap it"+hint,
		subnet, other, id)
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
