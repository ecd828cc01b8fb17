package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPlaceholderBlocks(t *testing.T) {
	if n := len(placeholderBlocks); n != 61 {
		t.Errorf("%d placeholder blocks, want 61", n)
	}
	for i, b := range placeholderBlocks {
		if b.Bits() != PlaceholderBits || b != b.Masked() || !PlaceholderPrefix.Contains(b.Addr()) {
			t.Errorf("block %s is not a masked /%d of %s", b, PlaceholderBits, PlaceholderPrefix)
		}
		if i > 0 && placeholderBlocks[i-1].Addr().Compare(b.Addr()) >= 0 {
			t.Errorf("blocks not ascending at %s", b)
		}
		for _, o := range placeholderBlocks[:i] {
			if o.Overlaps(b) {
				t.Errorf("blocks %s and %s overlap", o, b)
			}
		}
	}
	tests := []struct {
		block netip.Prefix
		want  bool
	}{
		{netip.MustParsePrefix("169.254.0.0/22"), false},   // holds 169.254.0.0/24 (RFC 3927)
		{netip.MustParsePrefix("169.254.4.0/22"), true},    // the first
		{netip.MustParsePrefix("169.254.164.0/22"), true},  // just below the metadata block
		{netip.MustParsePrefix("169.254.168.0/22"), false}, // holds 169.254.169.254
		{netip.MustParsePrefix("169.254.172.0/22"), true},  // just above it
		{netip.MustParsePrefix("169.254.248.0/22"), true},  // the last
		{netip.MustParsePrefix("169.254.252.0/22"), false}, // holds 169.254.255.0/24 (RFC 3927)
	}
	for _, tt := range tests {
		got := false
		for _, b := range placeholderBlocks {
			got = got || b == tt.block
		}
		if got != tt.want {
			t.Errorf("block %s offered = %v, want %v", tt.block, got, tt.want)
		}
	}
}

