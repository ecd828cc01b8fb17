package nat

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/nftables"
	"github.com/vishvananda/netns"

	"github.com/v6bridge/v6bridge/internal/nettest"
	"github.com/v6bridge/v6bridge/internal/nftledger"
)

// TestPrivilegedPatchEqualsRebuild applies the worlds of patchWorlds to one
// table, in order and in random orders, so endpoint changes go in as
// element patches, and compares nft's listing after each step with a table
// built from scratch in a second namespace.
func TestPrivilegedPatchEqualsRebuild(t *testing.T) {
	ws := patchWorlds()
	orders := [][]int{{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 2, 1}}
	r := rand.New(rand.NewPCG(1, 2))
	for range 3 {
		orders = append(orders, r.Perm(len(ws)))
	}
	// Endpoint-only steps, several in a row, so patches follow patches.
	orders = append(orders, []int{1, 2, 3, 4, 5, 1, 3, 2, 5, 4})
	for _, order := range orders {
		ns := nettest.NewNS(t)
		tbl := newTable(t, ns)
		for _, i := range order {
			if err := tbl.Apply(ws[i]); err != nil {
				t.Fatalf("order %v: Apply world %d: %v", order, i, err)
			}
			fresh := nettest.NewNS(t)
			if err := newTable(t, fresh).Apply(ws[i]); err != nil {
				t.Fatalf("fresh Apply world %d: %v", i, err)
			}
			if diff := cmp.Diff(normalize(listTable(t, fresh)), normalize(listTable(t, ns))); diff != "" {
				t.Fatalf("order %v, world %d: patched table differs from a rebuild (-rebuild +patched):\n%s", order, i, diff)
			}
			// The watcher sees our own patch as ours: no repair.
			if fp, err := tbl.fingerprint(); err != nil || fp != tbl.fp {
				t.Fatalf("order %v, world %d: fingerprint after apply %x (err %v), remembered %x", order, i, fp, err, tbl.fp)
			}
		}
	}
	// The last order is endpoint changes only: all but its first step patched.
	ns := nettest.NewNS(t)
	tbl := newTable(t, ns)
	for _, i := range orders[len(orders)-1] {
		if err := tbl.Apply(ws[i]); err != nil {
			t.Fatal(err)
		}
	}
	if want := len(orders[len(orders)-1]) - 1; tbl.patched != want {
		t.Errorf("patched %d times, want %d", tbl.patched, want)
	}
}

// TestPrivilegedPatchAfterTamperingRebuilds: when someone changed our set
// behind our back, the next Apply must not patch a table it no longer
// knows: it rebuilds, and the result equals a fresh build.
func TestPrivilegedPatchAfterTamperingRebuilds(t *testing.T) {
	if patched, _ := applyAfter(t, nil, nftIn("flush", "set", "ip6", TableName, SetPublished)); patched != 0 {
		t.Errorf("patched a table changed behind our back")
	}
}

// applyAfter applies one world to a table with ledger, runs between in the
// namespace, applies the next world, checks the table equals a fresh build
// of it and returns how many of the applies were patches and how often the
// second one listed our tables.
func applyAfter(t *testing.T, ledger *nftledger.Ledger, between ...func(t *testing.T, ns netns.NsHandle)) (patched, listed int) {
	t.Helper()
	ws := patchWorlds()
	ns := nettest.NewNS(t)
	tbl, err := NewTable(TableConfig{NetNS: int(ns), Ledger: ledger})
	if err != nil {
		t.Fatal(err)
	}
	if err := tbl.Apply(ws[1]); err != nil {
		t.Fatal(err)
	}
	for _, b := range between {
		b(t, ns)
	}
	before := tbl.listed
	if err := tbl.Apply(ws[2]); err != nil {
		t.Fatal(err)
	}
	listed = tbl.listed - before
	fresh := nettest.NewNS(t)
	if err := newTable(t, fresh).Apply(ws[2]); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(listTable(t, fresh), listTable(t, ns)); diff != "" {
		t.Errorf("(-rebuild +ours):\n%s", diff)
	}
	return tbl.patched, listed
}

// nftIn runs nft with args in the namespace: another party's batch.
func nftIn(args ...string) func(*testing.T, netns.NsHandle) {
	return func(t *testing.T, ns netns.NsHandle) { inNS(t, ns, "nft", args...) }
}

