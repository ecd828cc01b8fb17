package ipam

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/v6bridge/v6bridge/internal/store"
	"github.com/v6bridge/v6bridge/netspec"
)

// poolRecord is a pool as persisted: everything but its addresses and
// cursor, which are entries of their own.
type poolRecord struct {
	ID          string       `json:"id"`
	Prefix      netip.Prefix `json:"prefix"`
	Range       netip.Prefix `json:"range"`
	Placeholder bool         `json:"placeholder,omitempty"`
	// The "data" of records before 2026-12 held a placeholder's gateway,
	// which is derived from its block: it is no longer read or written.
	PrefixLen int `json:"prefix_len,omitempty"`
	// Mode is the v6bridge.mode IPAM option the pool was requested with
	// ("" if none): the driver takes the network's mode from it.
	Mode netspec.Mode `json:"mode,omitempty"`
	// Created is when the pool was requested; zero in records older than
	// the field (they count as old enough to reclaim).
	Created time.Time `json:"created,omitzero"`
}

// addrRecord is one allocated address of a pool.
type addrRecord struct {
	Addr    netip.Addr `json:"addr"`
	Gateway bool       `json:"gateway,omitempty"`
}

// cursorRecord is the round-robin cursor of one allocator: the last address
// it handed out.
type cursorRecord struct {
	Key    string     `json:"key"`
	Cursor netip.Addr `json:"cursor"`
}

// nameRecord is the address an endpoint name last had in a pool, so an
// engine restart that re-requests without an address gets it back.
type nameRecord struct {
	Name string     `json:"name"`
	Addr netip.Addr `json:"addr"`
}

// snapshot is the whole persisted state, as read at start.
type snapshot struct {
	pools   []poolRecord
	addrs   map[string][]addrRecord // by pool ID
	cursors map[string]netip.Addr   // by cursor key
	names   map[string][]nameRecord // by pool ID
}

// backend persists IPAM state one entry at a time, so the cost of a change
// does not grow with the number of pools or addresses.
type backend interface {
	// putPool writes a pool record.
	putPool(r poolRecord) error
	// deletePool removes a pool record: the point after which the pool is
	// gone. A missing record is not an error.
	deletePool(id string) error
	// purgePool removes what is left of a deleted pool: its addresses and
	// its cursor. Best effort: load also drops leftovers of unknown pools.
	purgePool(id string) error
	// putAddr records an allocated address of pool id.
	putAddr(id string, r addrRecord) error
	// deleteAddr removes an address of pool id; a missing one is not an
	// error.
	deleteAddr(id string, a netip.Addr) error
	// putCursor records the last address handed out by the allocator key.
	putCursor(key string, a netip.Addr) error
	// putName records the address an endpoint name got in pool id.
	putName(id string, r nameRecord) error
	// deleteName forgets an endpoint name of pool id; a missing one is not
	// an error.
	deleteName(id, name string) error
	// load reads everything back.
	load() (snapshot, error)
	// loadULA reads the generated ULA prefix; zero when there is none.
	loadULA() (netip.Prefix, error)
	// putULA records the generated ULA prefix.
	putULA(p netip.Prefix) error
}

// diskBackend keeps the state under one directory:
//
//	pools/<pool>.json            one per pool
//	addrs/<pool>/<addr>.json     one per allocated address
//	cursors/<key>.json           one per allocator
//	names/<pool>/<name>.json     one per endpoint name seen (sticky addresses)
//	ula.json                     the generated ULA prefix (ULA_PREFIX unset)
type diskBackend struct {
	root    string
	pools   *store.Dir
	cursors *store.Dir
	q       *store.Quarantine // nil: an unreadable entry fails the load
}

var _ backend = (*diskBackend)(nil)

