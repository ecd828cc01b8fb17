package driver

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const (
	idA = "aaaaaaaaaaaaaaaa"
	idB = "bbbbbbbbbbbbbbbb"
)

// newMarkedRig is a rig whose driver is instance id and whose kernel marks
// links with it, as link.Kernel does with Config.Mark.
func newMarkedRig(t *testing.T, id string) *rig {
	t.Helper()
	r := &rig{instance: id, links: newFakeLinks(), fw: &fakeFirewall{}, nb: &fakeNeighbors{}, px: &fakeForwarder{}, store: newMemStore()}
	r.links.mark = id
	r.links.markDirs[id] = "/var/lib/v6bridge-" + id
	r.d = r.reopen(t)
	return r
}

// A second instance on another state directory finds the first one's
// marked bridge: it refuses before touching the kernel or the firewall,
// naming the directory the links belong to.
func TestReconcileRefusesLinksOfAnotherInstance(t *testing.T) {
	r := newMarkedRig(t, idA)
	mustNetwork(t, r, netA, "fd00:1::/112", nil)
	mustEndpoint(t, r, netA, ep1, "fd00:1::2/112")
	applies := r.fw.n

	second := &rig{instance: idB, links: r.links, fw: r.fw, nb: r.nb, px: r.px, store: newMemStore()}
	r.links.calls = nil
	err := second.reopen(t).Reconcile()
	if !errors.Is(err, ErrForeignLinks) {
		t.Fatalf("Reconcile = %v, want ErrForeignLinks", err)
	}
	for _, want := range []string{"v6b-aaaaaaaaaaa", idA, "/var/lib/v6bridge-" + idA, "state.source="} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %q: %v", want, err)
		}
	}
	if diff := cmp.Diff([]string{"owned-links"}, r.links.calls); diff != "" {
		t.Errorf("kernel calls of the refused instance (-want +got):\n%s", diff)
	}
	if r.fw.n != applies {
		t.Error("the refused instance rewrote the firewall")
	}
}

// The state directory lost its records (restored from an old backup,
// another directory mounted): its own marks in the kernel show it.
func TestReconcileRefusesEmptyStateWithOwnLinks(t *testing.T) {
	r := newMarkedRig(t, idA)
	mustNetwork(t, r, netA, "fd00:1::/112", nil)
	r.store = newMemStore()
	err := r.reopen(t).Reconcile()
	if !errors.Is(err, ErrForeignLinks) || !strings.Contains(err.Error(), "/var/lib/v6bridge-"+idA) {
		t.Fatalf("Reconcile = %v, want ErrForeignLinks naming the state directory", err)
	}
	if diff := cmp.Diff([]string{"v6b-aaaaaaaaaaa"}, r.links.ours()); diff != "" {
		t.Errorf("links (-want +got):\n%s", diff)
	}
}

// Orphans are swept only when they carry this instance's mark; unmarked
// ones (older v6bridge, by hand) stay; with NoSweep nothing is swept.
func TestReconcileSweepsOnlyOwnMarks(t *testing.T) {
	r := newMarkedRig(t, idA)
	mustNetwork(t, r, netA, "fd00:1::/112", nil)
	r.links.links["v6b-mine0000000"] = "bridge"
	r.links.marks["v6b-mine0000000"] = idA
	r.links.links["v6hmine00000000"] = "veth"
	r.links.marks["v6hmine00000000"] = idA
	r.links.links["v6b-unmarked000"] = "bridge"
	if err := r.reopen(t).Reconcile(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"v6b-aaaaaaaaaaa", "v6b-unmarked000"}, r.links.ours()); diff != "" {
		t.Errorf("links after reconcile (-want +got):\n%s", diff)
	}
}

// One network whose bridge cannot be ensured is reported; the others come
// up and the firewall is applied for all.
func TestReconcileDegraded(t *testing.T) {
	r := newMarkedRig(t, idA)
	mustNetwork(t, r, netA, "fd00:1::/112", nil)
	mustNetwork(t, r, netB, "fd00:2::/112", nil)
	r.links = newFakeLinks() // a reboot
	r.links.mark = idA
	r.links.fail = failCall(true, "ensure-bridge v6b-aaaaaaaaaaa")
	d := r.reopen(t)
	if err := d.Reconcile(); err != nil {
		t.Fatalf("Reconcile with one broken network: %v", err)
	}
	if diff := cmp.Diff([]string{"v6b-bbbbbbbbbbb"}, r.links.ours()); diff != "" {
		t.Errorf("links (-want +got):\n%s", diff)
	}
	if got := len(r.fw.last.Networks); got != 2 {
		t.Errorf("firewall has %d networks, want both", got)
	}
	probs := d.Problems()
	if len(probs) != 1 || !strings.Contains(probs[netA], "injected") {
		t.Errorf("Problems = %v, want netA's", probs)
	}
	st := d.Status()
	if st[0].Problem == "" || st[1].Problem != "" {
		t.Errorf("status problems = %q, %q", st[0].Problem, st[1].Problem)
	}
}

