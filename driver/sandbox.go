package driver

import (
	"fmt"
	"slices"

	"github.com/v6bridge/v6bridge/netspec"
)

// Sandbox records: loading them (with the port requests older versions
// kept on endpoint records), and saving, restoring and persisting them
// with the endpoints a handler changes, so every handler stays
// all-or-nothing for both.

// loadSandboxes takes in the sandbox records of the store and moves the
// published ports endpoint records of older versions hold into their
// sandbox's record, persisting both so the state converges on the new
// form. New calls it once the endpoints are indexed.
func (d *Driver) loadSandboxes(sbs []*Sandbox) error {
	p := d.pub
	for _, s := range sbs {
		if len(p.bySandbox[s.Key]) == 0 || len(s.PortRequests) == 0 {
			// Its last endpoint left, and the record's delete did not
			// reach the disk.
			d.log.WithField("sandbox", s.Key).Warn("dropping record of a sandbox no endpoint is in from state")
			if err := d.cfg.Store.DeleteSandbox(s.Key); err != nil {
				return err
			}
			continue
		}
		p.sandboxes[s.Key] = s
		p.indexSandbox(s)
	}
	// By id: of two endpoints of a sandbox holding requests (records of
	// versions that kept host ports per endpoint), the lowest id counts,
	// as it did there.
	for _, e := range d.sortedEndpoints() {
		if len(e.OldPortRequests)+len(e.OldPorts) == 0 {
			continue
		}
		reqs := e.OldPortRequests
		if len(reqs) == 0 {
			// A record of a version that kept only the host ports: they
			// are the requests now.
			reqs = requestsOf(e.OldPorts)
		}
		switch {
		case e.Sandbox == "":
			d.log.WithField("endpoint", short(e.ID, 12)).Warn("dropping published ports of an older endpoint record in no sandbox")
		case p.sandboxes[e.Sandbox] == nil:
			s := &Sandbox{Key: e.Sandbox, PortRequests: reqs, Ports: e.OldPorts}
			if err := d.cfg.Store.PutSandbox(s); err != nil {
				return fmt.Errorf("save sandbox record of endpoint %s: %w", short(e.ID, 12), err)
			}
			p.sandboxes[s.Key] = s
			p.indexSandbox(s)
			d.log.WithField("endpoint", short(e.ID, 12)).Info("moved published ports of an older endpoint record into its sandbox's record")
		}
		e.OldPortRequests, e.OldPorts = nil, nil
		if err := d.cfg.Store.PutEndpoint(e); err != nil {
			return fmt.Errorf("save endpoint %s: %w", short(e.ID, 12), err)
		}
	}
	return nil
}

// requestsOf returns the requests for exactly the host ports ms hold, one
// per port.
func requestsOf(ms []netspec.Mapping) []PortRequest {
	var out []PortRequest
	for _, m := range ms {
		for hp, cp := range m.Ports() {
			out = append(out, PortRequest{Proto: m.Proto, HostAddr: m.HostAddr,
				HostFirst: hp, HostLast: hp, ContainerPort: cp})
		}
	}
	return out
}

// saved is the records a change may touch as they were before it, to undo
// it: endpoints, and the records of sandboxes (nil: it had none).
type saved struct {
	endpoints []savedEndpoint
	sandboxes []savedSandbox
}

type savedEndpoint struct {
	e    *Endpoint
	prev Endpoint
}

type savedSandbox struct {
	key  string
	prev *Sandbox
}

// changed returns the saved endpoints.
func (ss saved) changed() []*Endpoint {
	out := make([]*Endpoint, len(ss.endpoints))
	for i, s := range ss.endpoints {
		out[i] = s.e
	}
	return out
}

