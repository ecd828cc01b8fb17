package driver

import (
	"fmt"
	"path/filepath"

	"github.com/v6bridge/v6bridge/internal/store"
)

// DiskStore keeps one file per network and per endpoint under a directory.
type DiskStore struct {
	networks, endpoints *store.Dir
}

var _ Store = (*DiskStore)(nil)

// OpenDiskStore opens (creating) the store under dir.
func OpenDiskStore(dir string) (*DiskStore, error) {
	n, err := store.Open(filepath.Join(dir, "networks"))
	if err != nil {
		return nil, err
	}
	e, err := store.Open(filepath.Join(dir, "endpoints"))
	if err != nil {
		return nil, err
	}
	return &DiskStore{networks: n, endpoints: e}, nil
}

// SetQuarantine makes Load set unreadable network and endpoint records
// aside into q (and report them) instead of failing; nil: Load fails.
func (s *DiskStore) SetQuarantine(q *store.Quarantine) {
	s.networks.SetQuarantine(q)
	s.endpoints.SetQuarantine(q)
}

// PutNetwork implements Store.
func (s *DiskStore) PutNetwork(n *Network) error {
	n.Format = RecordFormat
	return s.networks.Put(n.ID, n)
}

// DeleteNetwork implements Store.
func (s *DiskStore) DeleteNetwork(id string) error { return s.networks.Delete(id) }

// PutEndpoint implements Store.
func (s *DiskStore) PutEndpoint(e *Endpoint) error {
	e.Format = RecordFormat
	return s.endpoints.Put(e.ID, e)
}

// DeleteEndpoint implements Store.
func (s *DiskStore) DeleteEndpoint(id string) error { return s.endpoints.Delete(id) }

// Load implements Store.
func (s *DiskStore) Load() ([]*Network, []*Endpoint, error) {
	var ns []*Network
	var es []*Endpoint
	if err := store.Each(s.networks, func(n *Network) error {
		ns = append(ns, n)
		return checkFormat("network "+n.ID, n.Format)
	}); err != nil {
		return nil, nil, fmt.Errorf("load networks: %w", err)
	}
	if err := store.Each(s.endpoints, func(e *Endpoint) error {
		es = append(es, e)
		return checkFormat("endpoint "+e.ID, e.Format)
	}); err != nil {
		return nil, nil, fmt.Errorf("load endpoints: %w", err)
	}
	return ns, es, nil
}

// checkFormat refuses a record of a newer format: reading it as this one
// could lose what the newer version wrote.
func checkFormat(what string, f int) error {
	if f > RecordFormat {
		return fmt.Errorf("%s: record format %d is newer than this v6bridge reads (%d): run the newer v6bridge, or move the state directory aside", what, f, RecordFormat)
	}
	return nil
}
