package plan

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func addr(s string) netip.Addr  { return netip.MustParseAddr(s) }

func TestCarve(t *testing.T) {
	host64 := pfx("2001:db8:1234:a1::/64")
	tests := []struct {
		name  string
		space netip.Prefix
		bits  int
		avoid Avoid
		want  netip.Prefix // invalid: exhausted
	}{
		{"first /112 skips index 0", host64, 112, Avoid{}, pfx("2001:db8:1234:a1:1::/112")},
		{"host address in index 1", host64, 112, Avoid{Addrs: []netip.Addr{addr("2001:db8:1234:a1:1::5")}}, pfx("2001:db8:1234:a1:2::/112")},
		{"gateway with zone", host64, 112, Avoid{Addrs: []netip.Addr{addr("2001:db8:1234:a1:1::1%eth0")}}, pfx("2001:db8:1234:a1:2::/112")},
		{"used pools", host64, 112, Avoid{Prefixes: []netip.Prefix{pfx("2001:db8:1234:a1:1::/112"), pfx("2001:db8:1234:a1:2::/112")}}, pfx("2001:db8:1234:a1:3::/112")},
		{"smaller explicit pool inside a candidate", host64, 112, Avoid{Prefixes: []netip.Prefix{pfx("2001:db8:1234:a1:1::ff00/120")}}, pfx("2001:db8:1234:a1:2::/112")},
		{"explicit /80 in slot 1", host64, 112, Avoid{Prefixes: []netip.Prefix{pfx("2001:db8:1234:a1:1::/80")}}, pfx("2001:db8:1234:a1:2::/112")},
		{"explicit pool elsewhere in slot 1 does not count", host64, 112, Avoid{Prefixes: []netip.Prefix{pfx("2001:db8:1234:a1:1:5::/96")}}, pfx("2001:db8:1234:a1:1::/112")},
		{"larger explicit pool jumped over at once", host64, 112, Avoid{Prefixes: []netip.Prefix{pfx("2001:db8:1234:a1::/65")}}, pfx("2001:db8:1234:a1:8000::/112")},
		{"every slot used but the last", host64, 112, Avoid{Prefixes: []netip.Prefix{pfx("2001:db8:1234:a1::/65"), pfx("2001:db8:1234:a1:8000::/66"), pfx("2001:db8:1234:a1:c000::/67"),
			pfx("2001:db8:1234:a1:e000::/68"), pfx("2001:db8:1234:a1:f000::/69"), pfx("2001:db8:1234:a1:f800::/70"), pfx("2001:db8:1234:a1:fc00::/71"), pfx("2001:db8:1234:a1:fe00::/72"),
			pfx("2001:db8:1234:a1:ff00::/73"), pfx("2001:db8:1234:a1:ff80::/74"), pfx("2001:db8:1234:a1:ffc0::/75"), pfx("2001:db8:1234:a1:ffe0::/76"), pfx("2001:db8:1234:a1:fff0::/77"),
			pfx("2001:db8:1234:a1:fff8::/78"), pfx("2001:db8:1234:a1:fffc::/79"), pfx("2001:db8:1234:a1:fffe::/80")}}, pfx("2001:db8:1234:a1:ffff::/112")},
		{"every slot used", host64, 112, Avoid{Prefixes: []netip.Prefix{pfx("2001:db8:1234:a1:8000::/65"), pfx("2001:db8:1234:a1:4000::/66"), pfx("2001:db8:1234:a1:2000::/67"),
			pfx("2001:db8:1234:a1:1000::/68"), pfx("2001:db8:1234:a1:800::/69"), pfx("2001:db8:1234:a1:400::/70"), pfx("2001:db8:1234:a1:200::/71"), pfx("2001:db8:1234:a1:100::/72"),
			pfx("2001:db8:1234:a1:80::/73"), pfx("2001:db8:1234:a1:40::/74"), pfx("2001:db8:1234:a1:20::/75"), pfx("2001:db8:1234:a1:10::/76"), pfx("2001:db8:1234:a1:8::/77"),
			pfx("2001:db8:1234:a1:4::/78"), pfx("2001:db8:1234:a1:2::/79"), pfx("2001:db8:1234:a1:1::/80")}}, netip.Prefix{}},
		{"unmasked avoid prefix", host64, 112, Avoid{Prefixes: []netip.Prefix{pfx("2001:db8:1234:a1:1::7/112")}}, pfx("2001:db8:1234:a1:2::/112")},
		{"other length", host64, 120, Avoid{}, pfx("2001:db8:1234:a1:1::/120")},
		{"narrow field: all of it counts", pfx("2001:db8:1234:a1:1::/112"), 120, Avoid{}, pfx("2001:db8:1234:a1:1::100/120")},
		{"whole space when it holds one", pfx("fd00:1::/112"), 112, Avoid{}, pfx("fd00:1::/112")},
		{"whole space with host address: exhausted", host64, 64, Avoid{Addrs: []netip.Addr{addr("2001:db8:1234:a1::1")}}, netip.Prefix{}},
		{"space overlapped by a wider pool: exhausted", host64, 112, Avoid{Prefixes: []netip.Prefix{pfx("2001:db8:1234::/48")}}, netip.Prefix{}},
		{"two of two used (index 0 never)", pfx("fd00::/111"), 112, Avoid{Prefixes: []netip.Prefix{pfx("fd00::1:0/112")}}, netip.Prefix{}},
		{"last subnet of the space", pfx("fd00::/110"), 112, Avoid{Prefixes: []netip.Prefix{pfx("fd00::1:0/112"), pfx("fd00::2:0/112")}}, pfx("fd00::3:0/112")},
		{"space at the top of the address space", pfx("ffff::/112"), 120, Avoid{Prefixes: []netip.Prefix{pfx("ffff::/113")}}, pfx("ffff::8000/120")},
		{"exhausted at the top of the address space", pfx("ffff:ffff:ffff:ffff:ffff:ffff:ffff:0/112"), 113, Avoid{Prefixes: []netip.Prefix{pfx("ffff:ffff:ffff:ffff:ffff:ffff:ffff:8000/113")}}, netip.Prefix{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Carve(tt.space, tt.bits, tt.avoid)
			if !tt.want.IsValid() {
				if !errors.Is(err, ErrExhausted) {
					t.Fatalf("Carve = %s, %v; want ErrExhausted", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Carve = %s, %v; want %s", got, err, tt.want)
			}
		})
	}
}

func TestCarveBadLength(t *testing.T) {
	for _, bits := range []int{63, 129} {
		if _, err := Carve(pfx("2001:db8::/64"), bits, Avoid{}); err == nil || errors.Is(err, ErrExhausted) {
			t.Errorf("Carve /%d from a /64 = %v, want a length error", bits, err)
		}
	}
}

// TestCarveSequence hands out subnets one after another, as networks are
// created, and checks they are distinct, ordered and avoid the host.
func TestCarveSequence(t *testing.T) {
	space := pfx("2001:db8:1234:a1::/64")
	av := Avoid{Addrs: []netip.Addr{addr("2001:db8:1234:a1::1"), addr("2001:db8:1234:a1:3::10")}}
	var got []string
	for range 4 {
		p, err := Carve(space, 112, av)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p.String())
		av.Prefixes = append(av.Prefixes, p)
	}
	want := []string{"2001:db8:1234:a1:1::/112", "2001:db8:1234:a1:2::/112", "2001:db8:1234:a1:4::/112", "2001:db8:1234:a1:5::/112"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("subnets (-want +got):\n%s", diff)
	}
}

func TestHeld(t *testing.T) {
	tests := []struct {
		space netip.Prefix
		bits  int
		want  string
	}{
		{pfx("fd00::/64"), 112, "65535"},
		{pfx("fd00::/64"), 72, "255"},
		{pfx("fd00::/112"), 120, "255"},
		{pfx("fd00::/112"), 112, "1"},
		{pfx("fd00::/111"), 112, "1"},
	}
	for _, tt := range tests {
		if got := Held(tt.space, tt.bits); got != tt.want {
			t.Errorf("Held(%s, %d) = %s, want %s", tt.space, tt.bits, got, tt.want)
		}
	}
}

func TestSubnetAndHostULA(t *testing.T) {
	ula := pfx("fd12:3456:789a::/48")
	tests := []struct {
		id   uint64
		want string
	}{{0, "fd12:3456:789a::/64"}, {1, "fd12:3456:789a:1::/64"}, {0x8101, "fd12:3456:789a:8101::/64"}, {0xffff, "fd12:3456:789a:ffff::/64"}}
	for _, tt := range tests {
		got, err := HostULA(ula, tt.id)
		if err != nil || got.String() != tt.want {
			t.Errorf("HostULA(%d) = %s, %v; want %s", tt.id, got, err, tt.want)
		}
	}
	if _, err := HostULA(ula, 0x10000); err == nil {
		t.Error("HostULA(0x10000) of a /48 succeeded")
	}
	if got, err := HostULA(pfx("fd12:3456:789a:5::/64"), 0); err != nil || got.String() != "fd12:3456:789a:5::/64" {
		t.Errorf("HostULA of a /64 = %s, %v", got, err)
	}
	if got, ok := Subnet(pfx("::/0"), 64, 1<<63|1); !ok || got != pfx("8000:0:0:1::/64") {
		t.Errorf("Subnet(::/0, 64, 2^63+1) = %s, %v; want 8000:0:0:1::/64", got, ok)
	}
}

func TestNewULA(t *testing.T) {
	// Deterministic source: the 40 bits are the next five bytes read.
	p, err := NewULA(bytes.NewReader([]byte{0x12, 0x34, 0x56, 0x78, 0x9a, 0xff}))
	if err != nil || p != pfx("fd12:3456:789a::/48") {
		t.Fatalf("NewULA = %s, %v; want fd12:3456:789a::/48", p, err)
	}
	if _, err := NewULA(bytes.NewReader([]byte{1, 2})); err == nil {
		t.Error("NewULA with a short source succeeded")
	}
	// Random: format, no repeats, and every one of the 40 bits varies.
	const n = 2000
	seen := map[netip.Prefix]bool{}
	var ones [40]int
	for range n {
		p, err := NewULA(nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := CheckULA("ULA_PREFIX", p); err != nil || p.Bits() != 48 || p != p.Masked() {
			t.Fatalf("NewULA = %s: %v", p, err)
		}
		if seen[p] {
			t.Fatalf("NewULA repeated %s", p)
		}
		seen[p] = true
		b := p.Addr().As16()
		for i := range 40 {
			if b[1+i/8]&(0x80>>(i%8)) != 0 {
				ones[i]++
			}
		}
	}
	for i, c := range ones {
		if c < n*4/10 || c > n*6/10 { // binomial(2000, 1/2): 40%..60% is > 8 sigma
			t.Errorf("global ID bit %d set in %d of %d prefixes", i, c, n)
		}
	}
}

func TestCheckULA(t *testing.T) {
	tests := []struct {
		p    netip.Prefix
		want string // "" for accepted
	}{
		{pfx("fd12:3456:789a::/48"), ""},
		{pfx("fd12:3456:789a:1::/64"), ""},
		{pfx("fc12:3456:789a::/48"), "not a unique local prefix of fd00::/8"},
		{pfx("2001:db8::/48"), "not a unique local prefix"},
		{pfx("fd12::/40"), "is a /40: accepted are /48 to /64"},
		{pfx("fd12:3456:789a:1:1::/80"), "is a /80"},
		{pfx("fd12:3456:789a:1::/48"), "did you mean fd12:3456:789a::/48?"},
		{pfx("10.0.0.0/8"), "not an IPv6 prefix"},
	}
	for _, tt := range tests {
		err := CheckULA("ULA_PREFIX", tt.p)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("CheckULA(%s) = %v", tt.p, err)
		case tt.want != "" && (err == nil || !bytes.Contains([]byte(err.Error()), []byte(tt.want))):
			t.Errorf("CheckULA(%s) = %v, want %q", tt.p, err, tt.want)
		}
	}
}
