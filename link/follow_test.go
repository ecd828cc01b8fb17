package link

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestChangeKinds(t *testing.T) {
	a := netip.MustParsePrefix("2001:db8::1/64")
	b := netip.MustParsePrefix("2001:db8::2/64")
	ll := netip.MustParsePrefix("fe80::1/64")
	gw := netip.MustParseAddr("fe80::fffe")
	up := UplinkState{Name: "eth0", Index: 2, Up: true, Addrs: []netip.Prefix{a, ll}}
	for _, tc := range []struct {
		name     string
		c        Change
		want     []string
		reattach bool
	}{
		{"address added", Change{Old: up, New: with(up, func(s *UplinkState) { s.Addrs = []netip.Prefix{a, b, ll} }), Attached: 2}, []string{"addrs"}, false},
		{"address tentative", Change{Old: up, New: with(up, func(s *UplinkState) { s.Tentative = []netip.Prefix{a} }), Attached: 2}, []string{"addrs"}, false},
		{"down", Change{Old: up, New: with(up, func(s *UplinkState) { s.Up = false }), Attached: 2}, []string{"down"}, false},
		{"gateway", Change{Old: up, New: with(up, func(s *UplinkState) { s.Gateway = gw }), Attached: 2}, []string{"gateway"}, false},
		{"deleted", Change{Old: up, New: UplinkState{Name: "eth0"}, Attached: 2}, []string{"gone", "down", "addrs"}, false},
		{"created again after deleted", Change{Old: UplinkState{Name: "eth0"}, New: with(up, func(s *UplinkState) { s.Index = 7 }), Attached: 2}, []string{"recreated", "up", "addrs"}, true},
		{"created again at once", Change{Old: up, New: with(up, func(s *UplinkState) { s.Index = 7 }), Attached: 2}, []string{"recreated"}, true},
		{"appeared, never seen before", Change{Old: UplinkState{Name: "eth0"}, New: up}, []string{"recreated", "up", "addrs"}, true},
	} {
		if got := tc.c.Kinds(); !slices.Equal(got, tc.want) {
			t.Errorf("%s: kinds %v, want %v", tc.name, got, tc.want)
		}
		if got := tc.c.Reattach(); got != tc.reattach {
			t.Errorf("%s: reattach %v, want %v", tc.name, got, tc.reattach)
		}
	}
	if got := up.Global(); !slices.Equal(got, []netip.Addr{a.Addr()}) {
		t.Errorf("global addresses %v, want [%s]", got, a.Addr())
	}
}

func with(s UplinkState, f func(*UplinkState)) UplinkState {
	s.Addrs, s.Tentative = slices.Clone(s.Addrs), slices.Clone(s.Tentative)
	f(&s)
	return s
}

func TestUplinkStatusString(t *testing.T) {
	a := netip.MustParsePrefix("2001:db8::1/64")
	b := netip.MustParsePrefix("2001:db8::2/64")
	s := UplinkStatus{
		UplinkState: UplinkState{Name: "eth0", Index: 7, Up: true, Addrs: []netip.Prefix{a, b}, Tentative: []netip.Prefix{b}, Gateway: netip.MustParseAddr("fe80::1")},
		Reattachment: []Reattachment{
			{Part: "ndp", Count: 2, Last: time.Date(2026, 12, 7, 13, 0, 0, 0, time.UTC)},
			{Part: "firewall", Count: 2, Last: time.Date(2026, 12, 7, 13, 0, 0, 0, time.UTC), Error: "apply firewall: no"},
		},
	}
	want := "eth0: index 7, up, addresses [2001:db8::1/64 2001:db8::2/64 (tentative)], default via fe80::1; ndp re-attached 2 times (last 2026-12-07T13:00:00Z); firewall re-attached 2 times (last 2026-12-07T13:00:00Z) FAILED: apply firewall: no"
	if got := s.String(); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if got := (UplinkStatus{UplinkState: UplinkState{Name: "eth0"}}).String(); !strings.HasPrefix(got, "eth0: index 0, absent") {
		t.Errorf("absent uplink: %s", got)
	}
}
