package driver

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/v6bridge/v6bridge/internal/store"
)

// One truncated endpoint record fails Load; with a quarantine the driver
// starts with every other record.
func TestDiskStoreQuarantine(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenDiskStore(filepath.Join(dir, "driver"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutNetwork(&Network{ID: netA, Bridge: BridgeName(netA)}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{ep1, ep2} {
		if err := s.PutEndpoint(&Endpoint{ID: id, NetworkID: netA}); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "driver", "endpoints", ep2+".json"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Links: newFakeLinks(), Store: s}); err == nil {
		t.Fatal("New loaded a truncated endpoint record")
	}
	var moved []string
	s.SetQuarantine(&store.Quarantine{Dir: filepath.Join(dir, "quarantine"), Report: func(f, to string, err error) { moved = append(moved, to) }})
	d, err := New(Config{Links: newFakeLinks(), Store: s})
	if err != nil {
		t.Fatal(err)
	}
	if len(moved) != 1 {
		t.Fatalf("quarantined %v, want the one endpoint", moved)
	}
	if _, ok := d.endpoints[ep1]; !ok || len(d.endpoints) != 1 || len(d.networks) != 1 {
		t.Errorf("loaded %d networks, %d endpoints, want 1 and 1 (%s)", len(d.networks), len(d.endpoints), ep1)
	}
}
