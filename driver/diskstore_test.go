package driver

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/v6bridge/v6bridge/internal/golden"
	"github.com/v6bridge/v6bridge/netspec"
)

// TestReadsRecordsOfMain8382c76 reads the records the last version before
// numbered formats wrote, and a restarted driver keeps publishing what the
// endpoint published then.
func TestReadsRecordsOfMain8382c76(t *testing.T) {
	st, err := OpenDiskStore(golden.CopyDir(t, "testdata/state-8382c76"))
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
	if e.Addr.String() != "2001:db8:1234:a1:1::ab53/112" || !e.Joined || e.Sandbox == "" || !cmp.Equal(e.OldPorts, want, cmpopts.EquateComparable(netip.Addr{})) {
		t.Errorf("endpoint = %+v", e)
	}
	// The old record kept host ports only: they become the requests of
	// the sandbox's record, the host ports held still.
	d, err := New(Config{Links: newFakeLinks(), Store: st})
	if err != nil {
		t.Fatal(err)
	}
	wantSandbox := []*Sandbox{{Format: RecordFormat, Key: e.Sandbox, Ports: want,
		PortRequests: []PortRequest{{Proto: netspec.ProtoTCP, HostFirst: 8081, HostLast: 8081, ContainerPort: 80}}}}
	checkConverged(t, st, wantSandbox)
	if diff := cmp.Diff(wantSandbox[0], d.pub.sandboxes[e.Sandbox], cmpopts.EquateComparable(netip.Addr{})); diff != "" {
		t.Errorf("sandbox record from the old endpoint record (-want +got):\n%s", diff)
	}
}

// checkConverged checks that the records on disk are in the new form: no
// endpoint record keeps published ports, and the sandbox records are want.
func checkConverged(t *testing.T, st *DiskStore, want []*Sandbox) {
	t.Helper()
	_, es, err := st.Load()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if len(e.OldPortRequests)+len(e.OldPorts) > 0 {
			t.Errorf("endpoint record %.12s still holds published ports: %+v", e.ID, e)
		}
	}
	sbs, err := st.LoadSandboxes()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, sbs, cmpopts.EquateComparable(netip.Addr{}), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("sandbox records on disk (-want +got):\n%s", diff)
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

// TestReadsRecordsOfMain4cdef39 reads the records the last version that
// kept a sandbox's published ports on one of its endpoints wrote (made by
// its driver: a container on a public and a nat network publishing three
// ports, one on ::1 and one picked; one on an internal network only,
// whose host port is released; one endpoint not joined). They move into
// sandbox records on disk, and the driver, started on them and again on
// the converged records, shows what that version showed.
func TestReadsRecordsOfMain4cdef39(t *testing.T) {
	const (
		c1 = "/var/run/docker/netns/c1"
		c2 = "/var/run/docker/netns/c2"
	)
	st, err := OpenDiskStore(golden.CopyDir(t, "testdata/state-4cdef39"))
	if err != nil {
		t.Fatal(err)
	}
	// What v6bridge 4cdef39's Status showed for these records, by
	// endpoint: host ports, then open ports.
	want := map[string][2]string{
		"1111111111111111111111111111111111111111111111111111111111111111": {"", "80/tcp,443/tcp"},
		"2222222222222222222222222222222222222222222222222222222222222222": {"[::]:8081->80/tcp,[::]:49153->443/tcp,[::1]:5432->5432/tcp", ""},
		"3333333333333333333333333333333333333333333333333333333333333333": {"", ""},
		"4444444444444444444444444444444444444444444444444444444444444444": {"", ""},
	}
	tcp := func(addr string, host, container uint16) PortRequest {
		r := PortRequest{Proto: netspec.ProtoTCP, HostFirst: host, HostLast: host, ContainerPort: container}
		if addr != "" {
			r.HostAddr = netip.MustParseAddr(addr)
		}
		return r
	}
	wantSandboxes := []*Sandbox{
		{Format: RecordFormat, Key: c1, PortRequests: []PortRequest{tcp("", 8081, 80), tcp("::1", 5432, 5432), tcp("", 0, 443)},
			Ports: []netspec.Mapping{
				{Proto: netspec.ProtoTCP, HostFirst: 8081, HostLast: 8081, ContainerFirst: 80},
				{Proto: netspec.ProtoTCP, HostFirst: ephemeralFirst, HostLast: ephemeralFirst, ContainerFirst: 443},
				{Proto: netspec.ProtoTCP, HostAddr: netip.IPv6Loopback(), HostFirst: 5432, HostLast: 5432, ContainerFirst: 5432},
			}},
		{Format: RecordFormat, Key: c2, PortRequests: []PortRequest{tcp("", 8082, 80)}},
	}
	for run := range 2 {
		d, err := New(Config{Links: newFakeLinks(), Store: st})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string][2]string{}
		for _, n := range d.Status() {
			for _, e := range n.Endpoints {
				got[e.ID] = [2]string{e.Ports, e.Open}
			}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("start %d: ports and open ports by endpoint (-4cdef39 +now):\n%s", run, diff)
		}
		if f := d.pub.forwards(); len(f) != 1 || f[0].Listen.String() != "[::1]:5432" || f[0].To.String() != "[fd00:b::11]:5432" {
			t.Errorf("start %d: forwards %v, want [::1]:5432 to [fd00:b::11]:5432", run, f)
		}
		checkConverged(t, st, wantSandboxes)
	}
}
