package ipam

import (
	"math"
	"math/big"
	"net/netip"
)

// lastAddr is the highest address of p (all host bits set). p must be
// masked.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Addr()
	if a.Is4() {
		b := a.As4()
		setHostBits(b[:], p.Bits())
		return netip.AddrFrom4(b)
	}
	b := a.As16()
	setHostBits(b[:], p.Bits())
	return netip.AddrFrom16(b)
}

// setHostBits sets every bit of b after the first bits bits.
func setHostBits(b []byte, bits int) {
	for i := range b {
		switch lo := i * 8; {
		case lo >= bits:
			b[i] = 0xff
		case lo+8 > bits:
			b[i] |= 0xff >> (bits - lo)
		}
	}
}

// prefixSize is the number of addresses in p, saturated at math.MaxUint64
// (a /64 holds 2^64 addresses, one more than a uint64 counts).
func prefixSize(p netip.Prefix) uint64 {
	host := p.Addr().BitLen() - p.Bits()
	if host >= 64 {
		return math.MaxUint64
	}
	return 1 << host
}

// prefixSizeText is the exact number of addresses in p in decimal, for
// messages.
func prefixSizeText(p netip.Prefix) string {
	host := p.Addr().BitLen() - p.Bits()
	return new(big.Int).Lsh(big.NewInt(1), uint(host)).String()
}

// addrSet is a set of addresses.
type addrSet map[netip.Addr]struct{}

// allocator hands out addresses of one range in round-robin order: the scan
// starts after the last address it handed out (the cursor) and wraps at the
// end of the range, so a released address is the last to come back. It keeps
// no bitmap of the range: the in-use set is a map and a scan visits at most
// one more address than there are used and reserved ones, so it stays fast
// on any range up to a /64 and beyond.
//
// allocator is pure bookkeeping; it never touches the disk.
type allocator struct {
	rng         netip.Prefix
	first, last netip.Addr
	size        uint64       // addresses in rng, saturated
	reserved    []netip.Addr // addresses in rng never handed out
	used        addrSet      // allocated addresses, possibly also outside rng
	usedInRange uint64       // how many of used lie in rng
	cursor      netip.Addr   // last address handed out; zero: none yet
}

// newAllocator returns an empty allocator over rng (masked) that never hands
// out the addresses in reserved. Reserved addresses outside rng and
// duplicates are ignored.
func newAllocator(rng netip.Prefix, reserved ...netip.Addr) *allocator {
	a := &allocator{
		rng:   rng,
		first: rng.Addr(),
		last:  lastAddr(rng),
		size:  prefixSize(rng),
		used:  addrSet{},
	}
	for _, r := range reserved {
		if rng.Contains(r) && !a.isReserved(r) {
			a.reserved = append(a.reserved, r)
		}
	}
	return a
}

func (a *allocator) isReserved(addr netip.Addr) bool {
	for _, r := range a.reserved {
		if r == addr {
			return true
		}
	}
	return false
}

// inUse reports whether addr is allocated.
func (a *allocator) inUse(addr netip.Addr) bool {
	_, ok := a.used[addr]
	return ok
}

// add marks addr as allocated.
func (a *allocator) add(addr netip.Addr) {
	if a.inUse(addr) {
		return
	}
	a.used[addr] = struct{}{}
	if a.rng.Contains(addr) {
		a.usedInRange++
	}
}

// remove marks addr as free.
func (a *allocator) remove(addr netip.Addr) {
	if !a.inUse(addr) {
		return
	}
	delete(a.used, addr)
	if a.rng.Contains(addr) {
		a.usedInRange--
	}
}

// capacity is the number of addresses the range can hand out, saturated.
func (a *allocator) capacity() uint64 {
	if a.size == math.MaxUint64 {
		return a.size
	}
	return a.size - uint64(len(a.reserved))
}

// next returns the address the next allocation would hand out, without
// taking it; ok is false when the range is exhausted. The caller takes it
// with add and moves the cursor with setCursor.
func (a *allocator) next() (addr netip.Addr, ok bool) {
	if a.size != math.MaxUint64 && a.usedInRange+uint64(len(a.reserved)) >= a.size {
		return netip.Addr{}, false
	}
	start := a.first
	if a.cursor.IsValid() && a.rng.Contains(a.cursor) && a.cursor != a.last {
		start = a.cursor.Next()
	}
	// A free address exists, so the scan ends after at most
	// usedInRange+len(reserved)+1 steps; the start check is a safety net.
	addr = start
	for {
		if !a.inUse(addr) && !a.isReserved(addr) {
			return addr, true
		}
		if addr == a.last {
			addr = a.first
		} else {
			addr = addr.Next()
		}
		if addr == start {
			return netip.Addr{}, false
		}
	}
}
