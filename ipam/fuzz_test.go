package ipam

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// sentinels are the kinds every refusal wraps.
var sentinels = []error{
	ErrInvalidRequest, ErrSubnetRequired, ErrIPv4Subnet, ErrPoolOverlap, ErrHostAddress,
	ErrUnknownPool, ErrPoolExhausted, ErrAddressInUse, ErrOutOfRange, ErrReservedAddress,
}

func FuzzRequestPool(f *testing.F) {
	for _, s := range []struct {
		pool, sub string
		v6        bool
		key, val  string
	}{
		{"fd12:3456:789a:1::/112", "", true, "", ""},
		{"fd12::/64", "fd12::1:0/112", true, "v6bridge.prefix_len", "64"},
		{"fd12::5/112", "", true, "", ""},
		{"2001:db8:1234:a1::/64", "", true, "", ""},
		{"10.0.0.0/24", "", false, "", ""},
		{"", "", false, "v6bridge.x", "1"},
		{"", "", true, "", ""},
		{"::ffff:1.2.3.0/120", "", true, "", ""},
		{"fd12:3456:789a:0001:0000::/80", "fd12:3456:789a:1::/81", true, "com.docker.x", "y"},
		{"fd00:aaaa::/96", "fd00:aaaa::ff00/120", true, "v6bridge.prefix_len", "120"},
	} {
		f.Add(s.pool, s.sub, s.v6, s.key, s.val)
	}
	host := netip.MustParseAddr("2001:db8:1234:a1::1")
	f.Fuzz(func(t *testing.T, pool, sub string, v6 bool, key, val string) {
		m, _ := newTestIPAM(t, host)
		// Another pool to overlap with.
		if _, err := m.RequestPool(PoolRequest{Pool: "fd12:3456:789a:1::/112", V6: true}); err != nil {
			t.Fatal(err)
		}
		req := PoolRequest{Pool: pool, SubPool: sub, V6: v6, Options: map[string]string{key: val}}
		p, err := m.RequestPool(req)
		if err != nil {
			kind := false
			for _, s := range sentinels {
				kind = kind || errors.Is(err, s)
			}
			if !kind {
				t.Fatalf("RequestPool(%+v) = %v: wraps no sentinel", req, err)
			}
			if msg := err.Error(); msg == "" || strings.ToLower(msg[:1]) != msg[:1] {
				t.Fatalf("error %q is empty or starts upper-case", msg)
			}
			if n := len(m.Pools()); n != 1 {
				t.Fatalf("refused request left %d pools", n)
			}
			return
		}
		if !p.Prefix.IsValid() || p.Prefix != p.Prefix.Masked() {
			t.Fatalf("RequestPool(%+v) = prefix %s, not canonical", req, p.Prefix)
		}
		if p.Range != p.Range.Masked() || p.Range.Bits() < p.Prefix.Bits() || !p.Prefix.Contains(p.Range.Addr()) {
			t.Fatalf("RequestPool(%+v) = range %s outside %s", req, p.Range, p.Prefix)
		}
		if p.Placeholder {
			if v6 || p.Prefix.Bits() != PlaceholderBits || !PlaceholderPrefix.Contains(p.Prefix.Addr()) {
				t.Fatalf("RequestPool(%+v) = placeholder %+v", req, p)
			}
		} else {
			if !v6 || !p.Prefix.Addr().Is6() || p.Prefix.Addr().Is4In6() ||
				p.Prefix.Bits() < MinPrefixLen || p.Prefix.Bits() > MaxPrefixLen {
				t.Fatalf("RequestPool(%+v) = %s", req, p.Prefix)
			}
			if p.Prefix.Contains(host) || p.Prefix.Overlaps(netip.MustParsePrefix("fd12:3456:789a:1::/112")) {
				t.Fatalf("RequestPool(%+v) = %s, contains the host or overlaps", req, p.Prefix)
			}
		}
		// The pool works.
		gw, err := m.RequestAddress(p.ID, "", gwOpts)
		if err != nil || !p.Prefix.Contains(gw.Addr()) {
			t.Fatalf("gateway of %s = %s, %v", p.Prefix, gw, err)
		}
		a, err := m.RequestAddress(p.ID, "", AddressOptions{})
		if err != nil || !p.Range.Contains(a.Addr()) || a.Addr() == p.Prefix.Addr() || a.Addr() == gw.Addr() {
			t.Fatalf("address of %s = %s, %v", p.Range, a, err)
		}
		if err := m.ReleasePool(p.ID); err != nil {
			t.Fatal(err)
		}
	})
}
