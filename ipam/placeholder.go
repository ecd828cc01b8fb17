package ipam

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/sirupsen/logrus"
)

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
