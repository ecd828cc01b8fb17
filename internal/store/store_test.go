package store

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type rec struct{ Name string }

// A truncated entry stops Each without a quarantine and is set aside with
// one, the other entries still loaded.
func TestEachQuarantinesBadEntries(t *testing.T) {
	root := t.TempDir()
	d, err := Open(filepath.Join(root, "networks"))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a", "c"} {
		if err := d.Put(k, rec{Name: k}); err != nil {
			t.Fatal(err)
		}
	}
	bad := filepath.Join(d.Path(), "b.json")
	if err := os.WriteFile(bad, []byte(`{"Name": "b`), 0o600); err != nil {
		t.Fatal(err)
	}
	load := func() ([]string, error) {
		var got []string
		err := Each(d, func(r *rec) error { got = append(got, r.Name); return nil })
		return got, err
	}
	if _, err := load(); err == nil || !strings.Contains(err.Error(), "b.json") {
		t.Fatalf("without quarantine: err = %v, want one naming b.json", err)
	}
	var reported []string
	q := filepath.Join(root, "quarantine")
	d.SetQuarantine(&Quarantine{Dir: q, Report: func(file, to string, err error) { reported = append(reported, file) }})
	got, err := load()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "a,c" {
		t.Errorf("loaded %v, want a,c", got)
	}
	if len(reported) != 1 || reported[0] != bad {
		t.Errorf("reported %v, want [%s]", reported, bad)
	}
	if _, err := os.Stat(bad); !os.IsNotExist(err) {
		t.Errorf("bad entry still in the store: %v", err)
	}
	moved, _ := filepath.Glob(filepath.Join(q, "networks-b.json.*"))
	if len(moved) != 1 {
		t.Errorf("quarantine holds %v, want one networks-b.json.*", moved)
	}
}
