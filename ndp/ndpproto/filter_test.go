package ndpproto

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	mndp "github.com/mdlayher/ndp"
	"golang.org/x/net/bpf"

	"github.com/v6bridge/v6bridge/ndp/internal/ndptest"
)

// runFilter runs prog on pkt in x/net/bpf's VM and reports whether it
// passes. The VM takes Ethernet frames for absolute loads the same way a
// SOCK_DGRAM packet socket hands the kernel the network header, so pkt is
// given as is.
func runFilter(t testing.TB, prog []bpf.Instruction, pkt []byte) bool {
	t.Helper()
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatalf("filter does not load: %v", err)
	}
	n, err := vm.Run(pkt)
	if err != nil {
		t.Fatalf("filter run: %v", err)
	}
	return n > 0
}

func nsPacket(t testing.TB, target netip.Addr, hbh bool) []byte {
	icmp := ndptest.ICMPNS(t, ndptest.RouterAddr, ndptest.SNM(target), target, ndptest.SLLAOpt(ndptest.RouterMAC))
	if hbh {
		return ndptest.IPv6Packet(ndptest.RouterAddr, ndptest.SNM(target), 255, 0, []byte{58, 0, 1, 4, 0, 0, 0, 0}, icmp)
	}
	return ndptest.IPv6Packet(ndptest.RouterAddr, ndptest.SNM(target), 255, 0, nil, icmp)
}

// TestBuildFilter runs the capture filter in a BPF VM: it passes the
// solicitations for the targets (also behind a hop-by-hop header) and
// drops those for other addresses, advertisements, other ICMPv6 and other
// traffic, at every size of target set, exactly while the set is small.
func TestBuildFilter(t *testing.T) {
	base := netip.MustParseAddr("2001:db8:1234:a1:1::100")
	otherNet := netip.MustParseAddr("2001:db8:1234:a1:2::100")
	wideRange := netip.MustParsePrefix("2001:db8:77::/48")
	rnd := rand.New(rand.NewPCG(3, 4))
	for _, tc := range []struct {
		name       string
		n          int // addresses from base
		ranges     []netip.Prefix
		wantCoarse bool
	}{
		{name: "empty"},
		{name: "one", n: 1},
		{name: "40", n: 40},
		{name: "1000", n: 1000, wantCoarse: true},
		{name: "5000", n: 5000, wantCoarse: true},
		{name: "ranges", n: 3, ranges: []netip.Prefix{netip.MustParsePrefix("2001:db8:1234:a1:3::/112"), wideRange}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var addrs []netip.Addr
			for i := range tc.n {
				addrs = append(addrs, ndptest.Nth(base, i*7))
			}
			// A few in another /96 too.
			if tc.n > 0 {
				addrs = append(addrs, otherNet)
			}
			prog, coarse := BuildFilter(addrs, tc.ranges)
			t.Logf("%d addresses, %d ranges: %d instructions, coarse %v", len(addrs), len(tc.ranges), len(prog), coarse)
			if coarse != tc.wantCoarse {
				t.Errorf("coarse = %v, want %v", coarse, tc.wantCoarse)
			}
			if len(prog) > maxFilterLen {
				t.Fatalf("%d instructions", len(prog))
			}
			for _, a := range addrs {
				for _, hbh := range []bool{false, true} {
					if !runFilter(t, prog, nsPacket(t, a, hbh)) {
						t.Fatalf("solicitation for target %s (hop-by-hop %v) dropped", a, hbh)
					}
				}
			}
			for _, p := range tc.ranges {
				in := p.Addr().Next()
				if !runFilter(t, prog, nsPacket(t, in, false)) {
					t.Errorf("solicitation for %s in range %s dropped", in, p)
				}
			}
			// Random addresses of the /64 are dropped (the flood).
			for range 200 {
				b := base.As16()
				for i := 8; i < 16; i++ {
					b[i] = byte(rnd.IntN(256))
				}
				a := netip.AddrFrom16(b)
				if runFilter(t, prog, nsPacket(t, a, false)) {
					t.Fatalf("solicitation for random %s passes", a)
				}
			}
			if !tc.wantCoarse && tc.n > 0 {
				// Exact: the neighbour of a live address is dropped.
				if a := ndptest.Nth(base, 1); runFilter(t, prog, nsPacket(t, a, false)) {
					t.Errorf("solicitation for %s, next to live ones, passes", a)
				}
			}
			live := base
			if tc.n == 0 {
				return
			}
			adv, _ := mndp.MarshalMessageChecksum(&mndp.NeighborAdvertisement{TargetAddress: live}, ndptest.RouterAddr, live)
			echo := []byte{128, 0, 0, 0, 0, 0, 0, 0}
			udp := ndptest.IPv6Packet(ndptest.RouterAddr, live, 64, 0, nil, make([]byte, 30))
			udp[6] = 17
			for name, pkt := range map[string][]byte{
				"advertisement": ndptest.IPv6Packet(ndptest.RouterAddr, live, 255, 0, nil, adv),
				"echo request":  ndptest.IPv6Packet(ndptest.RouterAddr, live, 64, 0, nil, echo),
				"udp":           udp,
				"truncated":     nsPacket(t, live, false)[:60],
				"mld behind hop-by-hop": ndptest.IPv6Packet(ndptest.RouterLL, netip.MustParseAddr("ff02::16"), 1, 0,
					[]byte{58, 0, 5, 2, 0, 0, 1, 0}, []byte{143, 0, 0, 0, 0, 0, 0, 0}),
			} {
				if runFilter(t, prog, pkt) {
					t.Errorf("%s passes", name)
				}
			}
		})
	}
}

// BenchmarkBuildFilter is the cost of rebuilding the filter when a target
// is added, at several sizes.
func BenchmarkBuildFilter(b *testing.B) {
	for _, n := range []int{10, 1000, 5000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			var addrs []netip.Addr
			base := netip.MustParseAddr("2001:db8:1234:a1:1::100")
			for i := range n {
				addrs = append(addrs, ndptest.Nth(base, i))
			}
			for b.Loop() {
				BuildFilter(addrs, nil)
			}
		})
	}
}
