package plan

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/netip"
	"strings"

	"github.com/v6bridge/v6bridge/netspec"
)

// DefaultSubnetLen is the prefix length of automatically carved subnets: a
// /112 holds 65536 addresses, and its bridge route is more specific than
// the uplink's /64, so no route surgery is needed.
const DefaultSubnetLen = 112

// HostULABits is the length of this host's ULA subnet inside ULA_PREFIX.
const HostULABits = 64

// ErrExhausted is returned by Carve when no subnet of the asked size is
// free in the space.
var ErrExhausted = errors.New("no free subnet")

// Avoid is what a carved subnet must not overlap or contain.
type Avoid struct {
	// Prefixes are subnets already in use (pools of other networks).
	Prefixes []netip.Prefix
	// Addrs are addresses a subnet must not contain: the host's own and
	// the uplink's gateway.
	Addrs []netip.Addr
}

// SlotBits is how many bits of the subnet field Carve counts in: subnets are
// taken at the top of the field, <space>:1::/112, <space>:2::/112, ... as
// in the seed's plan, so they read well and each has room to grow.
const SlotBits = 16

// Carve returns the first free subnet of length bits inside space: one that
// overlaps none of avoid.Prefixes and contains none of avoid.Addrs.
//
// Candidates count in the top SlotBits bits of the subnet field (all of
// it when it is narrower): a /64 gives 2001:db8:1234:a1:1::/112, then
// 2001:db8:1234:a1:2::/112, up to 2001:db8:1234:a1:ffff::/112. When space
// holds more than one candidate the first (index 0, with space's ::0 and
// ::1, which hosts and routers customarily take) is never handed out. It
// wraps ErrExhausted when nothing is free. The scan jumps over a whole used
// prefix at once, so its cost grows with what there is to avoid, not with
// the size of space.
func Carve(space netip.Prefix, bits int, avoid Avoid) (netip.Prefix, error) {
	if !space.IsValid() || bits < space.Bits() || bits > space.Addr().BitLen() {
		return netip.Prefix{}, fmt.Errorf("carve /%d from %s: the length must be from /%d to /%d", bits, space, space.Bits(), space.Addr().BitLen())
	}
	space = space.Masked()
	slot := space.Bits() + min(SlotBits, bits-space.Bits()) // length of a candidate's slot
	start := space.Addr()
	if slot > space.Bits() {
		start = withBit(start, slot-1) // index 1
	}
	for a := start; ; {
		c := netip.PrefixFrom(a, bits)
		end := LastAddr(c)
		conflict := false
		for _, p := range avoid.Prefixes {
			p = p.Masked()
			if !p.Overlaps(c) {
				continue
			}
			conflict = true
			if l := LastAddr(p); l.Compare(end) > 0 {
				end = l
			}
		}
		for _, h := range avoid.Addrs {
			if c.Contains(h.WithZone("")) {
				conflict = true
			}
		}
		if !conflict {
			return c, nil
		}
		// The next slot after end.
		next := LastAddr(netip.PrefixFrom(end, slot)).Next()
		if !next.IsValid() || !space.Contains(next) {
			return netip.Prefix{}, fmt.Errorf("carve /%d from %s: %w", bits, space, ErrExhausted)
		}
		a = next
	}
}

// Held is how many subnets of length bits Carve can hand out from space,
// in decimal: one when space holds one, else all candidates but the first.
func Held(space netip.Prefix, bits int) string {
	n := new(big.Int).Lsh(big.NewInt(1), uint(min(SlotBits, bits-space.Bits())))
	if n.Cmp(big.NewInt(1)) > 0 {
		n.Sub(n, big.NewInt(1))
	}
	return n.String()
}

