package ipam

import (
	"math"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLastAddrAndSize(t *testing.T) {
	tests := []struct {
		prefix   string
		last     string
		size     uint64
		sizeText string
	}{
		{"fd12::/120", "fd12::ff", 256, "256"},
		{"fd12::100/120", "fd12::1ff", 256, "256"},
		{"fd12::/112", "fd12::ffff", 65536, "65536"},
		{"fd12::/116", "fd12::fff", 4096, "4096"},
		{"fd12::/65", "fd12::7fff:ffff:ffff:ffff", 1 << 63, "9223372036854775808"},
		{"fd12::/64", "fd12::ffff:ffff:ffff:ffff", math.MaxUint64, "18446744073709551616"},
		{"fd12::/48", "fd12::ffff:ffff:ffff:ffff:ffff", math.MaxUint64, "1208925819614629174706176"},
		{"fd12::/61", "fd12::7:ffff:ffff:ffff:ffff", math.MaxUint64, "147573952589676412928"},
		{"169.254.0.0/16", "169.254.255.255", 65536, "65536"},
		{"10.1.2.0/23", "10.1.3.255", 512, "512"},
	}
	for _, tt := range tests {
		p := netip.MustParsePrefix(tt.prefix)
		if got := lastAddr(p).String(); got != tt.last {
			t.Errorf("lastAddr(%s) = %s, want %s", p, got, tt.last)
		}
		if got := prefixSize(p); got != tt.size {
			t.Errorf("prefixSize(%s) = %d, want %d", p, got, tt.size)
		}
		if got := prefixSizeText(p); got != tt.sizeText {
			t.Errorf("prefixSizeText(%s) = %s, want %s", p, got, tt.sizeText)
		}
	}
}

// take allocates n addresses from a and returns them.
func take(a *allocator, n int) []string {
	var out []string
	for range n {
		addr, ok := a.next()
		if !ok {
			return append(out, "exhausted")
		}
		a.add(addr)
		a.cursor = addr
		out = append(out, addr.String())
	}
	return out
}

func TestAllocatorWrapsAcross64BitBoundary(t *testing.T) {
	// The range crosses from ...:0:ffff:ffff:ffff:ffff to ...:1:0:0:0:0,
	// where a uint64 of the low half would overflow.
	a := newAllocator(netip.MustParsePrefix("fd12::/63"), netip.MustParseAddr("fd12::"))
	a.cursor = netip.MustParseAddr("fd12::ffff:ffff:ffff:fffe")
	got := take(a, 3)
	want := []string{"fd12::ffff:ffff:ffff:ffff", "fd12:0:0:1::", "fd12:0:0:1::1"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestAllocatorWrapsAtEndOfRange(t *testing.T) {
	for _, tt := range []struct {
		prefix, cursor string
		want           []string
	}{
		// The anycast at the start of the range is skipped after the wrap.
		{"fd12::/64", "fd12::ffff:ffff:ffff:fffe", []string{"fd12::ffff:ffff:ffff:ffff", "fd12::1", "fd12::2"}},
		{"fd12::/120", "fd12::ff", []string{"fd12::1", "fd12::2"}},
		// The very last IPv6 address: Next would be invalid.
		{"2001:db8:ffff:ffff:ffff:ffff:ffff:ff00/120", "2001:db8:ffff:ffff:ffff:ffff:ffff:fffe",
			[]string{"2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "2001:db8:ffff:ffff:ffff:ffff:ffff:ff01"}},
		{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff00/120", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe",
			[]string{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff01"}},
		// A cursor outside the range (the range changed) restarts at the
		// beginning.
		{"fd12::/120", "fd99::5", []string{"fd12::1"}},
	} {
		p := netip.MustParsePrefix(tt.prefix)
		a := newAllocator(p, p.Addr())
		a.cursor = netip.MustParseAddr(tt.cursor)
		if diff := cmp.Diff(tt.want, take(a, len(tt.want))); diff != "" {
			t.Errorf("%s from %s (-want +got):\n%s", tt.prefix, tt.cursor, diff)
		}
	}
}

func TestAllocatorCounts(t *testing.T) {
	rng := netip.MustParsePrefix("fd12::100/126")
	a := newAllocator(rng, netip.MustParseAddr("fd12::"), netip.MustParseAddr("fd12::101"), netip.MustParseAddr("fd12::101"))
	if got := a.capacity(); got != 3 {
		t.Fatalf("capacity %d, want 3 (4 minus one reserved; out-of-range and duplicate reserved ignored)", got)
	}
	a.add(netip.MustParseAddr("fd12::5")) // outside the range: does not use it up
	a.add(netip.MustParseAddr("fd12::5"))
	got := take(a, 4)
	want := []string{"fd12::100", "fd12::102", "fd12::103", "exhausted"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	a.remove(netip.MustParseAddr("fd12::5"))
	a.remove(netip.MustParseAddr("fd12::5"))
	if a.usedInRange != 3 {
		t.Errorf("usedInRange %d, want 3", a.usedInRange)
	}
	a.remove(netip.MustParseAddr("fd12::102"))
	if diff := cmp.Diff([]string{"fd12::102", "exhausted"}, take(a, 2)); diff != "" {
		t.Errorf("after release (-want +got):\n%s", diff)
	}
}

// TestAllocatorScanBounded checks that a scan over a /64 full of used
// addresses right after the cursor ends where the used run ends.
func TestAllocatorScanBounded(t *testing.T) {
	a := newAllocator(netip.MustParsePrefix("fd12::/64"), netip.MustParseAddr("fd12::"))
	addr := netip.MustParseAddr("fd12::1")
	for range 50000 {
		a.add(addr)
		addr = addr.Next()
	}
	got, ok := a.next()
	if !ok || got != addr {
		t.Errorf("next = %s %v, want %s", got, ok, addr)
	}
}
