package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var gwOpts = AddressOptions{Gateway: true}

func TestGateway(t *testing.T) {
	tests := []struct {
		name, subnet, ipRange, addr string
		want                        string // CIDR, or "" when refused
		err                         error
	}{
		{"default first address", "fd12:3456:789a:1::/112", "", "", "fd12:3456:789a:1::1/112", nil},
		{"default with ip-range", "fd12:5::/64", "fd12:5::1:0/112", "", "fd12:5::1/64", nil},
		{"explicit", "fd12::/112", "", "fd12::fffe", "fd12::fffe/112", nil},
		{"explicit outside ip-range", "fd12::/112", "fd12::100/120", "fd12::1", "fd12::1/112", nil},
		{"outside subnet", "fd12::/112", "", "fd13::1", "", ErrOutOfRange},
		{"ipv4 gateway for v6 pool", "fd12::/112", "", "10.0.0.1", "", ErrOutOfRange},
		{"anycast", "fd12::/112", "", "fd12::", "", ErrReservedAddress},
		{"not an address", "fd12::/112", "", "fd12::g", "", ErrInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, _ := newTestIPAM(t)
			p := mustPool(t, m, tt.subnet, tt.ipRange)
			got, err := m.RequestAddress(p.ID, tt.addr, gwOpts)
			if !errors.Is(err, tt.err) {
				t.Fatalf("gateway request = %v, want %v", err, tt.err)
			}
			if err != nil {
				if tt.addr != "" && !strings.Contains(err.Error(), tt.addr) {
					t.Errorf("error %q does not name %s", err, tt.addr)
				}
				if st := m.Pools()[0]; st.Gateway.IsValid() || st.Allocated != 0 {
					t.Errorf("refused gateway recorded: %+v", st)
				}
				return
			}
			if got.String() != tt.want {
				t.Errorf("gateway = %s, want %s", got, tt.want)
			}
			st := m.Pools()[0]
			if st.Gateway != got.Addr() || st.Allocated != 1 {
				t.Errorf("status %+v, want gateway %s and 1 allocated", st, got.Addr())
			}
			// Repeating the request is harmless; a second, different
			// gateway is not.
			again, err := m.RequestAddress(p.ID, got.Addr().String(), gwOpts)
			if err != nil || again != got {
				t.Errorf("repeated gateway request = %s, %v", again, err)
			}
			other := lastAddr(p.Prefix)
			if other == got.Addr() {
				other = other.Prev()
			}
			if _, err := m.RequestAddress(p.ID, other.String(), gwOpts); !errors.Is(err, ErrAddressInUse) {
				t.Errorf("second gateway = %v, want %v", err, ErrAddressInUse)
			}
			// The gateway is not handed out to an endpoint.
			if _, err := m.RequestAddress(p.ID, got.Addr().String(), AddressOptions{}); !errors.Is(err, ErrAddressInUse) ||
				!strings.Contains(err.Error(), "gateway") {
				t.Errorf("gateway as endpoint address = %v, want %v naming the gateway", err, ErrAddressInUse)
			}
			if err := m.ReleaseAddress(p.ID, got.Addr().String()); err != nil {
				t.Fatal(err)
			}
			if st := m.Pools()[0]; st.Gateway.IsValid() || st.Allocated != 0 {
				t.Errorf("gateway kept after release: %+v", st)
			}
		})
	}
}

func TestStaticAddress(t *testing.T) {
	tests := []struct {
		name, addr string
		want       string
		err        error
	}{
		{"honoured", "fd12::1:5", "fd12::1:5/64", nil},
		{"honoured at the cursor's next", "fd12::1:1", "fd12::1:1/64", nil},
		{"honoured with cidr suffix", "fd12::1:6/64", "fd12::1:6/64", nil},
		{"outside ip-range, inside subnet", "fd12::ffff:ffff", "fd12::ffff:ffff/64", nil},
		{"in use", "fd12::1:0", "", ErrAddressInUse},
		{"gateway", "fd12::1", "", ErrAddressInUse},
		{"outside subnet", "fd13::5", "", ErrOutOfRange},
		{"ipv4", "10.1.2.3", "", ErrOutOfRange},
		{"anycast", "fd12::", "", ErrReservedAddress},
		{"with zone", "fd12::9%eth0", "", ErrInvalidRequest},
		{"garbage", "container-1", "", ErrInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, be := newTestIPAM(t)
			p := mustPool(t, m, "fd12::/64", "fd12::1:0/112")
			if _, err := m.RequestAddress(p.ID, "", gwOpts); err != nil {
				t.Fatal(err)
			}
			if got := mustAddr(t, m, p.ID, ""); got != "fd12::1:0" {
				t.Fatalf("first dynamic address %s, want fd12::1:0", got)
			}
			n := be.addrCount()
			got, err := m.RequestAddress(p.ID, tt.addr, AddressOptions{})
			if !errors.Is(err, tt.err) {
				t.Fatalf("RequestAddress(%q) = %v, want %v", tt.addr, err, tt.err)
			}
			if err != nil {
				bare := strings.SplitN(tt.addr, "%", 2)[0]
				if !strings.Contains(err.Error(), bare) {
					t.Errorf("error %q does not name %s", err, bare)
				}
				if be.addrCount() != n {
					t.Errorf("refused address persisted")
				}
				return
			}
			if got.String() != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
			if be.addrCount() != n+1 {
				t.Errorf("address not persisted")
			}
			// A static address does not move the round-robin cursor, and the
			// scan skips it.
			want := "fd12::1:1"
			if got.Addr().String() == want {
				want = "fd12::1:2"
			}
			if next := mustAddr(t, m, p.ID, ""); next != want {
				t.Errorf("next dynamic address %s, want %s", next, want)
			}
		})
	}
}