// TestPlaceholder checks that each placeholder pool is its own block, with
// its own gateway and allocator, so that a container on several v6bridge
// networks gets non-overlapping IPv4 routes.
func TestPlaceholder(t *testing.T) {
	m, be := newTestIPAM(t)
	v6 := mustPool(t, m, "fd12::/112", "")
	var pools []Pool
	for range 3 {
		p, err := m.RequestPool(PoolRequest{Options: map[string]string{"v6bridge.prefix_len": "64"}})
		if err != nil {
			t.Fatal(err)
		}
		pools = append(pools, p)
	}
	type view struct{ Prefix, Range, Gateway string }
	var got []view
	for _, p := range pools {
		got = append(got, view{p.Prefix.String(), p.Range.String(), p.Gateway.String()})
	}
	want := []view{
		{"169.254.4.0/22", "169.254.4.0/22", "169.254.4.1/22"},
		{"169.254.8.0/22", "169.254.8.0/22", "169.254.8.1/22"},
		{"169.254.12.0/22", "169.254.12.0/22", "169.254.12.1/22"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("placeholder pools (-want +got):\n%s", diff)
	}
	if pools[0].ID == pools[1].ID || pools[1].ID == pools[2].ID || pools[0].ID == pools[2].ID {
		t.Fatalf("placeholder IDs not unique: %v", pools)
	}
	for i, p := range pools {
		gw := want[i].Gateway
		for _, addr := range []string{"", strings.TrimSuffix(gw, "/22")} {
			got, err := m.RequestAddress(p.ID, addr, gwOpts)
			if err != nil || got.String() != gw {
				t.Errorf("gateway %q of %s = %s, %v; want %s", addr, p.Prefix, got, err, gw)
			}
		}
		for _, addr := range []string{"169.254.0.1", fmt.Sprintf("169.254.%d.9", 4*i+5)} {
			if _, err := m.RequestAddress(p.ID, addr, gwOpts); !errors.Is(err, ErrOutOfRange) {
				t.Errorf("gateway %s of %s = %v, want %v", addr, p.Prefix, err, ErrOutOfRange)
			}
		}
	}
	// Addresses come from each pool's own block, round-robin from .2.
	seen := map[netip.Addr]string{}
	for i := range 300 {
		p := pools[i%3]
		a, err := m.RequestAddress(p.ID, "", AddressOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if a.Bits() != PlaceholderBits || !p.Prefix.Contains(a.Addr()) {
			t.Fatalf("address %s of pool %s", a, p.Prefix)
		}
		if a.Addr() == p.Prefix.Addr() || a.Addr() == p.Prefix.Addr().Next() || a.Addr() == lastAddr(p.Prefix) {
			t.Fatalf("reserved address %s handed out", a)
		}
		if o, dup := seen[a.Addr()]; dup {
			t.Fatalf("%s handed out to %s and %s", a, o, p.ID)
		}
		seen[a.Addr()] = p.ID
		if i < 3 && a.Addr() != p.Prefix.Addr().Next().Next() {
			t.Errorf("first address of %s = %s, want .2", p.Prefix, a)
		}
	}
	// Static placeholder addresses.
	for _, tt := range []struct {
		addr string
		err  error
	}{
		{"169.254.4.2", ErrAddressInUse},
		{"169.254.4.0", ErrReservedAddress},
		{"169.254.4.1", ErrReservedAddress},
		{"169.254.7.255", ErrReservedAddress},
		{"169.254.8.200", ErrOutOfRange}, // another network's block
		{"169.254.0.5", ErrOutOfRange},
		{"10.0.0.5", ErrOutOfRange},
		{"fd12::5", ErrOutOfRange},
		{"169.254.6.1", nil},
		{"169.254.7.254", nil},
	} {
		_, err := m.RequestAddress(pools[0].ID, tt.addr, AddressOptions{})
		if !errors.Is(err, tt.err) {
			t.Errorf("RequestAddress(%s) in %s = %v, want %v", tt.addr, pools[0].Prefix, err, tt.err)
		}
	}
	// The gateway is reported, not allocated; releasing it does nothing.
	if err := m.ReleaseAddress(pools[0].ID, "169.254.4.1"); err != nil {
		t.Fatal(err)
	}
	st := m.Pools()
	wantSt := PoolStatus{ID: pools[0].ID, Prefix: pools[0].Prefix, Range: pools[0].Range, Placeholder: true,
		Gateway: netip.MustParseAddr("169.254.4.1"), Allocated: 102, Capacity: 1021}
	if len(st) != 4 || st[0].ID != v6.ID || !st[1].Placeholder || !st[2].Placeholder || !st[3].Placeholder {
		t.Fatalf("Pools() = %+v", st)
	}
	for _, s := range st {
		if s.ID == pools[0].ID {
			if diff := cmp.Diff(wantSt, s, cmpAddrs); diff != "" {
				t.Errorf("placeholder status (-want +got):\n%s", diff)
			}
		}
	}
	// Releasing a pool frees its block for the next placeholder pool, which
	// starts afresh.
	if err := m.ReleasePool(pools[0].ID); err != nil {
		t.Fatal(err)
	}
	if n := be.addrCount(); n != 200 {
		t.Errorf("%d placeholder addresses persisted after release, want 200", n)
	}
	again, err := m.RequestPool(PoolRequest{})
	if err != nil || again.Prefix != pools[0].Prefix || again.ID == pools[0].ID {
		t.Fatalf("pool after release = %+v, %v; want a new pool of %s", again, err, pools[0].Prefix)
	}
	if got := mustAddr(t, m, again.ID, ""); got != "169.254.4.2" {
		t.Errorf("first address of the reused block = %s, want 169.254.4.2", got)
	}
	if got := mustAddr(t, m, again.ID, "169.254.6.1"); got != "169.254.6.1" {
		t.Errorf("static address of the reused block = %s", got)
	}
	// The v6 pool is untouched by all this.
	if got := mustAddr(t, m, v6.ID, ""); got != "fd12::1" {
		t.Errorf("v6 pool address %s", got)
	}
}

func TestPlaceholderExhaustion(t *testing.T) {
	m, _ := newTestIPAM(t)
	var pools []Pool
	for range len(placeholderBlocks) {
		p, err := m.RequestPool(PoolRequest{})
		if err != nil {
			t.Fatalf("pool %d: %v", len(pools), err)
		}
		for _, o := range pools {
			if o.Prefix.Overlaps(p.Prefix) {
				t.Fatalf("pools %s and %s overlap", o.Prefix, p.Prefix)
			}
		}
		pools = append(pools, p)
	}
	_, err := m.RequestPool(PoolRequest{})
	if !errors.Is(err, ErrPoolExhausted) || !strings.Contains(err.Error(), "61 v6bridge networks") ||
		!strings.Contains(err.Error(), "--ipv4=false") {
		t.Fatalf("pool after the last block: %v, want %v naming the capacity and --ipv4=false", err, ErrPoolExhausted)
	}
	// A released block is the one handed out next.
	if err := m.ReleasePool(pools[20].ID); err != nil {
		t.Fatal(err)
	}
	p, err := m.RequestPool(PoolRequest{})
	if err != nil || p.Prefix != pools[20].Prefix {
		t.Fatalf("pool after release = %+v, %v; want %s", p, err, pools[20].Prefix)
	}
	// A block holds 1021 containers.
	for i := range 1021 {
		if _, err := m.RequestAddress(p.ID, "", AddressOptions{}); err != nil {
			t.Fatalf("allocation %d: %v", i, err)
		}
	}
	_, err = m.RequestAddress(p.ID, "", AddressOptions{})
	if !errors.Is(err, ErrPoolExhausted) || !strings.Contains(err.Error(), "1021") {
		t.Fatalf("address after the last = %v, want %v naming 1021", err, ErrPoolExhausted)
	}
	if got := mustAddr(t, m, pools[0].ID, ""); got != "169.254.4.2" {
		t.Errorf("other block after exhaustion: got %s", got)
	}
}

// TestRestorePlaceholder checks the placeholder records accepted at start.
func TestRestorePlaceholder(t *testing.T) {
	pool := func(id, prefix string) string {
		return fmt.Sprintf(`{"id":%q,"prefix":%q,"range":%q,"placeholder":true}`, id, prefix, prefix)
	}
	tests := []struct {
		name  string
		files map[string]string
		err   string // substring of the error; "" when accepted
	}{
		{"two blocks", map[string]string{
			"pools/v4placeholder_a.json": pool("v4placeholder/a", "169.254.4.0/22"),
			"pools/v4placeholder_b.json": pool("v4placeholder/b", "169.254.248.0/22"),
		}, ""},
		{"layout before per-network blocks", map[string]string{
			"pools/v4placeholder_a.json":               pool("v4placeholder/a", "169.254.0.0/16"),
			"addrs/v4placeholder_a/169.254.0.2.json":   `{"addr":"169.254.0.2"}`,
			"cursors/placeholder.json":                 `{"key":"placeholder","cursor":"169.254.0.2"}`,
			"addrs/v4placeholder_a/169.254.200.1.json": `{"addr":"169.254.200.1"}`,
			"pools/v6bridge_fd12--_112.json":           `{"id":"v6bridge/fd12::/112","prefix":"fd12::/112","range":"fd12::/112"}`,
			"addrs/v6bridge_fd12--_112/fd12--1.json":   `{"addr":"fd12::1"}`,
			"cursors/v6bridge_fd12--_112.json":         `{"key":"v6bridge/fd12::/112","cursor":"fd12::1"}`,
		}, "delete pools/v4placeholder_a.json and addrs/v4placeholder_a/"},
		{"same block twice", map[string]string{
			"pools/v4placeholder_a.json": pool("v4placeholder/a", "169.254.8.0/22"),
			"pools/v4placeholder_b.json": pool("v4placeholder/b", "169.254.8.0/22"),
		}, "placeholder block 169.254.8.0/22 belongs to both"},
		{"metadata block", map[string]string{
			"pools/v4placeholder_a.json": pool("v4placeholder/a", "169.254.168.0/22"),
		}, "not a /22 placeholder block"},
		{"wrong size", map[string]string{
			"pools/v4placeholder_a.json": pool("v4placeholder/a", "169.254.4.0/24"),
		}, "not a /22 placeholder block"},
		{"outside the space", map[string]string{
			"pools/v4placeholder_a.json": pool("v4placeholder/a", "10.0.4.0/22"),
		}, "not a /22 placeholder block"},
		{"gateway allocated", map[string]string{
			"pools/v4placeholder_a.json":             pool("v4placeholder/a", "169.254.4.0/22"),
			"addrs/v4placeholder_a/169.254.4.1.json": `{"addr":"169.254.4.1"}`,
		}, "address 169.254.4.1 is reserved"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range tt.files {
				writeState(t, dir, name, content)
			}
			m, err := New(Config{StateDir: dir})
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("New = %v, want an error saying %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			// The restored blocks are taken; the next pool gets the
			// lowest free one.
			p, err := m.RequestPool(PoolRequest{})
			if err != nil || p.Prefix.String() != "169.254.8.0/22" {
				t.Errorf("next pool = %+v, %v; want 169.254.8.0/22", p, err)
			}
		})
	}
}
