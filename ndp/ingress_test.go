package ndp

import (
	"net/netip"
	"slices"
	"testing"
)

func TestPlanIngressPassesWhatIsAnsweredAndTheHostsOwn(t *testing.T) {
	st := NewUplinkState()
	st.OnLink = []netip.Prefix{netip.MustParsePrefix("2001:db8:1234:a1::/64")}
	st.Addrs[liveAddr] = struct{}{}
	st.Ranges = []netip.Prefix{netip.MustParsePrefix("2001:db8:1234:a1:2::/112")}
	own := []netip.Addr{netip.MustParseAddr("2001:db8:1234:a1::1"), netip.MustParseAddr("2001:db8:1234:a1::77")}
	f := PlanIngress(st, own, nil)

	for _, c := range []struct {
		target string
		drop   bool
		why    string
	}{
		{"2001:db8:1234:a1::dead:beef", true, "a random address of the /64"},
		{"2001:db8:1234:a1:1::ab55", true, "an unused address of a public /112"},
		{liveAddr.String(), false, "an answered address"},
		{"2001:db8:1234:a1:2::9", false, "inside an answered range"},
		{"2001:db8:1234:a1::1", false, "the uplink's own address"},
		{"2001:db8:1234:a1::77", false, "the uplink's second (maybe tentative) address"},
		{"2001:db8:1234:a1::", false, "the subnet-router anycast address"},
		{"2001:db8:ffff::5", false, "outside the on-link prefix: not ours to filter"},
	} {
		if got := f.Drops(netip.MustParseAddr(c.target)); got != c.drop {
			t.Errorf("Drops(%s) = %v, want %v: %s", c.target, got, c.drop, c.why)
		}
	}

	// No on-link prefix (a /128 uplink address): nothing is filtered.
	st.OnLink = nil
	if f := PlanIngress(st, own, nil); len(f.Served) != 0 || f.Drops(netip.MustParseAddr("2001:db8:1234:a1::dead:beef")) {
		t.Errorf("without on-link prefixes the filter serves %v", f.Served)
	}
}

func TestIngressRulesChangeOnlyWithPrefixesAndRanges(t *testing.T) {
	st := NewUplinkState()
	st.OnLink = []netip.Prefix{netip.MustParsePrefix("2001:db8:1234:a1::/64")}
	before := PlanIngress(st, nil, nil)
	st.Addrs[liveAddr] = struct{}{}
	after := PlanIngress(st, nil, nil)
	if !before.SameRules(after) {
		t.Error("a new address changed the rules; it belongs in the allow set")
	}
	add, del := allowDiff(before.Allow, after.Allow)
	if !slices.Equal(add, []netip.Addr{liveAddr}) || len(del) != 0 {
		t.Errorf("allowDiff = +%v -%v, want +[%s]", add, del, liveAddr)
	}
	st.Ranges = []netip.Prefix{containerNet}
	if before.SameRules(PlanIngress(st, nil, nil)) {
		t.Error("a new range did not change the rules")
	}
}
