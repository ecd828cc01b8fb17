package ipam

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/v6bridge/v6bridge/internal/hostos"
)

func TestNewNeedsStateDir(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Fatal("New without StateDir succeeded")
	}
}

func TestRestart(t *testing.T) {
	dir := t.TempDir()
	m := mustOpen(t, dir)
	pub := mustPool(t, m, "2001:db8:1234:a1:1::/112", "")
	ula, err := m.RequestPool(PoolRequest{Pool: "fd12:3456:789a:8101::/64", SubPool: "fd12:3456:789a:8101::100/120", V6: true,
		Options: map[string]string{"v6bridge.prefix_len": "80"}})
	if err != nil {
		t.Fatal(err)
	}
	ph, err := m.RequestPool(PoolRequest{})
	if err != nil {
		t.Fatal(err)
	}
	gone := mustPool(t, m, "fd99::/112", "")
	mustAddr(t, m, gone.ID, "")
	if _, err := m.RequestAddress(pub.ID, "", gwOpts); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		mustAddr(t, m, pub.ID, "")
		mustAddr(t, m, ula.ID, "")
		mustAddr(t, m, ph.ID, "")
	}
	mustAddr(t, m, pub.ID, "2001:db8:1234:a1:1::80")
	if err := m.ReleaseAddress(pub.ID, "2001:db8:1234:a1:1::3"); err != nil {
		t.Fatal(err)
	}
	if err := m.ReleasePool(gone.ID); err != nil {
		t.Fatal(err)
	}
	before := m.Pools()

	m2 := mustOpen(t, dir)
	if diff := cmp.Diff(before, m2.Pools(), cmpAddrs); diff != "" {
		t.Fatalf("pools after restart (-want +got):\n%s", diff)
	}
	for _, want := range []Pool{pub, ula, ph} {
		got, ok := m2.Pool(want.ID)
		if !ok {
			t.Fatalf("pool %s lost", want.ID)
		}
		if diff := cmp.Diff(want, got, cmpAddrs); diff != "" {
			t.Errorf("pool %s after restart (-want +got):\n%s", want.ID, diff)
		}
	}
	// The cursors survived: allocation continues where it stopped, and
	// the released address is not handed out again right away.
	for _, tt := range []struct{ pool, want string }{
		{pub.ID, "2001:db8:1234:a1:1::6"},
		{ula.ID, "fd12:3456:789a:8101::104"},
		{ph.ID, "169.254.4.6"},
	} {
		if got := mustAddr(t, m2, tt.pool, ""); got != tt.want {
			t.Errorf("first allocation of %s after restart = %s, want %s", tt.pool, got, tt.want)
		}
	}
	// The allocations and the gateway survived.
	for _, tt := range []struct {
		pool, addr string
		err        error
	}{
		{pub.ID, "2001:db8:1234:a1:1::1", ErrAddressInUse},
		{pub.ID, "2001:db8:1234:a1:1::80", ErrAddressInUse},
		{pub.ID, "2001:db8:1234:a1:1::3", nil},
		{ph.ID, "169.254.4.2", ErrAddressInUse},
		{ph.ID, "169.254.4.1", ErrReservedAddress},
		{gone.ID, "", ErrUnknownPool},
	} {
		if _, err := m2.RequestAddress(tt.pool, tt.addr, AddressOptions{}); !errors.Is(err, tt.err) {
			t.Errorf("RequestAddress(%s, %s) after restart = %v, want %v", tt.pool, tt.addr, err, tt.err)
		}
	}
	// A released pool's subnet is free and its addresses are gone.
	if _, err := m2.RequestPool(PoolRequest{Pool: "fd99::/112", V6: true}); err != nil {
		t.Errorf("released subnet not free after restart: %v", err)
	}
	if _, err := m2.RequestPool(PoolRequest{Pool: "2001:db8:1234:a1:1::/112", V6: true}); !errors.Is(err, ErrPoolOverlap) {
		t.Errorf("duplicate of a restored pool = %v, want %v", err, ErrPoolOverlap)
	}
}

