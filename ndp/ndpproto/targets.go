package ndpproto

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// ErrInvalidTarget is returned for a target that can never be answered for:
// not IPv6, unspecified, multicast, loopback or link-local.
var ErrInvalidTarget = errors.New("invalid ndp target")

// Targets is an immutable set of addresses plus whole ranges to answer
// for. The zero value is the empty set.
type Targets struct {
	addrs  map[netip.Addr]struct{}
	ranges []netip.Prefix // masked, sorted, deduplicated
}

// NewTargets builds the set from addrs and ranges, dropping zones and
// duplicates and masking the ranges. An address or range that cannot be
// answered for is an error wrapping ErrInvalidTarget.
func NewTargets(addrs []netip.Addr, ranges []netip.Prefix) (Targets, error) {
	t := Targets{addrs: make(map[netip.Addr]struct{}, len(addrs))}
	for _, a := range addrs {
		a = a.WithZone("")
		if err := CheckTarget(a); err != nil {
			return Targets{}, err
		}
		t.addrs[a] = struct{}{}
	}
	for _, p := range ranges {
		if !p.IsValid() {
			return Targets{}, fmt.Errorf("range %s: %w", p, ErrInvalidTarget)
		}
		p = p.Masked()
		if err := CheckTarget(p.Addr()); err != nil {
			return Targets{}, fmt.Errorf("range %s: %w", p, err)
		}
		t.ranges = append(t.ranges, p)
	}
	slices.SortFunc(t.ranges, comparePrefix)
	t.ranges = slices.Compact(t.ranges)
	return t, nil
}

// CheckTarget refuses what cannot be a target: anything but a routable
// IPv6 unicast address (errors wrap ErrInvalidTarget).
func CheckTarget(a netip.Addr) error {
	switch {
	case !a.IsValid() || !a.Is6() || a.Is4In6():
		return fmt.Errorf("target %s is not an IPv6 address: %w", a, ErrInvalidTarget)
	case a.IsUnspecified(), a.IsMulticast(), a.IsLoopback(), a.IsLinkLocalUnicast():
		return fmt.Errorf("target %s is not a routable unicast address: %w", a, ErrInvalidTarget)
	}
	return nil
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// Contains reports whether a is one of the addresses or inside one of the
// ranges. Zones are ignored.
func (t Targets) Contains(a netip.Addr) bool {
	a = a.WithZone("")
	if _, ok := t.addrs[a]; ok {
		return true
	}
	for _, p := range t.ranges {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Addrs returns the single addresses, sorted.
func (t Targets) Addrs() []netip.Addr {
	out := make([]netip.Addr, 0, len(t.addrs))
	for a := range t.addrs {
		out = append(out, a)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// Ranges returns the ranges, masked and sorted.
func (t Targets) Ranges() []netip.Prefix { return slices.Clone(t.ranges) }

// Update removes the addresses in remove and adds those in add (an address
// in both ends up added), in place: copies of t see the change. add and
// remove hold addresses without zones.
func (t *Targets) Update(add, remove []netip.Addr) {
	if t.addrs == nil {
		t.addrs = map[netip.Addr]struct{}{}
	}
	for _, a := range remove {
		delete(t.addrs, a)
	}
	for _, a := range add {
		t.addrs[a] = struct{}{}
	}
}

// Len is the number of single addresses plus the number of ranges.
func (t Targets) Len() int { return len(t.addrs) + len(t.ranges) }

// Equal reports whether t and o hold the same addresses and ranges.
func (t Targets) Equal(o Targets) bool {
	if len(t.addrs) != len(o.addrs) || !slices.Equal(t.ranges, o.ranges) {
		return false
	}
	for a := range t.addrs {
		if _, ok := o.addrs[a]; !ok {
			return false
		}
	}
	return true
}

// Diff returns the addresses and ranges in next but not in prev (added)
// and those in prev but not in next (removed), each sorted.
func Diff(prev, next Targets) (added, removed []netip.Addr, addedRanges, removedRanges []netip.Prefix) {
	for _, a := range next.Addrs() {
		if _, ok := prev.addrs[a]; !ok {
			added = append(added, a)
		}
	}
	for _, a := range prev.Addrs() {
		if _, ok := next.addrs[a]; !ok {
			removed = append(removed, a)
		}
	}
	for _, p := range next.ranges {
		if !slices.Contains(prev.ranges, p) {
			addedRanges = append(addedRanges, p)
		}
	}
	for _, p := range prev.ranges {
		if !slices.Contains(next.ranges, p) {
			removedRanges = append(removedRanges, p)
		}
	}
	return added, removed, addedRanges, removedRanges
}
