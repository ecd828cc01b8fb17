package ipam

import (
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/v6bridge/v6bridge/internal/hostos"
)

// memBackend is an in-memory backend for tests and benchmarks. fail, if set,
// is asked before every write and makes it fail with the returned error.
type memBackend struct {
	pools   map[string]poolRecord
	addrs   map[string]map[netip.Addr]addrRecord
	cursors map[string]netip.Addr
	names   map[string]map[string]nameRecord
	ula     netip.Prefix
	writes  int // successful writes and deletes
	fail    func(op string) error
}

var _ backend = (*memBackend)(nil)

func newMem() *memBackend {
	return &memBackend{
		pools:   map[string]poolRecord{},
		addrs:   map[string]map[netip.Addr]addrRecord{},
		cursors: map[string]netip.Addr{},
		names:   map[string]map[string]nameRecord{},
	}
}

func (b *memBackend) putName(id string, r nameRecord) error {
	if err := b.check("putName"); err != nil {
		return err
	}
	if b.names[id] == nil {
		b.names[id] = map[string]nameRecord{}
	}
	b.names[id][r.Name] = r
	return nil
}

func (b *memBackend) deleteName(id, name string) error {
	if err := b.check("deleteName"); err != nil {
		return err
	}
	delete(b.names[id], name)
	return nil
}

func (b *memBackend) loadULA() (netip.Prefix, error) { return b.ula, nil }

func (b *memBackend) putULA(p netip.Prefix) error {
	if err := b.check("putULA"); err != nil {
		return err
	}
	b.ula = p
	return nil
}

func (b *memBackend) check(op string) error {
	if b.fail != nil {
		if err := b.fail(op); err != nil {
			return err
		}
	}
	b.writes++
	return nil
}

func (b *memBackend) putPool(r poolRecord) error {
	if err := b.check("putPool"); err != nil {
		return err
	}
	b.pools[r.ID] = r
	return nil
}

func (b *memBackend) deletePool(id string) error {
	if err := b.check("deletePool"); err != nil {
		return err
	}
	delete(b.pools, id)
	return nil
}

func (b *memBackend) purgePool(id string) error {
	if err := b.check("purgePool"); err != nil {
		return err
	}
	delete(b.addrs, id)
	delete(b.cursors, id)
	delete(b.names, id)
	return nil
}

func (b *memBackend) putAddr(id string, r addrRecord) error {
	if err := b.check("putAddr"); err != nil {
		return err
	}
	if b.addrs[id] == nil {
		b.addrs[id] = map[netip.Addr]addrRecord{}
	}
	b.addrs[id][r.Addr] = r
	return nil
}

func (b *memBackend) deleteAddr(id string, a netip.Addr) error {
	if err := b.check("deleteAddr"); err != nil {
		return err
	}
	delete(b.addrs[id], a)
	return nil
}

func (b *memBackend) putCursor(key string, a netip.Addr) error {
	if err := b.check("putCursor"); err != nil {
		return err
	}
	b.cursors[key] = a
	return nil
}

func (b *memBackend) load() (snapshot, error) {
	s := snapshot{addrs: map[string][]addrRecord{}, cursors: maps.Clone(b.cursors), names: map[string][]nameRecord{}}
	for id, ns := range b.names {
		for _, r := range ns {
			s.names[id] = append(s.names[id], r)
		}
	}
	for _, r := range b.pools {
		s.pools = append(s.pools, r)
	}
	for id, as := range b.addrs {
		for _, r := range as {
			s.addrs[id] = append(s.addrs[id], r)
		}
	}
	return s, nil
}

// addrCount is the number of persisted addresses over all pools.
func (b *memBackend) addrCount() int {
	n := 0
	for _, as := range b.addrs {
		n += len(as)
	}
	return n
}

// newTestIPAM returns an IPAM over a fresh memory backend.
func newTestIPAM(t testing.TB, host ...netip.Addr) (*IPAM, *memBackend) {
	t.Helper()
	be := newMem()
	cfg := Config{}
	if host != nil {
		cfg.Host = &hostos.TestState{Host: host}
	}
	m, err := newIPAM(cfg, be)
	if err != nil {
		t.Fatal(err)
	}
	return m, be
}

// mustPool requests an IPv6 pool or fails the test.
func mustPool(t testing.TB, m *IPAM, subnet, ipRange string) Pool {
	t.Helper()
	p, err := m.RequestPool(PoolRequest{Pool: subnet, SubPool: ipRange, V6: true})
	if err != nil {
		t.Fatalf("RequestPool(%s, %s): %v", subnet, ipRange, err)
	}
	return p
}

// mustAddr requests an address or fails the test; it returns the bare
// address.
func mustAddr(t testing.TB, m *IPAM, poolID, addr string) string {
	t.Helper()
	p, err := m.RequestAddress(poolID, addr, AddressOptions{})
	if err != nil {
		t.Fatalf("RequestAddress(%s, %q): %v", poolID, addr, err)
	}
	return p.Addr().String()
}

// errFail is the error failing backends return.
var errFail = fmt.Errorf("disk full")

// mustOpen starts an IPAM on the state directory dir (empty: a first
// start; else a restart) or fails the test.
func mustOpen(t testing.TB, dir string) *IPAM {
	t.Helper()
	m, err := New(Config{StateDir: dir})
	if err != nil {
		t.Fatalf("New(StateDir %s): %v", dir, err)
	}
	return m
}

// writeState writes content as the state file name (a path under dir,
// e.g. "pools/x.json"), making its directory: state as a crash, an older
// version or a hand left it.
func writeState(t testing.TB, dir, name, content string) {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
