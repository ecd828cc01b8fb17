package ndpproto

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

var cmpAddr = cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})

func TestTargets(t *testing.T) {
	tg, err := NewTargets(
		addrs("2001:db8::2", "2001:db8::1", "2001:db8::2", "2001:db8::3%eth0"),
		prefixes("2001:db8:1::5/112", "2001:db8:1::/112"),
	)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(addrs("2001:db8::1", "2001:db8::2", "2001:db8::3"), tg.Addrs(), cmpAddr); diff != "" {
		t.Errorf("Addrs (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(prefixes("2001:db8:1::/112"), tg.Ranges(), cmpAddr); diff != "" {
		t.Errorf("Ranges (-want +got):\n%s", diff)
	}
	if tg.Len() != 4 {
		t.Errorf("Len = %d, want 4", tg.Len())
	}
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"2001:db8::1", true},
		{"2001:db8::3", true},
		{"2001:db8::1%eth0", true},
		{"2001:db8::4", false},
		{"2001:db8:1::ffff", true},
		{"2001:db8:1::1:0", false},
		{"192.0.2.1", false},
	} {
		if got := tg.Contains(netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("Contains(%s) = %v, want %v", tc.addr, got, tc.want)
		}
	}
	var zero Targets
	if zero.Contains(netip.MustParseAddr("2001:db8::1")) || zero.Len() != 0 || len(zero.Addrs()) != 0 {
		t.Error("zero Targets is not empty")
	}
}

func TestNewTargetsInvalid(t *testing.T) {
	for _, tc := range []struct {
		name   string
		addrs  []netip.Addr
		ranges []netip.Prefix
	}{
		{"ipv4", addrs("192.0.2.1"), nil},
		{"mapped ipv4", addrs("::ffff:192.0.2.1"), nil},
		{"unspecified", addrs("::"), nil},
		{"multicast", addrs("ff02::1"), nil},
		{"loopback", addrs("::1"), nil},
		{"link-local", addrs("fe80::1"), nil},
		{"zero", []netip.Addr{{}}, nil},
		{"ipv4 range", nil, prefixes("192.0.2.0/24")},
		{"multicast range", nil, prefixes("ff00::/8")},
		{"zero range", nil, []netip.Prefix{{}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewTargets(tc.addrs, tc.ranges); !errors.Is(err, ErrInvalidTarget) {
				t.Errorf("NewTargets = %v, want ErrInvalidTarget", err)
			}
		})
	}
}

func TestTargetsEqualDiff(t *testing.T) {
	mk := func(a []netip.Addr, r []netip.Prefix) Targets {
		tg, err := NewTargets(a, r)
		if err != nil {
			t.Fatal(err)
		}
		return tg
	}
	prev := mk(addrs("2001:db8::1", "2001:db8::2"), prefixes("2001:db8:1::/112"))
	next := mk(addrs("2001:db8::2", "2001:db8::3"), prefixes("2001:db8:2::/112"))
	same := mk(addrs("2001:db8::2", "2001:db8::1"), prefixes("2001:db8:1::/112"))
	if !prev.Equal(same) || prev.Equal(next) || prev.Equal(Targets{}) {
		t.Error("Equal wrong")
	}
	added, removed, addedR, removedR := Diff(prev, next)
	got := []any{added, removed, addedR, removedR}
	want := []any{addrs("2001:db8::3"), addrs("2001:db8::1"), prefixes("2001:db8:2::/112"), prefixes("2001:db8:1::/112")}
	if diff := cmp.Diff(want, got, cmpAddr); diff != "" {
		t.Errorf("Diff (-want +got):\n%s", diff)
	}
	a, r, ar, rr := Diff(prev, same)
	if len(a)+len(r)+len(ar)+len(rr) != 0 {
		t.Errorf("Diff of equal sets = %v %v %v %v", a, r, ar, rr)
	}
}