func TestRoundRobin(t *testing.T) {
	m, _ := newTestIPAM(t)
	p := mustPool(t, m, "fd12::/120", "")
	if _, err := m.RequestAddress(p.ID, "", gwOpts); err != nil {
		t.Fatal(err)
	}
	var got []string
	for range 3 {
		got = append(got, mustAddr(t, m, p.ID, ""))
	}
	if diff := cmp.Diff([]string{"fd12::2", "fd12::3", "fd12::4"}, got); diff != "" {
		t.Fatalf("order (-want +got):\n%s", diff)
	}
	// Released addresses come back last: after every other free address,
	// in address order after the wrap.
	for _, a := range []string{"fd12::3", "fd12::2"} {
		if err := m.ReleaseAddress(p.ID, a); err != nil {
			t.Fatal(err)
		}
	}
	mustAddr(t, m, p.ID, "fd12::10") // static, in the way of the scan
	got = nil
	for range 255 - 1 - 2 { // usable minus the gateway and the two still in use
		got = append(got, mustAddr(t, m, p.ID, ""))
	}
	var want []string
	for i := 5; i <= 0xff; i++ {
		if i != 0x10 {
			want = append(want, fmt.Sprintf("fd12::%x", i))
		}
	}
	want = append(want, "fd12::2", "fd12::3")
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("order after release (-want +got):\n%s", diff)
	}
}

func TestExhaustion(t *testing.T) {
	m, _ := newTestIPAM(t)
	p := mustPool(t, m, "fd12:3456:789a:1::100/120", "")
	seen := map[string]bool{}
	for range 255 { // 256 addresses minus the anycast
		a := mustAddr(t, m, p.ID, "")
		if seen[a] || a == "fd12:3456:789a:1::100" {
			t.Fatalf("handed out %s twice or the anycast", a)
		}
		seen[a] = true
	}
	_, err := m.RequestAddress(p.ID, "", AddressOptions{})
	if !errors.Is(err, ErrPoolExhausted) {
		t.Fatalf("RequestAddress on a full /120 = %v, want %v", err, ErrPoolExhausted)
	}
	for _, w := range []string{"fd12:3456:789a:1::100/120", "255", "256"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
	if st := m.Pools()[0]; st.Allocated != 255 || st.Capacity != 255 {
		t.Errorf("status %+v", st)
	}
	if err := m.ReleaseAddress(p.ID, "fd12:3456:789a:1::180"); err != nil {
		t.Fatal(err)
	}
	if got := mustAddr(t, m, p.ID, ""); got != "fd12:3456:789a:1::180" {
		t.Errorf("after release got %s, want the released address", got)
	}
}

func TestExhaustionIPRange(t *testing.T) {
	m, _ := newTestIPAM(t)
	p := mustPool(t, m, "fd12::/112", "fd12::ff00/120")
	for range 256 { // the anycast is outside the range
		mustAddr(t, m, p.ID, "")
	}
	_, err := m.RequestAddress(p.ID, "", AddressOptions{})
	if !errors.Is(err, ErrPoolExhausted) || !strings.Contains(err.Error(), "ip-range fd12::ff00/120") {
		t.Fatalf("got %v, want %v naming the ip-range", err, ErrPoolExhausted)
	}
	// Static addresses outside the range still work.
	mustAddr(t, m, p.ID, "fd12::5")
}

func TestReleaseAddressIdempotent(t *testing.T) {
	m, be := newTestIPAM(t)
	p := mustPool(t, m, "fd12::/112", "")
	a := mustAddr(t, m, p.ID, "")
	for _, tt := range []struct{ pool, addr string }{
		{p.ID, a}, {p.ID, a}, {p.ID, "fd12::77"}, {"unknown", a}, {"unknown", "junk"}, {p.ID, "fd99::1"},
	} {
		if err := m.ReleaseAddress(tt.pool, tt.addr); err != nil {
			t.Errorf("ReleaseAddress(%q, %q) = %v, want nil", tt.pool, tt.addr, err)
		}
	}
	if be.addrCount() != 0 {
		t.Errorf("address still persisted")
	}
	if err := m.ReleaseAddress(p.ID, "junk"); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("ReleaseAddress(junk) = %v, want %v", err, ErrInvalidRequest)
	}
}