// world is what an undo must restore: links, records, firewall, NDP.
type world struct {
	Links     []string
	Networks  []string
	Endpoints []string
	Sandboxes []string
	FW        string
	NDP       string
}

func (r *rig) world() world {
	w := world{Links: r.links.ours(), FW: fmt.Sprintf("%+v", r.fw.last), NDP: fmt.Sprint(r.nb.addrs, r.nb.ranges)}
	for id, n := range r.store.networks {
		w.Networks = append(w.Networks, fmt.Sprintf("%.4s %+v", id, n))
	}
	for id, e := range r.store.endpoints {
		w.Endpoints = append(w.Endpoints, fmt.Sprintf("%.4s %+v", id, e))
	}
	for key, s := range r.store.sandboxes {
		w.Sandboxes = append(w.Sandboxes, fmt.Sprintf("%s %+v", key, s))
	}
	sort.Strings(w.Networks)
	sort.Strings(w.Endpoints)
	sort.Strings(w.Sandboxes)
	return w
}

// Every failure of a step of CreateNetwork, CreateEndpoint, DeleteNetwork,
// Join and ProgramExternalConnectivity leaves the world as it was (the
// sandbox records included), and the same call succeeds once the failure
// is gone.
func TestUndoPaths(t *testing.T) {
	type inject struct {
		links, store string // failCall names
		fw, ndp      string // "apply"/"update", "set"/"update"
	}
	setup := func(t *testing.T, r *rig) {
		mustNetwork(t, r, netB, "2001:db8:1234:a1:2::/112", nil)
		mustEndpoint(t, r, netB, ep2, "2001:db8:1234:a1:2::2/112")
		if _, err := r.d.Join(JoinRequest{NetworkID: netB, EndpointID: ep2, SandboxKey: "b", Ports: portmap("", 8082, 80)}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name   string
		before func(t *testing.T, r *rig) // beyond setup
		call   func(r *rig) error
		fails  []inject
	}{
		{
			name: "CreateNetwork",
			call: func(r *rig) error { return r.d.CreateNetwork(createReq(netA, "2001:db8:1234:a1:1::/112", nil)) },
			fails: []inject{
				{links: "link-exists v6b-aaaaaaaaaaa"}, {links: "ensure-bridge v6b-aaaaaaaaaaa"},
				{store: "put-network " + netA}, {fw: "apply"}, {ndp: "set"},
			},
		},
		{
			name:   "CreateEndpoint",
			before: func(t *testing.T, r *rig) { mustNetwork(t, r, netA, "2001:db8:1234:a1:1::/112", nil) },
			call: func(r *rig) error {
				_, err := r.d.CreateEndpoint(CreateEndpointRequest{NetworkID: netA, EndpointID: ep1, AddressIPv6: netip.MustParsePrefix("2001:db8:1234:a1:1::2/112")})
				return err
			},
			fails: []inject{{links: "ensure-veth " + hostVeth(ep1)}, {store: "put-endpoint " + ep1}},
		},
		{
			name:   "DeleteNetwork",
			before: func(t *testing.T, r *rig) { mustNetwork(t, r, netA, "2001:db8:1234:a1:1::/112", nil) },
			call:   func(r *rig) error { return r.d.DeleteNetwork(netA) },
			fails: []inject{
				{fw: "apply"}, {ndp: "set"}, {links: "delete-bridge v6b-aaaaaaaaaaa"}, {store: "delete-network " + netA},
			},
		},
		{
			name: "Join/publishes",
			before: func(t *testing.T, r *rig) {
				mustNetwork(t, r, netA, "2001:db8:1234:a1:1::/112", nil)
				mustEndpoint(t, r, netA, ep1, "2001:db8:1234:a1:1::2/112")
			},
			call: func(r *rig) error {
				_, err := r.d.Join(JoinRequest{NetworkID: netA, EndpointID: ep1, SandboxKey: "a", Ports: portmap("", 8081, 80)})
				return err
			},
			fails: []inject{{store: "put-endpoint " + ep1}, {store: "put-sandbox a"}, {fw: "update"}, {ndp: "update"}},
		},
		{
			// Sandbox a publishes from an internal network, holding no
			// host port; ep3 gives it a target: the record's host ports
			// are held.
			name: "Join/holds host ports",
			before: func(t *testing.T, r *rig) {
				mustNetwork(t, r, netA, "fd00:e::/112", map[string]string{OptMode: "internal"})
				mustEndpoint(t, r, netA, ep1, "fd00:e::2/112")
				if _, err := r.d.Join(JoinRequest{NetworkID: netA, EndpointID: ep1, SandboxKey: "a", Ports: portmap("", 8081, 80)}); err != nil {
					t.Fatal(err)
				}
				mustEndpoint(t, r, netB, ep3, "2001:db8:1234:a1:2::3/112")
			},
			call: func(r *rig) error {
				_, err := r.d.Join(JoinRequest{NetworkID: netB, EndpointID: ep3, SandboxKey: "a"})
				return err
			},
			fails: []inject{{store: "put-endpoint " + ep3}, {store: "put-sandbox a"}, {fw: "update"}},
		},
		{
			name: "ProgramExternalConnectivity",
			before: func(t *testing.T, r *rig) {
				mustNetwork(t, r, netA, "2001:db8:1234:a1:1::/112", nil)
				mustEndpoint(t, r, netA, ep1, "2001:db8:1234:a1:1::2/112")
				if _, err := r.d.Join(JoinRequest{NetworkID: netA, EndpointID: ep1, SandboxKey: "a"}); err != nil {
					t.Fatal(err)
				}
			},
			call:  func(r *rig) error { return r.d.ProgramExternalConnectivity(netA, ep1, portmap("", 8081, 80)) },
			fails: []inject{{store: "put-sandbox a"}, {fw: "update"}},
		},
	}
	for _, tt := range tests {
		for _, f := range tt.fails {
			t.Run(tt.name+"/"+strings.TrimSpace(f.links+f.store+" fw:"+f.fw+" ndp:"+f.ndp), func(t *testing.T) {
				r := newRig(t)
				setup(t, r)
				if tt.before != nil {
					tt.before(t, r)
				}
				before := r.world()
				if f.links != "" {
					r.links.fail = failCall(false, f.links)
				}
				if f.store != "" {
					r.store.fail = failCall(false, f.store)
				}
				if f.fw != "" {
					r.fw.failOp = failCall(false, f.fw)
				}
				if f.ndp != "" {
					r.nb.fail = failCall(false, f.ndp)
				}
				if err := tt.call(r); err == nil {
					t.Fatal("no error although a step failed")
				}
				if diff := cmp.Diff(before, r.world()); diff != "" {
					t.Errorf("world after the failed call (-before +after):\n%s", diff)
				}
				// The failure is gone (failCall fails once): the retry works
				// and a restart sees the same world.
				if err := tt.call(r); err != nil {
					t.Fatalf("retry: %v", err)
				}
				after := r.world()
				if err := r.reopen(t).Reconcile(); err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(after, r.world()); diff != "" {
					t.Errorf("restart changed the world (-before +after):\n%s", diff)
				}
			})
		}
	}
}

// Networks the engine no longer knows (its data wiped) are listed, and
// deleted with apply; a network it knows is kept.
func TestStaleNetworks(t *testing.T) {
	r := newRig(t)
	mustNetwork(t, r, netA, "fd00:1::/112", nil)
	mustEndpoint(t, r, netA, ep1, "fd00:1::2/112")
	mustNetwork(t, r, netB, "fd00:2::/112", nil)
	engine := map[string]bool{netB: true}
	got, err := r.d.StaleNetworks(engine, false)
	if err != nil || len(got) != 1 || got[0].ID != netA || got[0].Endpoints != 1 {
		t.Fatalf("StaleNetworks = %+v, %v; want netA with 1 endpoint", got, err)
	}
	if !r.d.UsesSubnet(netip.MustParsePrefix("fd00:1::/112")) {
		t.Fatal("a dry run removed the network")
	}
	if _, err := r.d.StaleNetworks(engine, true); err != nil {
		t.Fatal(err)
	}
	if r.d.UsesSubnet(netip.MustParsePrefix("fd00:1::/112")) || !r.d.UsesSubnet(netip.MustParsePrefix("fd00:2::/112")) {
		t.Error("apply did not delete exactly the stale network")
	}
	if diff := cmp.Diff([]string{"v6b-bbbbbbbbbbb"}, r.links.ours()); diff != "" {
		t.Errorf("links (-want +got):\n%s", diff)
	}
	if len(r.store.networks) != 1 || len(r.store.endpoints) != 0 {
		t.Errorf("records left: %d networks, %d endpoints", len(r.store.networks), len(r.store.endpoints))
	}
}

func hostVeth(endpointID string) string {
	h, _ := VethNames(endpointID)
	return h
}