// TestDiskLayout checks that the state is one file per pool and address,
// and that releasing removes them.
func TestDiskLayout(t *testing.T) {
	dir := t.TempDir()
	m := mustOpen(t, dir)
	p := mustPool(t, m, "fd12::/112", "")
	for range 3 {
		mustAddr(t, m, p.ID, "")
	}
	count := func(sub string) int {
		ents, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return 0
			}
			t.Fatal(err)
		}
		n := 0
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), ".json") {
				n++
			}
		}
		return n
	}
	addrs := filepath.Join("addrs", dirName(p.ID))
	if got := []int{count("pools"), count(addrs), count("cursors")}; !cmp.Equal(got, []int{1, 3, 1}) {
		t.Errorf("files (pools, addrs, cursors) = %v, want [1 3 1]", got)
	}
	if err := m.ReleaseAddress(p.ID, "fd12::2"); err != nil {
		t.Fatal(err)
	}
	if got := count(addrs); got != 2 {
		t.Errorf("%d address files after release, want 2", got)
	}
	if err := m.ReleasePool(p.ID); err != nil {
		t.Fatal(err)
	}
	if got := []int{count("pools"), count(addrs), count("cursors")}; !cmp.Equal(got, []int{0, 0, 0}) {
		t.Errorf("files after ReleasePool = %v, want none", got)
	}
	if err := m.ReleaseAddress(p.ID, "fd12::1"); err != nil {
		t.Errorf("ReleaseAddress after ReleasePool = %v", err)
	}
}

// TestLeftovers checks that addresses and cursors of a pool whose release
// was cut short (record deleted, the rest not) are dropped at start.
func TestLeftovers(t *testing.T) {
	dir := t.TempDir()
	m := mustOpen(t, dir)
	p := mustPool(t, m, "fd12::/112", "")
	mustAddr(t, m, p.ID, "")
	if err := os.Remove(filepath.Join(dir, "pools", "v6bridge_fd12--_112.json")); err != nil {
		t.Fatal(err)
	}
	m2 := mustOpen(t, dir)
	if len(m2.Pools()) != 0 {
		t.Errorf("pools %v", m2.Pools())
	}
	for _, sub := range []string{filepath.Join("addrs", dirName(p.ID)), filepath.Join("cursors", "v6bridge_fd12--_112.json")} {
		if _, err := os.Stat(filepath.Join(dir, sub)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("leftover %s not dropped: %v", sub, err)
		}
	}
	// The subnet starts fresh.
	p = mustPool(t, m2, "fd12::/112", "")
	if got := mustAddr(t, m2, p.ID, ""); got != "fd12::1" {
		t.Errorf("got %s, want fd12::1", got)
	}
}

func TestCorruptState(t *testing.T) {
	tests := []struct {
		name, file, content string
	}{
		{"bad json", "pools/x.json", "{"},
		{"address outside its pool", "addrs/v6bridge_fd12--_112/fd13--1.json", `{"addr":"fd13::1"}`},
		{"bad pool prefix", "pools/y.json", `{"id":"y","prefix":"fd12::1/112","range":"fd12::/112"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			m := mustOpen(t, dir)
			mustPool(t, m, "fd12::/112", "")
			writeState(t, dir, tt.file, tt.content)
			if _, err := New(Config{StateDir: dir}); err == nil {
				t.Fatal("New on corrupt state succeeded")
			}
		})
	}
}

func TestRestoreHostAddrsNotRechecked(t *testing.T) {
	// A pool persisted before the host gained an address in it is still
	// restored: refusing it at start would strand its containers.
	dir := t.TempDir()
	m := mustOpen(t, dir)
	mustPool(t, m, "fd12::/112", "")
	host := &hostos.TestState{Host: []netip.Addr{netip.MustParseAddr("fd12::1")}}
	m2, err := New(Config{StateDir: dir, Host: host})
	if err != nil || len(m2.Pools()) != 1 {
		t.Fatalf("restore = %v, %v", m2, err)
	}
}
