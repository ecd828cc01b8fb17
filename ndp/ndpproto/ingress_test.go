package ndpproto

import (
	"maps"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/v6bridge/v6bridge/ndp/internal/ndptest"
)

func TestPlanIngressPassesWhatIsAnsweredAndTheHostsOwn(t *testing.T) {
	st := NewUplinkState()
	st.OnLink = []netip.Prefix{netip.MustParsePrefix("2001:db8:1234:a1::/64")}
	st.Addrs[ndptest.LiveAddr] = struct{}{}
	st.Ranges = []netip.Prefix{netip.MustParsePrefix("2001:db8:1234:a1:2::/112")}
	own := []netip.Addr{netip.MustParseAddr("2001:db8:1234:a1::1"), netip.MustParseAddr("2001:db8:1234:a1::77")}
	f := PlanIngress(st, own, nil)

	for _, c := range []struct {
		Target string
		drop   bool
		why    string
	}{
		{"2001:db8:1234:a1::dead:beef", true, "a random address of the /64"},
		{"2001:db8:1234:a1:1::ab55", true, "an unused address of a public /112"},
		{ndptest.LiveAddr.String(), false, "an answered address"},
		{"2001:db8:1234:a1:2::9", false, "inside an answered range"},
		{"2001:db8:1234:a1::1", false, "the uplink's own address"},
		{"2001:db8:1234:a1::77", false, "the uplink's second (maybe tentative) address"},
		{"2001:db8:1234:a1::", false, "the subnet-router anycast address"},
		{"2001:db8:ffff::5", false, "outside the on-link prefix: not ours to filter"},
	} {
		if got := f.Drops(netip.MustParseAddr(c.Target)); got != c.drop {
			t.Errorf("Drops(%s) = %v, want %v: %s", c.Target, got, c.drop, c.why)
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
	st.Addrs[ndptest.LiveAddr] = struct{}{}
	after := PlanIngress(st, nil, nil)
	if !before.SameRules(after) {
		t.Error("a new address changed the rules; it belongs in the allow set")
	}
	add, del := AllowDiff(before.Allow, after.Allow)
	if !slices.Equal(add, []netip.Addr{ndptest.LiveAddr}) || len(del) != 0 {
		t.Errorf("allowDiff = +%v -%v, want +[%s]", add, del, ndptest.LiveAddr)
	}
	st.Ranges = []netip.Prefix{ndptest.ContainerNet}
	if before.SameRules(PlanIngress(st, nil, nil)) {
		t.Error("a new range did not change the rules")
	}
}

func TestKernelAnswerFollowsTheDecisionsConfig(t *testing.T) {
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	ll, global := netip.MustParseAddr("fe80::1"), netip.MustParseAddr("2001:db8:1234:a1::1")
	for _, c := range []struct {
		cfg  DecideConfig
		want netip.Addr // zero: the target
	}{
		{DecideConfig{LinkAddr: mac, LinkLocal: ll, Global: global}, ll},
		{DecideConfig{LinkAddr: mac, Source: SourceTarget, LinkLocal: ll, Global: global}, netip.Addr{}},
		{DecideConfig{LinkAddr: mac, Source: SourceGlobal, LinkLocal: ll, Global: global}, global},
		{DecideConfig{LinkAddr: mac, Source: SourceGlobal, LinkLocal: ll}, ll},
		{DecideConfig{LinkAddr: mac}, netip.Addr{}},
	} {
		a := NewKernelAnswer(c.cfg, 0, -1)
		if a == nil || a.Source != c.want || a.MAC != [6]byte(mac) {
			t.Errorf("NewKernelAnswer(%+v) = %+v, want source %v", c.cfg, a, c.want)
			continue
		}
		if a.SourceRate != DefaultSourceRate || a.TotalRate != 0 {
			t.Errorf("budgets %v, %v; want the default per solicitor and none in all", a.SourceRate, a.TotalRate)
		}
	}
	if a := NewKernelAnswer(DecideConfig{}, 0, 0); a != nil {
		t.Errorf("an uplink without a MAC answers in the kernel: %+v", a)
	}
}

func TestPlanIngressAnswersTheAddressesOnly(t *testing.T) {
	st := NewUplinkState()
	st.OnLink = []netip.Prefix{netip.MustParsePrefix("2001:db8:1234:a1::/64")}
	st.Addrs[ndptest.LiveAddr] = struct{}{}
	st.Ranges = []netip.Prefix{netip.MustParsePrefix("2001:db8:1234:a1:2::/112")}
	ka := NewKernelAnswer(DecideConfig{LinkAddr: net.HardwareAddr{2, 0, 0, 0, 0, 1}}, 0, 0)
	f := PlanIngress(st, []netip.Addr{netip.MustParseAddr("2001:db8:1234:a1::1")}, ka)
	if len(f.Answered) != 1 {
		t.Fatalf("answered in the kernel: %v, want only %s (not ranges, not the host's own)", f.Answered, ndptest.LiveAddr)
	}
	if _, ok := f.Answered[ndptest.LiveAddr]; !ok {
		t.Errorf("%s not answered in the kernel", ndptest.LiveAddr)
	}
	if f.SameRules(PlanIngress(st, nil, nil)) {
		t.Error("answering in the kernel or not: the same rules")
	}
	ka2 := *ka
	ka2.Router = true
	if f.SameRules(PlanIngress(st, nil, &ka2)) {
		t.Error("the Router flag changed but not the rules")
	}
	k := AnswerKeys(ndptest.LiveAddr)
	if g := netip.AddrFrom16([16]byte(k[0][:16])); g != SNMOf(ndptest.LiveAddr) || netip.AddrFrom16([16]byte(k[1][:16])) != ndptest.LiveAddr ||
		netip.AddrFrom16([16]byte(k[0][16:])) != ndptest.LiveAddr || netip.AddrFrom16([16]byte(k[1][16:])) != ndptest.LiveAddr {
		t.Errorf("answer keys %x", k)
	}
}

// UpdateIngress, step by step from PlanIngress, ends where PlanIngress of
// each new state does, and returns what AllowDiff would: random starts and
// stops over addresses that include the host's own, the subnet-router
// anycast address and addresses outside the on-link prefix, with and
// without answers in the kernel.
func TestUpdateIngressEqualsPlanIngress(t *testing.T) {
	pool := []netip.Addr{
		netip.MustParseAddr("2001:db8:1234:a1::1"), // the host's own
		netip.MustParseAddr("2001:db8:1234:a1::"),  // subnet-router anycast
		netip.MustParseAddr("2001:db8:ffff::5"),    // outside the on-link prefix
	}
	for i := range 20 {
		pool = append(pool, netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0x12, 0x34, 0, 0xa1, 0, 1, 14: 0, 15: byte(i + 1)}))
	}
	own := []netip.Addr{pool[0]}
	answer := &KernelAnswer{MAC: [6]byte{2, 0, 0, 0, 0, 1}, TotalRate: 100}
	for _, ans := range []*KernelAnswer{nil, answer} {
		r := rand.New(rand.NewPCG(5, 6))
		st := NewUplinkState()
		st.OnLink = []netip.Prefix{netip.MustParsePrefix("2001:db8:1234:a1::/64")}
		have := PlanIngress(st, own, ans)
		for step := range 300 {
			var start, stop []netip.Addr
			for range r.IntN(4) {
				a := pool[r.IntN(len(pool))]
				if _, live := st.Addrs[a]; live {
					if !slices.Contains(stop, a) && !slices.Contains(start, a) {
						stop = append(stop, a)
					}
				} else if !slices.Contains(start, a) && !slices.Contains(stop, a) {
					start = append(start, a)
				}
			}
			for _, a := range stop {
				delete(st.Addrs, a)
			}
			for _, a := range start {
				st.Addrs[a] = struct{}{}
			}
			before := CloneIngress(have)
			want := PlanIngress(st, own, ans)
			d, ok := UpdateIngress(&have, st, own, ans, start, stop)
			if !ok {
				t.Fatalf("step %d: the rules did not change, but UpdateIngress refused", step)
			}
			if !maps.Equal(have.Allow, want.Allow) || !maps.Equal(have.Answered, want.Answered) || !have.SameRules(want) {
				t.Fatalf("step %d (answers %v): start %v stop %v\ngot  %v %v\nwant %v %v", step, ans != nil, start, stop, have.Allow, have.Answered, want.Allow, want.Answered)
			}
			add, del := AllowDiff(before.Allow, want.Allow)
			aAdd, aDel := AllowDiff(before.Answered, want.Answered)
			if !slices.Equal(d.Add, add) || !slices.Equal(d.Del, del) || !slices.Equal(d.AnswerAdd, aAdd) || !slices.Equal(d.AnswerDel, aDel) {
				t.Fatalf("step %d: delta %+v, want add %v del %v answer add %v del %v", step, d, add, del, aAdd, aDel)
			}
		}
	}
}