func TestUnknownPool(t *testing.T) {
	m, _ := newTestIPAM(t)
	_, err := m.RequestAddress("v6bridge/fd12::/112", "", AddressOptions{})
	if !errors.Is(err, ErrUnknownPool) || !strings.Contains(err.Error(), "v6bridge/fd12::/112") {
		t.Fatalf("got %v, want %v naming the pool", err, ErrUnknownPool)
	}
}

func TestAddressFailureLeavesNothing(t *testing.T) {
	for _, op := range []string{"putAddr", "putCursor"} {
		t.Run(op, func(t *testing.T) {
			m, be := newTestIPAM(t)
			p := mustPool(t, m, "fd12::/112", "")
			mustAddr(t, m, p.ID, "")
			be.fail = func(o string) error {
				if o == op {
					return errFail
				}
				return nil
			}
			if _, err := m.RequestAddress(p.ID, "", AddressOptions{}); !errors.Is(err, errFail) {
				t.Fatalf("got %v, want %v", err, errFail)
			}
			if be.addrCount() != 1 || be.cursors[p.ID].String() != "fd12::1" {
				t.Errorf("failed allocation persisted: %v %v", be.addrs, be.cursors)
			}
			if st := m.Pools()[0]; st.Allocated != 1 {
				t.Errorf("failed allocation kept in memory: %+v", st)
			}
			be.fail = nil
			if got := mustAddr(t, m, p.ID, ""); got != "fd12::2" {
				t.Errorf("after failure got %s, want fd12::2", got)
			}
		})
	}
	t.Run("release", func(t *testing.T) {
		m, be := newTestIPAM(t)
		p := mustPool(t, m, "fd12::/112", "")
		a := mustAddr(t, m, p.ID, "")
		be.fail = func(string) error { return errFail }
		if err := m.ReleaseAddress(p.ID, a); !errors.Is(err, errFail) {
			t.Fatalf("got %v, want %v", err, errFail)
		}
		be.fail = nil
		if _, err := m.RequestAddress(p.ID, a, AddressOptions{}); !errors.Is(err, ErrAddressInUse) {
			t.Errorf("address freed in memory although not on disk: %v", err)
		}
	})
}

// TestAllocationCost checks that an allocation writes the same number of
// entries whether the pool holds 10 or 10,000 addresses.
func TestAllocationCost(t *testing.T) {
	m, be := newTestIPAM(t)
	p := mustPool(t, m, "fd12::/64", "")
	cost := func() int {
		w := be.writes
		mustAddr(t, m, p.ID, "")
		return be.writes - w
	}
	for range 10 {
		mustAddr(t, m, p.ID, "")
	}
	small := cost()
	for range 10000 {
		mustAddr(t, m, p.ID, "")
	}
	if big := cost(); big != small || small != 2 {
		t.Errorf("writes per allocation: %d at 10 addresses, %d at 10,000; want 2 (address and cursor)", small, big)
	}
}

func TestConcurrent(t *testing.T) {
	m, _ := newTestIPAM(t)
	p := mustPool(t, m, "fd12::/112", "")
	ph, err := m.RequestPool(PoolRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		seen = map[netip.Addr]bool{}
	)
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				id := p.ID
				if (g+i)%2 == 0 {
					id = ph.ID
				}
				a, err := m.RequestAddress(id, "", AddressOptions{})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if seen[a.Addr()] {
					t.Errorf("%s handed out twice", a)
				}
				seen[a.Addr()] = true
				mu.Unlock()
				if i%3 == 0 {
					if err := m.ReleaseAddress(id, a.Addr().String()); err != nil {
						t.Error(err)
					}
				}
				_ = m.Pools()
			}
		})
	}
	wg.Wait()
}