// ledgerBatch commits a batch of this process in a table of its own
// through ledger, as the NDP ingress filter does.
func ledgerBatch(ledger *nftledger.Ledger) func(*testing.T, netns.NsHandle) {
	return func(t *testing.T, ns netns.NsHandle) {
		conn, err := nftables.New(nftables.WithNetNSFd(int(ns)))
		if err != nil {
			t.Fatal(err)
		}
		conn.AddTable(&nftables.Table{Family: nftables.TableFamilyNetdev, Name: "v6b-elsewhere"})
		if err := ledger.Flush(conn); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPrivilegedPatchAfterAnotherPartysBatch: a batch of another party
// between two of ours (the engine's iptables, an operator's nft) leaves
// our table as we left it, so the next change is still a patch, after one
// listing, and the result equals a fresh build; the control, a change to
// our own set, rebuilds (TestPrivilegedPatchAfterTamperingRebuilds).
// Batches the ledger vouches for (the NDP ingress filter's) need no
// listing, unless another party's batch came too.
func TestPrivilegedPatchAfterAnotherPartysBatch(t *testing.T) {
	ledger := &nftledger.Ledger{}
	for _, tt := range []struct {
		name    string
		between []func(*testing.T, netns.NsHandle)
		patched int
		listed  int
	}{
		{"another party", []func(*testing.T, netns.NsHandle){nftIn("add", "table", "netdev", "someone-else")}, 1, 1},
		{"ours, in the ledger", []func(*testing.T, netns.NsHandle){ledgerBatch(ledger), ledgerBatch(ledger)}, 1, 0},
		{"ours, then another party", []func(*testing.T, netns.NsHandle){ledgerBatch(ledger), nftIn("add", "table", "netdev", "someone-else")}, 1, 1},
		{"ours, then tampering", []func(*testing.T, netns.NsHandle){ledgerBatch(ledger), nftIn("flush", "set", "ip6", TableName, SetPublished)}, 0, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			patched, listed := applyAfter(t, ledger, tt.between...)
			if patched != tt.patched || listed < tt.listed || tt.listed == 0 && listed != 0 {
				t.Errorf("patched %d times after %d listings, want %d patches after %d", patched, listed, tt.patched, tt.listed)
			}
		})
	}
}

// TestPrivilegedUpdateEndpointsEqualsRebuild applies random endpoint
// changes with UpdateEndpoints, then an Apply of a whole state on top (it
// must patch from the updated table), and compares nft's listing with a
// table built from scratch each time; the watcher must see our patches as
// ours.
func TestPrivilegedUpdateEndpointsEqualsRebuild(t *testing.T) {
	nets := []Network{internalNet(), natNet(), publicNet()}
	s := stateWith(state(nets...), nil)
	ns := nettest.NewNS(t)
	tbl := newTable(t, ns)
	if err := tbl.UpdateEndpoints(nil); !errors.Is(err, ErrNoModel) {
		t.Errorf("UpdateEndpoints before Apply: %v, want ErrNoModel", err)
	}
	if err := tbl.Apply(s); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 4))
	for step := 0; step < 40; step++ {
		us := []EndpointUpdate{randomUpdate(r, nets)}
		want := stateWith(s, us)
		err := tbl.UpdateEndpoints(us)
		if (err != nil) != (Validate(want) != nil) {
			t.Fatalf("step %d: UpdateEndpoints %v, Validate %v", step, err, Validate(want))
		}
		if err == nil {
			s = want
		}
		if step%10 == 9 {
			// A whole-state Apply after patches.
			if err := tbl.Apply(s); err != nil {
				t.Fatal(err)
			}
		}
		fresh := nettest.NewNS(t)
		if err := newTable(t, fresh).Apply(s); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(normalize(listTable(t, fresh)), normalize(listTable(t, ns))); diff != "" {
			t.Fatalf("step %d: updated table differs from a rebuild (-rebuild +updated):\n%s", step, diff)
		}
		if fp, err := tbl.fingerprint(); err != nil || fp != tbl.fp {
			t.Fatalf("step %d: fingerprint %x (err %v), remembered %x", step, fp, err, tbl.fp)
		}
	}
	if tbl.patched == 0 {
		t.Error("no update went in as a patch")
	}
}
