package nat

import (
	"slices"
	"strings"
	"testing"

	"github.com/v6bridge/v6bridge/internal/golden"

	"github.com/google/go-cmp/cmp"
)

// fastPathState is the golden state of testdata/fastpath.golden: every
// mode, two uplinks, the fast path on.
func fastPathState() State {
	s := state(internalNet(), natNet(), publicNet())
	s.Uplinks = []string{"eth1", "eth0"}
	s.FastPath = true
	return s
}

func TestBuildFastPathGolden(t *testing.T) {
	r, err := Build(fastPathState())
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "fastpath.golden", []byte(r.String()))
}

func TestBuildFastPath(t *testing.T) {
	r, err := Build(fastPathState())
	if err != nil {
		t.Fatal(err)
	}
	want := []Flowtable{{Name: FlowtableName, Priority: PriorityFilter, Devices: []string{"eth0", "eth1", "v6b-nat", "v6b-pub"}, Counter: true}}
	if diff := cmp.Diff(want, r.Flowtables); diff != "" {
		t.Errorf("flowtables: internal networks forward nothing and are left out (-want +got):\n%s", diff)
	}
	var in Chain
	for _, c := range r.Chains {
		if c.Name == ChainFwdIn {
			in = c
		}
		for i, rule := range c.Rules {
			if strings.Contains(rule.String(), "flow add") && c.Name != ChainFwdIn {
				t.Errorf("chain %s rule %d offloads: %s", c.Name, i, rule)
			}
		}
	}
	// The offload rule is the first of forward_in and accepts: the
	// established accept that follows it is where the slow path accepts
	// the rest (related, other protocols, within one network).
	if len(in.Rules) < 2 {
		t.Fatalf("forward_in has %d rules", len(in.Rules))
	}
	accepted := in.Rules[1].String()
	if !strings.HasPrefix(accepted, "ct state established,related ") || !strings.HasSuffix(accepted, " accept") {
		t.Fatalf("second rule of forward_in: %s, want the accept of established connections", accepted)
	}
	// The same statements after the offload (the judged mark, accept).
	tail := strings.TrimPrefix(accepted, "ct state established,related ")
	if got, want := in.Rules[0].String(), `meta l4proto { tcp, udp } ct state established iifname . oifname != @intra flow add @ft `+tail+` comment "fast path"`; got != want {
		t.Errorf("first rule of forward_in:\n got %s\nwant %s", got, want)
	}

	// Off: the same table as before the fast path existed.
	s := fastPathState()
	s.FastPath = false
	off, err := Build(s)
	if err != nil {
		t.Fatal(err)
	}
	if len(off.Flowtables) != 0 || strings.Contains(off.String(), "flow") {
		t.Errorf("fast path off still has a flowtable or offload rule:\n%s", off)
	}
	// With the fast path, only the flowtable and the one rule differ.
	onRules, offRules := 0, 0
	for i := range r.Chains {
		onRules += len(r.Chains[i].Rules)
		offRules += len(off.Chains[i].Rules)
	}
	if onRules != offRules+1 {
		t.Errorf("rules with the fast path %d, without %d: want one more", onRules, offRules)
	}
}

func TestBuildFastPathNoNetworks(t *testing.T) {
	r, err := Build(State{Uplinks: []string{"eth0"}, FastPath: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Flowtables) != 0 {
		t.Errorf("a table without networks has flowtables: %+v", r.Flowtables)
	}
}

// TestDiffFlowtable: endpoints change elements only (a patch keeps the
// flowtable and its offloaded flows); a network added changes its devices
// and rebuilds.
func TestDiffFlowtable(t *testing.T) {
	s := fastPathState()
	old, err := Build(s)
	if err != nil {
		t.Fatal(err)
	}
	more := fastPathState()
	more.Networks[1].Endpoints = slices.Clone(more.Networks[1].Endpoints)
	more.Networks[1].Endpoints[0].Ports = append(slices.Clone(more.Networks[1].Endpoints[0].Ports), Mapping{Proto: ProtoUDP, HostFirst: 53, HostLast: 53, ContainerFirst: 53})
	r, err := Build(more)
	if err != nil {
		t.Fatal(err)
	}
	if patches, ok := Diff(old, r); !ok || len(patches) == 0 {
		t.Errorf("publishing a port with the fast path: ok=%v, %d patches; want a patch", ok, len(patches))
	}
	changed := *old
	changed.Flowtables = []Flowtable{old.Flowtables[0]}
	changed.Flowtables[0].Devices = []string{"eth0"}
	if _, ok := Diff(old, &changed); ok {
		t.Error("Diff of rulesets whose flowtable devices differ is ok, want a rebuild")
	}
	if got := ApplyPatches(old, nil); !cmp.Equal(got.Flowtables, old.Flowtables) {
		t.Errorf("ApplyPatches lost the flowtables: %+v", got.Flowtables)
	}
}
