package ipam

import (
	"testing"
)

// An engine restart releases an endpoint's address and requests one again
// without naming it; engines >= 29 send the endpoint's name, and the
// endpoint gets its old address back. Without the name, or when the old
// address was taken meanwhile, round-robin applies.
func TestAddressStaysWithEndpointName(t *testing.T) {
	m, be := newTestIPAM(t)
	p := mustPool(t, m, "fd00:5::/112", "")
	named := func(name string) AddressOptions { return AddressOptions{Name: name} }
	get := func(name string) string {
		t.Helper()
		a, err := m.RequestAddress(p.ID, "", named(name))
		if err != nil {
			t.Fatal(err)
		}
		return a.Addr().String()
	}
	a := get("keeper")
	b := get("other")
	if err := m.ReleaseAddress(p.ID, a); err != nil {
		t.Fatal(err)
	}
	if got := get("keeper"); got != a {
		t.Errorf("keeper got %s back, want %s", got, a)
	}
	// Survives a restart of the plugin.
	m2, err := newIPAM(Config{}, be)
	if err != nil {
		t.Fatal(err)
	}
	if err := m2.ReleaseAddress(p.ID, b); err != nil {
		t.Fatal(err)
	}
	got, err := m2.RequestAddress(p.ID, "", named("other"))
	if err != nil || got.Addr().String() != b {
		t.Errorf("after restart other got %v (%v), want %s", got, err, b)
	}
	// Taken meanwhile: the next free one instead.
	if err := m2.ReleaseAddress(p.ID, a); err != nil {
		t.Fatal(err)
	}
	if _, err := m2.RequestAddress(p.ID, a, AddressOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, err := m2.RequestAddress(p.ID, "", named("keeper")); err != nil || got.Addr().String() == a {
		t.Errorf("keeper got %v (%v) although %s is taken", got, err, a)
	}
	// Released pool: the names go too.
	if err := m2.ReleasePool(p.ID); err != nil {
		t.Fatal(err)
	}
	if len(be.names[p.ID]) != 0 {
		t.Errorf("names left after ReleasePool: %v", be.names[p.ID])
	}
}

func TestAddressStaysWithEndpointNameOnDisk(t *testing.T) {
	dir := t.TempDir()
	m := mustOpen(t, dir)
	p := mustPool(t, m, "fd00:6::/112", "")
	opts := AddressOptions{Name: "web"}
	a, err := m.RequestAddress(p.ID, "", opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.ReleaseAddress(p.ID, a.Addr().String()); err != nil {
		t.Fatal(err)
	}
	m = mustOpen(t, dir)
	if got, err := m.RequestAddress(p.ID, "", opts); err != nil || got != a {
		t.Errorf("after restart got %v (%v), want %v", got, err, a)
	}
	if err := m.ReleasePool(p.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{StateDir: dir}); err != nil {
		t.Fatal(err)
	}
}
