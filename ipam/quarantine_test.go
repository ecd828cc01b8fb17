package ipam

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/v6bridge/v6bridge/internal/store"
)

// A truncated cursor or address file fails New without a quarantine; with
// one it is set aside and every other pool and address loads.
func TestTruncatedStateIsQuarantined(t *testing.T) {
	dir := t.TempDir()
	m := mustOpen(t, dir)
	a := mustPool(t, m, "fd00:a::/112", "")
	b := mustPool(t, m, "fd00:b::/112", "")
	mustAddr(t, m, a.ID, "")
	kept := mustAddr(t, m, b.ID, "")
	second := mustAddr(t, m, b.ID, "")
	truncate := func(glob string) {
		t.Helper()
		fs, _ := filepath.Glob(filepath.Join(dir, glob))
		if len(fs) == 0 {
			t.Fatalf("no file %s", glob)
		}
		if err := os.WriteFile(fs[0], []byte(`{"ke`), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	truncate("cursors/*fd00-a*.json")
	truncate("addrs/*fd00-b*/" + strings.ReplaceAll(second, ":", "-") + ".json")
	if _, err := New(Config{StateDir: dir}); err == nil {
		t.Fatal("New loaded truncated state without a quarantine")
	}
	var moved []string
	q := &store.Quarantine{Dir: filepath.Join(dir, "..", "quarantine"), Report: func(f, to string, err error) { moved = append(moved, f) }}
	m, err := New(Config{StateDir: dir, Quarantine: q})
	if err != nil {
		t.Fatal(err)
	}
	if len(moved) != 2 {
		t.Errorf("quarantined %v, want the cursor and the address", moved)
	}
	if _, ok := m.Pool(a.ID); !ok {
		t.Errorf("pool %s lost with its cursor", a.ID)
	}
	// The readable address stays allocated; a restart loads clean now.
	if _, err := m.RequestAddress(b.ID, kept, AddressOptions{}); err == nil {
		t.Errorf("address %s handed out twice after the quarantine", kept)
	}
	if _, err := New(Config{StateDir: dir}); err != nil {
		t.Errorf("restart after quarantine: %v", err)
	}
}
