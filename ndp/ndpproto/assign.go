package ndpproto

import "net/netip"

// Assign picks the uplink that answers for p (a single address as a /128,
// or a range): the one with the longest on-link prefix containing p; ties
// and no match at all go to the first uplink (index 0). onLink holds each
// uplink's on-link prefixes, in uplink order. It returns -1 only when there
// are no uplinks.
func Assign(p netip.Prefix, onLink [][]netip.Prefix) int {
	if len(onLink) == 0 {
		return -1
	}
	best, bestBits := 0, -1
	for i, prefixes := range onLink {
		for _, q := range prefixes {
			q = q.Masked()
			if q.Bits() <= p.Bits() && q.Contains(p.Addr()) && q.Bits() > bestBits {
				best, bestBits = i, q.Bits()
			}
		}
	}
	return best
}
