package ndpproto

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var cmpAddrs = []cmp.Option{cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{}), cmpopts.EquateEmpty()}

// applyAll records a plan as if every kernel step succeeded.
func applyAll(ups []*UplinkState, p Plan) {
	for i, u := range ups {
		up := p.Uplinks[i]
		u.ApplyAddrs(up)
		for _, g := range up.Join {
			u.Groups[g] = struct{}{}
		}
		for _, g := range up.Leave {
			delete(u.Groups, g)
		}
		for _, a := range up.AddProxy {
			u.Proxies[a] = struct{}{}
		}
		for _, a := range up.DelProxy {
			delete(u.Proxies, a)
		}
	}
}

func mustTargets(t *testing.T, addrs []netip.Addr, ranges []netip.Prefix) Targets {
	t.Helper()
	tg, err := NewTargets(addrs, ranges)
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

func TestPlanTargets(t *testing.T) {
	a1 := netip.MustParseAddr("2001:db8:1234:a1:1::1")
	a2 := netip.MustParseAddr("2001:db8:1234:a1:1::2")
	shared := netip.MustParseAddr("2001:db8:1234:a1:2::1") // same group as a1
	on1 := netip.MustParseAddr("2001:db8:5678::7")
	rng := netip.MustParsePrefix("2001:db8:5678:0:9::/112")
	newUps := func() []*UplinkState {
		u0, u1 := NewUplinkState(), NewUplinkState()
		u0.OnLink = []netip.Prefix{netip.MustParsePrefix("2001:db8:1234:a1::/64")}
		u1.OnLink = []netip.Prefix{netip.MustParsePrefix("2001:db8:5678::/64")}
		return []*UplinkState{u0, u1}
	}

	t.Run("native", func(t *testing.T) {
		ups := newUps()
		ups[0].Proxies[a2] = struct{}{} // left by a hand-over
		got := PlanTargets(ModeNative, mustTargets(t, []netip.Addr{a1, shared, on1}, []netip.Prefix{rng}), ups)
		want := Plan{
			Uplinks: []UplinkPlan{
				{Start: []netip.Addr{a1, shared}, Join: []netip.Addr{SNMOf(a1)}, DelProxy: []netip.Addr{a2}},
				{Start: []netip.Addr{on1}, Ranges: []netip.Prefix{rng}, Join: []netip.Addr{SNMOf(on1)}},
			},
			Announce: []netip.Addr{a1, shared, on1},
		}
		if diff := cmp.Diff(want, got, cmpAddrs...); diff != "" {
			t.Fatalf("plan (-want +got):\n%s", diff)
		}
		applyAll(ups, got)
		// Dropping the address whose group another one shares keeps it.
		got = PlanTargets(ModeNative, mustTargets(t, []netip.Addr{shared, a2, on1}, nil), ups)
		want = Plan{
			Uplinks: []UplinkPlan{
				{Stop: []netip.Addr{a1}, Start: []netip.Addr{a2}, Join: []netip.Addr{SNMOf(a2)}},
				{},
			},
			Announce: []netip.Addr{a2},
		}
		if diff := cmp.Diff(want, got, cmpAddrs...); diff != "" {
			t.Fatalf("second plan (-want +got):\n%s", diff)
		}
		applyAll(ups, got)
		if p := PlanTargets(ModeNative, mustTargets(t, []netip.Addr{shared, a2, on1}, nil), ups); !p.Empty() || len(p.Announce) > 0 {
			t.Errorf("the same targets again plan %+v", p)
		}
	})

	t.Run("kernel", func(t *testing.T) {
		ups := newUps()
		ups[0].Proxies[a2] = struct{}{}
		got := PlanTargets(ModeKernel, mustTargets(t, []netip.Addr{a1, on1}, []netip.Prefix{rng}), ups)
		want := Plan{
			Uplinks: []UplinkPlan{
				{Start: []netip.Addr{a1}, AddProxy: []netip.Addr{a1}, DelProxy: []netip.Addr{a2}},
				{Start: []netip.Addr{on1}, AddProxy: []netip.Addr{on1}},
			},
			Announce: []netip.Addr{a1, on1},
		}
		if diff := cmp.Diff(want, got, cmpAddrs...); diff != "" {
			t.Fatalf("plan (-want +got):\n%s", diff)
		}
	})

	t.Run("off", func(t *testing.T) {
		if p := PlanTargets(ModeOff, mustTargets(t, []netip.Addr{a1}, nil), newUps()); !p.Empty() || len(p.Announce) > 0 {
			t.Errorf("off mode plans %+v", p)
		}
	})
}

// TestPlanUpdateEqualsFull: after any sequence of updates, applied, a full
// plan of the same targets changes nothing, in both modes.
func TestPlanUpdateEqualsFull(t *testing.T) {
	for _, mode := range []string{ModeNative, ModeKernel} {
		t.Run(mode, func(t *testing.T) {
			u0, u1 := NewUplinkState(), NewUplinkState()
			u0.OnLink = []netip.Prefix{netip.MustParsePrefix("2001:db8:1234:a1::/64")}
			u1.OnLink = []netip.Prefix{netip.MustParsePrefix("2001:db8:5678::/64")}
			ups := []*UplinkState{u0, u1}
			want := map[netip.Addr]bool{}
			rnd := rand.New(rand.NewPCG(5, 6))
			pick := func() netip.Addr {
				b := netip.MustParseAddr("2001:db8:1234:a1:1::").As16()
				if rnd.IntN(3) == 0 {
					b = netip.MustParseAddr("2001:db8:5678::").As16()
				}
				// Few distinct low bytes: groups are shared.
				b[11], b[15] = byte(rnd.IntN(3)), byte(1+rnd.IntN(4))
				return netip.AddrFrom16(b)
			}
			for step := range 300 {
				var add, remove []netip.Addr
				for range rnd.IntN(3) {
					add = append(add, pick())
				}
				for range rnd.IntN(3) {
					remove = append(remove, pick())
				}
				p := PlanUpdate(mode, add, remove, ups)
				applyAll(ups, p)
				for _, a := range remove {
					delete(want, a)
				}
				for _, a := range add {
					want[a] = true
				}
				var addrs []netip.Addr
				for a := range want {
					addrs = append(addrs, a)
				}
				full := PlanTargets(mode, mustTargets(t, addrs, nil), ups)
				if !full.Empty() || len(full.Announce) > 0 {
					t.Fatalf("step %d (+%v -%v): a full plan after the update still changes %+v", step, add, remove, full)
				}
			}
		})
	}
}