func openDisk(root string, q *store.Quarantine) (*diskBackend, error) {
	ds, err := store.OpenEach(root, "pools", "cursors")
	if err != nil {
		return nil, err
	}
	pools, cursors := ds[0], ds[1]
	if err := os.MkdirAll(filepath.Join(root, "addrs"), 0o700); err != nil {
		return nil, fmt.Errorf("open state %q: %w", root, err)
	}
	pools.SetQuarantine(q)
	cursors.SetQuarantine(q)
	return &diskBackend{root: root, pools: pools, cursors: cursors, q: q}, nil
}

// dirName maps a pool ID to a directory name. Pool IDs are ours (a prefix or
// a hex token after a fixed word), so replacing ':' and '/' is one-to-one.
func dirName(id string) string {
	return strings.NewReplacer("/", "_", ":", "-").Replace(id)
}

func (d *diskBackend) addrDir(id string) string {
	return filepath.Join(d.root, "addrs", dirName(id))
}

func (d *diskBackend) nameDir(id string) string {
	return filepath.Join(d.root, "names", dirName(id))
}

func (d *diskBackend) putName(id string, r nameRecord) error {
	dir, err := store.Open(d.nameDir(id))
	if err == nil {
		err = dir.Put(r.Name, r)
	}
	if err != nil {
		return fmt.Errorf("save address %s of %q in pool %s: %w", r.Addr, r.Name, id, err)
	}
	return nil
}

func (d *diskBackend) deleteName(id, name string) error {
	path := d.nameDir(id)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	dir, err := store.Open(path)
	if err == nil {
		err = dir.Delete(name)
	}
	if err != nil {
		return fmt.Errorf("forget endpoint name %q of pool %s: %w", name, id, err)
	}
	return nil
}

func (d *diskBackend) putPool(r poolRecord) error {
	if err := d.pools.Put(r.ID, r); err != nil {
		return fmt.Errorf("save pool %s: %w", r.ID, err)
	}
	return nil
}

func (d *diskBackend) deletePool(id string) error {
	if err := d.pools.Delete(id); err != nil {
		return fmt.Errorf("delete pool %s: %w", id, err)
	}
	return nil
}

func (d *diskBackend) purgePool(id string) error {
	if err := os.RemoveAll(d.addrDir(id)); err != nil {
		return fmt.Errorf("delete addresses of pool %s: %w", id, err)
	}
	if err := os.RemoveAll(d.nameDir(id)); err != nil {
		return fmt.Errorf("delete names of pool %s: %w", id, err)
	}
	if err := d.cursors.Delete(id); err != nil {
		return fmt.Errorf("delete cursor of pool %s: %w", id, err)
	}
	return nil
}

func (d *diskBackend) putAddr(id string, r addrRecord) error {
	// store.Open is a MkdirAll: cheap when the directory exists, and it
	// re-creates one removed behind our back.
	dir, err := store.Open(d.addrDir(id))
	if err != nil {
		return fmt.Errorf("save address %s of pool %s: %w", r.Addr, id, err)
	}
	if err := dir.Put(r.Addr.String(), r); err != nil {
		return fmt.Errorf("save address %s of pool %s: %w", r.Addr, id, err)
	}
	return nil
}

func (d *diskBackend) deleteAddr(id string, a netip.Addr) error {
	path := d.addrDir(id)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil // store.Open would create it
	}
	dir, err := store.Open(path)
	if err == nil {
		err = dir.Delete(a.String())
	}
	if err != nil {
		return fmt.Errorf("delete address %s of pool %s: %w", a, id, err)
	}
	return nil
}

func (d *diskBackend) putCursor(key string, a netip.Addr) error {
	if err := d.cursors.Put(key, cursorRecord{Key: key, Cursor: a}); err != nil {
		return fmt.Errorf("save cursor of %s: %w", key, err)
	}
	return nil
}

