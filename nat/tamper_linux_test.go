package nat

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netns"

	"github.com/v6bridge/v6bridge/internal/nettest"
)

// TestPrivilegedTamperInOurWindow: another party's batch right before or
// right after one of ours (between our batch and the generation we read to
// call it ours) is not taken as ours: when it changed our table the next
// check repairs it, when it left our table alone the table stays as built
// and later changes still patch.
func TestPrivilegedTamperInOurWindow(t *testing.T) {
	ws := patchWorlds()
	tamper := nftIn("flush", "set", "ip6", TableName, SetPublished)
	harmless := nftIn("add", "table", "netdev", "someone-else")
	for _, tt := range []struct {
		name    string
		patch   bool   // the batch is a patch (Apply of ws[2] after ws[1]), else the first Apply
		at      string // "before" or "after" our batch
		foreign func(*testing.T, netns.NsHandle)
	}{
		{"tampering after our first apply", false, "after", tamper},
		{"tampering after our patch", true, "after", tamper},
		{"tampering between our check and our patch", true, "before", tamper},
		{"a harmless batch after our patch (control)", true, "after", harmless},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ns := nettest.NewNS(t)
			tbl := newTable(t, ns)
			if tt.patch {
				if err := tbl.Apply(ws[1]); err != nil {
					t.Fatal(err)
				}
			}
			once := true
			tbl.window = func(at string) {
				if at == tt.at && once {
					once = false
					tt.foreign(t, ns)
				}
			}
			if err := tbl.Apply(ws[2]); err != nil {
				t.Fatal(err)
			}
			tbl.window = nil
			if once {
				t.Fatalf("the foreign batch never ran %s our batch", tt.at)
			}
			fresh := nettest.NewNS(t)
			want := func(s State) string {
				t.Helper()
				if err := newTable(t, fresh).Apply(s); err != nil {
					t.Fatal(err)
				}
				return listTable(t, fresh)
			}
			// What Watch does after the monitor's event.
			if err := tbl.check(); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want(ws[2]), listTable(t, ns)); diff != "" {
				t.Fatalf("after the check (-built +ours):\n%s", diff)
			}
			// The table is known again: the next change is a patch.
			before := tbl.patched
			if err := tbl.Apply(ws[3]); err != nil {
				t.Fatal(err)
			}
			if got := tbl.patched - before; got != 1 {
				t.Errorf("the Apply after the check patched %d times, want 1", got)
			}
			if diff := cmp.Diff(want(ws[3]), listTable(t, ns)); diff != "" {
				t.Errorf("after the next Apply (-built +ours):\n%s", diff)
			}
		})
	}
}
