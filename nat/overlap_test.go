package nat

import (
	"math/rand/v2"
	"testing"
)

// TestMayOverlapNeverMissesAConflict: CheckConflicts skips its pairwise
// check when mayOverlap says no two ranges of a protocol overlap; compare it
// with brute force on random mappings.
func TestMayOverlapNeverMissesAConflict(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	protos := []uint8{ProtoTCP, ProtoUDP, ProtoSCTP}
	for range 5000 {
		all := make([]ownedMapping, r.IntN(8))
		for i := range all {
			first := uint16(1 + r.IntN(40))
			all[i].m = Mapping{Proto: protos[r.IntN(3)], HostFirst: first, HostLast: first + uint16(r.IntN(4))}
		}
		want := false
		for j := range all {
			for i := range j {
				a, b := all[i].m, all[j].m
				if a.Proto == b.Proto && max(a.HostFirst, b.HostFirst) <= min(a.HostLast, b.HostLast) {
					want = true
				}
			}
		}
		if got := mayOverlap(all); got != want {
			t.Fatalf("mayOverlap(%+v) = %v, brute force %v", all, got, want)
		}
	}
}