// A change of the rules is not an update: UpdateIngress refuses and leaves
// have alone.
func TestUpdateIngressRefusesRuleChanges(t *testing.T) {
	st := NewUplinkState()
	st.OnLink = []netip.Prefix{netip.MustParsePrefix("2001:db8:1234:a1::/64")}
	have := PlanIngress(st, nil, nil)
	before := CloneIngress(have)
	st.Ranges = []netip.Prefix{netip.MustParsePrefix("2001:db8:1234:a1:2::/112")}
	if _, ok := UpdateIngress(&have, st, nil, nil, nil, nil); ok {
		t.Error("a new range: want a refusal")
	}
	st.Ranges = nil
	if _, ok := UpdateIngress(&have, st, nil, &KernelAnswer{}, []netip.Addr{ndptest.LiveAddr}, nil); ok {
		t.Error("answers in the kernel now: want a refusal")
	}
	if !maps.Equal(have.Allow, before.Allow) {
		t.Error("a refused update changed have")
	}
}

// TestKernelAnswerReserve: the router's reserve is part of the rules: a
// new router (another MAC, another address) or rate rebuilds them; an
// unknown router has none.
func TestKernelAnswerReserve(t *testing.T) {
	st := NewUplinkState()
	st.OnLink = []netip.Prefix{netip.MustParsePrefix("2001:db8:1234:a1::/64")}
	st.Addrs[ndptest.LiveAddr] = struct{}{}
	cfg := DecideConfig{LinkAddr: net.HardwareAddr{2, 0, 0, 0, 0, 1}}
	id := NewRouterID(ndptest.RouterMAC, []netip.Addr{ndptest.RouterLL, ndptest.RouterAddr})
	with := func(id RouterID, rate float64) *KernelAnswer {
		a := NewKernelAnswer(cfg, 0, 0)
		a.Reserve(id, rate)
		return a
	}
	if a := with(id, 0); a.Gateway != id || a.RouterRate != DefaultRouterRate {
		t.Errorf("reserve %+v at %v, want %+v at the default", a.Gateway, a.RouterRate, id)
	}
	if a := with(id, -1); a.RouterRate != 0 {
		t.Errorf("no limit for the router: rate %v, want 0 (no limit rule)", a.RouterRate)
	}
	if a := with(RouterID{}, 0); a.Gateway.Known() || a.RouterRate != 0 {
		t.Errorf("an unknown router has a reserve: %+v", a)
	}
	var none *KernelAnswer
	none.Reserve(id, 0) // no answers in the kernel: nothing to reserve, no panic
	have := PlanIngress(st, nil, with(id, 0))
	for name, a := range map[string]*KernelAnswer{
		"another MAC":     with(NewRouterID(net.HardwareAddr{2, 0, 0, 0, 0, 0xfd}, []netip.Addr{ndptest.RouterLL, ndptest.RouterAddr}), 0),
		"another address": with(NewRouterID(ndptest.RouterMAC, []netip.Addr{ndptest.RouterLL}), 0),
		"another rate":    with(id, 5),
		"no router":       with(RouterID{}, 0),
	} {
		if have.SameRules(PlanIngress(st, nil, a)) {
			t.Errorf("%s: the same rules", name)
		}
		h := CloneIngress(have)
		if _, ok := UpdateIngress(&h, st, nil, a, []netip.Addr{other}, nil); ok {
			t.Errorf("%s: UpdateIngress patched the sets instead of refusing", name)
		}
	}
	if !have.SameRules(PlanIngress(st, nil, with(NewRouterID(ndptest.RouterMAC, []netip.Addr{ndptest.RouterLL, ndptest.RouterAddr}), 0))) {
		t.Error("the same router read again changes the rules")
	}
}