// save records the sandboxes, their endpoints and the endpoints es as they
// are, before a change that may touch any of them.
func (p *publisher) save(sandboxes []string, es ...*Endpoint) saved {
	var out saved
	seen := map[*Endpoint]bool{}
	add := func(e *Endpoint) {
		if e != nil && !seen[e] {
			seen[e] = true
			out.endpoints = append(out.endpoints, savedEndpoint{e: e, prev: *e})
		}
	}
	for _, e := range es {
		add(e)
	}
	for _, sb := range sandboxes {
		for _, e := range p.sortedSandbox(sb) {
			add(e)
		}
		if sb != "" && !slices.ContainsFunc(out.sandboxes, func(s savedSandbox) bool { return s.key == sb }) {
			out.sandboxes = append(out.sandboxes, savedSandbox{key: sb, prev: cloneSandbox(p.sandboxes[sb])})
		}
	}
	return out
}

// restoreAll sets the endpoints and sandbox records back to their saved
// records, keeping the indexes.
func (p *publisher) restoreAll(ss saved) {
	for _, s := range ss.endpoints {
		p.unindex(s.e)
	}
	for _, s := range ss.endpoints {
		*s.e = s.prev
		p.index(s.e)
	}
	for _, s := range ss.sandboxes {
		if cur := p.sandboxes[s.key]; cur != nil {
			p.unindexSandbox(cur)
			delete(p.sandboxes, s.key)
		}
		if s.prev != nil {
			r := cloneSandbox(s.prev)
			p.sandboxes[s.key] = r
			p.indexSandbox(r)
		}
	}
}

// persistChanged writes the records of the saved endpoints and sandboxes
// that changed, and deletes those of sandboxes that are gone.
func (d *Driver) persistChanged(ss saved) error {
	for _, s := range ss.endpoints {
		if d.endpoints[s.e.ID] != s.e || sameEndpoint(*s.e, s.prev) {
			continue
		}
		if err := d.cfg.Store.PutEndpoint(s.e); err != nil {
			return fmt.Errorf("save endpoint %s: %w", short(s.e.ID, 12), err)
		}
	}
	for _, s := range ss.sandboxes {
		cur := d.pub.sandboxes[s.key]
		switch {
		case cur == nil && s.prev == nil, cur != nil && s.prev != nil && sameSandbox(*cur, *s.prev):
			continue
		case cur == nil:
			if err := d.cfg.Store.DeleteSandbox(s.key); err != nil {
				return fmt.Errorf("delete sandbox record %s: %w", s.key, err)
			}
		default:
			if err := d.cfg.Store.PutSandbox(cur); err != nil {
				return fmt.Errorf("save sandbox record %s: %w", s.key, err)
			}
		}
	}
	return nil
}

// persistSaved writes the saved records back to the store after
// restoreAll: a failure is logged, the rest still written.
func (d *Driver) persistSaved(ss saved) {
	for _, s := range ss.endpoints {
		if d.endpoints[s.e.ID] == s.e {
			if err := d.cfg.Store.PutEndpoint(s.e); err != nil {
				d.log.WithError(err).WithField("endpoint", short(s.e.ID, 12)).Warn("undo: save endpoint")
			}
		}
	}
	for _, s := range ss.sandboxes {
		var err error
		if s.prev != nil {
			err = d.cfg.Store.PutSandbox(d.pub.sandboxes[s.key])
		} else {
			err = d.cfg.Store.DeleteSandbox(s.key)
		}
		if err != nil {
			d.log.WithError(err).WithField("sandbox", s.key).Warn("undo: save sandbox record")
		}
	}
}

func cloneSandbox(s *Sandbox) *Sandbox {
	if s == nil {
		return nil
	}
	c := *s
	c.PortRequests = slices.Clone(s.PortRequests)
	c.Ports = slices.Clone(s.Ports)
	return &c
}

func sameSandbox(a, b Sandbox) bool {
	return a.Key == b.Key && slices.Equal(a.PortRequests, b.PortRequests) && slices.Equal(a.Ports, b.Ports)
}

func sameEndpoint(a, b Endpoint) bool {
	return a.ID == b.ID && a.Sandbox == b.Sandbox && a.Joined == b.Joined && a.DefaultRoute == b.DefaultRoute &&
		a.GatewayRoute == b.GatewayRoute
}