func (d *diskBackend) load() (snapshot, error) {
	s := snapshot{addrs: map[string][]addrRecord{}, cursors: map[string]netip.Addr{}, names: map[string][]nameRecord{}}
	dirs := map[string]string{} // dir name -> pool ID
	err := store.Each(d.pools, func(r *poolRecord) error {
		s.pools = append(s.pools, *r)
		dirs[dirName(r.ID)] = r.ID
		return nil
	})
	if err != nil {
		return s, fmt.Errorf("load pools: %w", err)
	}
	ents, err := os.ReadDir(filepath.Join(d.root, "addrs"))
	if err != nil {
		return s, fmt.Errorf("load addresses: %w", err)
	}
	for _, e := range ents {
		path := filepath.Join(d.root, "addrs", e.Name())
		id, ok := dirs[e.Name()]
		if !ok || !e.IsDir() {
			// Left over from a pool whose release was cut short.
			if err := os.RemoveAll(path); err != nil {
				return s, fmt.Errorf("drop leftover %q: %w", path, err)
			}
			continue
		}
		dir, err := store.Open(path)
		if err != nil {
			return s, err
		}
		dir.SetQuarantine(d.q)
		err = store.Each(dir, func(r *addrRecord) error {
			s.addrs[id] = append(s.addrs[id], *r)
			return nil
		})
		if err != nil {
			return s, fmt.Errorf("load addresses of pool %s: %w", id, err)
		}
	}
	if err := d.loadNames(dirs, &s); err != nil {
		return s, err
	}
	var stale []string
	err = store.Each(d.cursors, func(r *cursorRecord) error {
		s.cursors[r.Key] = r.Cursor
		if _, ok := dirs[dirName(r.Key)]; !ok {
			stale = append(stale, r.Key)
		}
		return nil
	})
	if err != nil {
		return s, fmt.Errorf("load cursors: %w", err)
	}
	for _, k := range stale {
		delete(s.cursors, k)
		if err := d.cursors.Delete(k); err != nil {
			return s, err
		}
	}
	return s, nil
}

// loadNames reads the sticky names of known pools and drops those of
// released ones.
func (d *diskBackend) loadNames(dirs map[string]string, s *snapshot) error {
	root := filepath.Join(d.root, "names")
	ents, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load names: %w", err)
	}
	for _, e := range ents {
		path := filepath.Join(root, e.Name())
		id, ok := dirs[e.Name()]
		if !ok || !e.IsDir() {
			if err := os.RemoveAll(path); err != nil {
				return fmt.Errorf("drop leftover %q: %w", path, err)
			}
			continue
		}
		dir, err := store.Open(path)
		if err != nil {
			return err
		}
		dir.SetQuarantine(d.q)
		if err := store.Each(dir, func(r *nameRecord) error {
			s.names[id] = append(s.names[id], *r)
			return nil
		}); err != nil {
			return fmt.Errorf("load names of pool %s: %w", id, err)
		}
	}
	return nil
}

func (d *diskBackend) loadULA() (netip.Prefix, error) {
	return loadULAFile(d.root)
}

func (d *diskBackend) putULA(p netip.Prefix) error {
	b, err := json.MarshalIndent(ulaRecord{Prefix: p}, "", "  ")
	if err == nil {
		err = store.WriteFileAtomic(filepath.Join(d.root, ulaFile), append(b, '\n'))
	}
	if err != nil {
		return fmt.Errorf("save ULA prefix %s: %w", p, err)
	}
	return nil
}

// loadULAFile reads root/ula.json; a missing file is the zero prefix.
func loadULAFile(root string) (netip.Prefix, error) {
	path := filepath.Join(root, ulaFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return netip.Prefix{}, nil
	}
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("load ULA prefix: %w", err)
	}
	var r ulaRecord
	if err := json.Unmarshal(b, &r); err != nil || !r.Prefix.IsValid() {
		return netip.Prefix{}, fmt.Errorf("load ULA prefix: %q holds no prefix (%v): delete it to generate a new one, or set ULA_PREFIX", path, err)
	}
	return r.Prefix, nil
}
