package driver

import (
	"fmt"

	"github.com/v6bridge/v6bridge/internal/store"
)

// DiskStore keeps one file per network, per endpoint and per sandbox
// record under a directory (networks/, endpoints/, sandboxes/).
type DiskStore struct {
	networks, endpoints, sandboxes *store.Dir
}

var _ Store = (*DiskStore)(nil)

// OpenDiskStore opens (creating) the store under dir.
func OpenDiskStore(dir string) (*DiskStore, error) {
	ds, err := store.OpenEach(dir, "networks", "endpoints", "sandboxes")
	if err != nil {
		return nil, err
	}
	return &DiskStore{networks: ds[0], endpoints: ds[1], sandboxes: ds[2]}, nil
}

// SetQuarantine makes Load and LoadSandboxes set unreadable records aside
// into q (and report them) instead of failing; nil: they fail.
func (s *DiskStore) SetQuarantine(q *store.Quarantine) {
	s.networks.SetQuarantine(q)
	s.endpoints.SetQuarantine(q)
	s.sandboxes.SetQuarantine(q)
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

// PutSandbox implements Store.
func (s *DiskStore) PutSandbox(sb *Sandbox) error {
	sb.Format = RecordFormat
	return s.sandboxes.Put(sb.Key, sb)
}

// DeleteSandbox implements Store.
func (s *DiskStore) DeleteSandbox(key string) error { return s.sandboxes.Delete(key) }

// LoadSandboxes implements Store.
func (s *DiskStore) LoadSandboxes() ([]*Sandbox, error) {
	var out []*Sandbox
	if err := store.Each(s.sandboxes, func(sb *Sandbox) error {
		out = append(out, sb)
		return checkFormat("sandbox "+sb.Key, sb.Format)
	}); err != nil {
		return nil, fmt.Errorf("load sandboxes: %w", err)
	}
	return out, nil
}

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
