package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"
)

// Docker 29: a container's sysctl removes its IPv6 address, and the engine
// releases the address here while the container stays attached (the
// driver's endpoint, its firewall and NDP state keep it). The next
// containers get other addresses, by round-robin, by name and by asking for
// it; once the endpoint is gone the address is handed out again.
func TestAddressHeldByAnEndpointIsNotHandedOut(t *testing.T) {
	held := map[netip.Addr]bool{}
	be := newMem()
	m, err := newIPAM(Config{Held: func(a netip.Addr) bool { return held[a] }}, be)
	if err != nil {
		t.Fatal(err)
	}
	p := mustPool(t, m, "fd00:7::/120", "") // ::1 gateway, ::2 to ::ff for containers
	if _, err := m.RequestAddress(p.ID, "", AddressOptions{Gateway: true}); err != nil {
		t.Fatal(err)
	}
	var addrs []string
	for i := range 254 {
		a, err := m.RequestAddress(p.ID, "", AddressOptions{Name: fmt.Sprint("c", i)})
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, a.Addr().String())
	}
	sysctled := addrs[2]                       // the address of container c2
	held[netip.MustParseAddr(sysctled)] = true // the driver's endpoint still has it
	if err := m.ReleaseAddress(p.ID, sysctled); err != nil {
		t.Fatal(err)
	}
	// The only free address is the held one: the pool is full for others,
	// for c2 again (its name remembers the address) and for one asking
	// for it.
	for _, name := range []string{"", "c2"} {
		if a, err := m.RequestAddress(p.ID, "", AddressOptions{Name: name}); !errors.Is(err, ErrPoolExhausted) {
			t.Errorf("next address for %q = %v, %v; want ErrPoolExhausted while %s is held", name, a, err, sysctled)
		}
	}
	if a, err := m.RequestAddress(p.ID, sysctled, AddressOptions{}); !errors.Is(err, ErrAddressInUse) {
		t.Errorf("asking for %s = %v, %v; want ErrAddressInUse while it is held", sysctled, a, err)
	}
	if err := m.ReleaseAddress(p.ID, addrs[5]); err != nil {
		t.Fatal(err)
	}
	if a, err := m.RequestAddress(p.ID, "", AddressOptions{Name: "c2"}); err != nil || a.Addr().String() != addrs[5] {
		t.Errorf("next address = %v, %v; want %s (the free one not held)", a, err, addrs[5])
	}
	// The endpoint is deleted: the address is free again, also after a
	// restart of the plugin.
	delete(held, netip.MustParseAddr(sysctled))
	m2, err := newIPAM(Config{Held: func(a netip.Addr) bool { return held[a] }}, be)
	if err != nil {
		t.Fatal(err)
	}
	if a, err := m2.RequestAddress(p.ID, "", AddressOptions{}); err != nil || a.Addr().String() != sysctled {
		t.Errorf("after the endpoint left: %v, %v; want %s", a, err, sysctled)
	}
}

// An address held at a restart (its endpoint's record was loaded by the
// driver) is skipped too, and the scan goes on to the next free one.
func TestHeldAddressSkippedInTheScan(t *testing.T) {
	be := newMem()
	held := netip.MustParseAddr("fd00:8::2")
	m, err := newIPAM(Config{Held: func(a netip.Addr) bool { return a == held }}, be)
	if err != nil {
		t.Fatal(err)
	}
	p := mustPool(t, m, "fd00:8::/112", "")
	if _, err := m.RequestAddress(p.ID, "", AddressOptions{Gateway: true}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"fd00:8::3", "fd00:8::4"} {
		if a, err := m.RequestAddress(p.ID, "", AddressOptions{}); err != nil || a.Addr().String() != want {
			t.Errorf("got %v, %v; want %s (fd00:8::2 is held)", a, err, want)
		}
	}
}