// Subnet returns the i-th subnet of length bits inside space (i counts from
// 0), or false when space has no such subnet.
func Subnet(space netip.Prefix, bits int, i uint64) (netip.Prefix, bool) {
	if bits < space.Bits() || bits > space.Addr().BitLen() {
		return netip.Prefix{}, false
	}
	width := bits - space.Bits()
	if width < 64 && i >= 1<<width {
		return netip.Prefix{}, false
	}
	b := space.Masked().Addr().AsSlice()
	// Add i << (len-bits) to the address: walk the bits of i upward
	// from the subnet field's lowest bit.
	for k := 0; k < 64 && i>>k != 0; k++ {
		if i>>k&1 == 1 {
			pos := bits - 1 - k
			b[pos/8] |= 0x80 >> (pos % 8)
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return netip.PrefixFrom(a, bits), true
}

// LastAddr is the highest address of p.
func LastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := range b {
		switch lo := i * 8; {
		case lo >= p.Bits():
			b[i] = 0xff
		case lo+8 > p.Bits():
			b[i] |= 0xff >> (p.Bits() - lo)
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// withBit returns a with bit pos (0 is the most significant) set.
func withBit(a netip.Addr, pos int) netip.Addr {
	b := a.AsSlice()
	b[pos/8] |= 0x80 >> (pos % 8)
	r, _ := netip.AddrFromSlice(b)
	return r
}

// ULA prefix lengths accepted for ULA_PREFIX.
const (
	ULABits    = 48 // what NewULA generates (RFC 4193: fd + 40-bit global ID)
	MaxULABits = HostULABits
)

// NewULA returns a random RFC 4193 /48: fd00::/8 and a 40-bit global ID
// from r (crypto/rand when r is nil), so two hosts never pick the same one
// in practice.
func NewULA(r io.Reader) (netip.Prefix, error) {
	if r == nil {
		r = rand.Reader
	}
	var b [16]byte
	b[0] = 0xfd
	if _, err := io.ReadFull(r, b[1:6]); err != nil {
		return netip.Prefix{}, fmt.Errorf("generate a ULA global ID: %w", err)
	}
	return netip.PrefixFrom(netip.AddrFrom16(b), ULABits), nil
}

// CheckULA refuses a ULA_PREFIX that is not a canonical prefix of fd00::/8
// from /48 to /64; what names the setting in the message.
func CheckULA(what string, p netip.Prefix) error {
	switch {
	case !p.IsValid() || !p.Addr().Is6() || p.Addr().Is4In6():
		return fmt.Errorf("%s=%q is not an IPv6 prefix: accepted is a /48 of fd00::/8 such as fd12:3456:789a::/48, or auto", what, p)
	case !netspec.IsLocalULA(p):
		return fmt.Errorf("%s=%s is not a unique local prefix of fd00::/8: accepted is a /48 of fd00::/8 with 40 random bits (RFC 4193), or auto", what, p)
	case p.Bits() < ULABits || p.Bits() > MaxULABits:
		return fmt.Errorf("%s=%s is a /%d: accepted are /%d to /%d of fd00::/8", what, p, p.Bits(), ULABits, MaxULABits)
	case p != p.Masked():
		return fmt.Errorf("%s=%s has host bits set: did you mean %s?", what, p, p.Masked())
	}
	return nil
}

// ParsePublic parses and checks a PUBLIC_PREFIX as typed (what names the
// setting); "" gives the zero prefix: the uplink's /64.
func ParsePublic(what, s string) (netip.Prefix, error) {
	if s = strings.TrimSpace(s); s == "" {
		return netip.Prefix{}, nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf(publicWords, what, s)
	}
	return p, CheckPublic(what, p)
}

// ParseULA parses and checks a ULA_PREFIX as typed (what names the
// setting); "" and "auto" give the zero prefix: generated once.
func ParseULA(what, s string) (netip.Prefix, error) {
	if s = strings.TrimSpace(s); s == "" || s == "auto" {
		return netip.Prefix{}, nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%s=%q: accepted is a /48 of fd00::/8 such as fd12:3456:789a::/48, or auto", what, s)
	}
	return p, CheckULA(what, p)
}

const publicWords = "%s=%q: accepted is a global IPv6 prefix such as 2001:db8:1234:a1::/64 (the provider's), or empty for the uplink's /64"

// CheckPublic refuses a PUBLIC_PREFIX that is not a canonical global
// unicast IPv6 prefix outside fc00::/7; what names the setting in the
// message. serve and plan share it, so both refuse with the same words.
func CheckPublic(what string, p netip.Prefix) error {
	if !p.IsValid() || !netspec.IsPublic(p.Addr()) || p != p.Masked() {
		return fmt.Errorf(publicWords, what, p.String())
	}
	return nil
}

// HostULA is this host's ULA /64 inside ula: the hostID-th /64 (0 is the
// first). v6bridge carves nat and internal networks from it.
func HostULA(ula netip.Prefix, hostID uint64) (netip.Prefix, error) {
	p, ok := Subnet(ula, HostULABits, hostID)
	if !ok {
		return netip.Prefix{}, fmt.Errorf("host id %d is not a /64 of %s: accepted are 0 to %s", hostID, ula, lastIndex(ula, HostULABits))
	}
	return p, nil
}

func lastIndex(space netip.Prefix, bits int) string {
	n := new(big.Int).Lsh(big.NewInt(1), uint(bits-space.Bits()))
	return n.Sub(n, big.NewInt(1)).String()
}
