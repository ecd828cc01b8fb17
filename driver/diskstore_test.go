package driver

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/v6bridge/v6bridge/netspec"
)

// copyTree copies testdata into a temp dir, so the test never writes to it.
func copyTree(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestReadsRecordsOfMain8382c76 reads the records the last version before
// numbered formats wrote, and a restarted driver keeps publishing what the
// endpoint published then.
func TestReadsRecordsOfMain8382c76(t *testing.T) {
	st, err := OpenDiskStore(copyTree(t, "testdata/state-8382c76"))
	if err != nil {
		t.Fatal(err)
	}
	ns, es, err := st.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(ns) != 1 || len(es) != 1 {
		t.Fatalf("loaded %d networks, %d endpoints, want 1 and 1", len(ns), len(es))
	}
	n, e := ns[0], es[0]
	if n.Mode != netspec.ModePublic || n.Subnet.String() != "2001:db8:1234:a1:1::/112" || !n.EngineSetsGatewayRoute || n.MTU != 1500 ||
		!cmp.Equal(n.Allow, []netspec.Port{{Proto: 6, First: 443, Last: 443}}) {
		t.Errorf("network = %+v", n)
	}
	want := []netspec.Mapping{{Proto: 6, HostFirst: 8081, HostLast: 8081, ContainerFirst: 80}}
	if e.Addr.String() != "2001:db8:1234:a1:1::ab53/112" || !e.Joined || e.Sandbox == "" || !cmp.Equal(e.Ports, want, cmpopts.EquateComparable(netip.Addr{})) {
		t.Errorf("endpoint = %+v", e)
	}
	// The old record kept host ports only: they become the requests.
	d, err := New(Config{Links: newFakeLinks(), Store: st})
	if err != nil {
		t.Fatal(err)
	}
	got := d.endpoints[e.ID].PortRequests
	if len(got) != 1 || got[0].HostFirst != 8081 || got[0].ContainerPort != 80 {
		t.Errorf("port requests from the old record = %+v", got)
	}
}

func TestRefusesNewerRecordFormat(t *testing.T) {
	dir := t.TempDir()
	st, err := OpenDiskStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "networks", "x.json"), []byte(`{"Format": 99, "ID": "x"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Load(); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("Load = %v, want a newer-format error", err)
	}
}
