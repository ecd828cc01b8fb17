package driver

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/v6bridge/v6bridge/nat"
	"github.com/v6bridge/v6bridge/netspec"
)

// fakeLinks is an in-memory kernel: link name -> kind.
type fakeLinks struct {
	links   map[string]string
	bridges map[string]netspec.BridgeSpec
	veths   map[string]netspec.VethSpec
	failOn  string // a link name whose Ensure fails
	calls   []string
}

func newFakeLinks() *fakeLinks {
	return &fakeLinks{links: map[string]string{"eth0": "device", "lo": "device"}, bridges: map[string]netspec.BridgeSpec{}, veths: map[string]netspec.VethSpec{}}
}

var _ Links = (*fakeLinks)(nil)

func (f *fakeLinks) EnsureBridge(s netspec.BridgeSpec) error {
	f.calls = append(f.calls, "ensure-bridge "+s.Name)
	if s.Name == f.failOn {
		return fmt.Errorf("ensure bridge %q: injected failure", s.Name)
	}
	if k, ok := f.links[s.Name]; ok && k != "bridge" {
		return fmt.Errorf("ensure bridge %q: exists as %s", s.Name, k)
	}
	f.links[s.Name] = "bridge"
	f.bridges[s.Name] = s
	return nil
}

func (f *fakeLinks) DeleteBridge(name string) error {
	f.calls = append(f.calls, "delete-bridge "+name)
	delete(f.links, name)
	delete(f.bridges, name)
	return nil
}

func (f *fakeLinks) EnsureVeth(s netspec.VethSpec) error {
	f.calls = append(f.calls, "ensure-veth "+s.HostName)
	if s.HostName == f.failOn {
		return fmt.Errorf("ensure veth %q: injected failure", s.HostName)
	}
	if f.links[s.Bridge] != "bridge" {
		return fmt.Errorf("ensure veth %q: no bridge %q", s.HostName, s.Bridge)
	}
	f.links[s.HostName] = "veth"
	f.links[s.PeerName] = "veth"
	f.veths[s.HostName] = s
	return nil
}

func (f *fakeLinks) DeleteVeth(name string) error {
	f.calls = append(f.calls, "delete-veth "+name)
	if s, ok := f.veths[name]; ok {
		delete(f.links, s.PeerName)
	}
	delete(f.links, name)
	delete(f.veths, name)
	return nil
}

func (f *fakeLinks) LinkExists(name string) (bool, error) {
	_, ok := f.links[name]
	return ok, nil
}

func (f *fakeLinks) OwnedLinks() (bridges, veths []string, err error) {
	for n, k := range f.links {
		switch {
		case k == "bridge" && strings.HasPrefix(n, netspec.BridgePrefix):
			bridges = append(bridges, n)
		case k == "veth" && strings.HasPrefix(n, netspec.HostVethPrefix):
			veths = append(veths, n)
		}
	}
	sort.Strings(bridges)
	sort.Strings(veths)
	return bridges, veths, nil
}

func (f *fakeLinks) PrepareHost(uplinks []string) ([]string, error) { return nil, nil }

// ours lists the links the driver created, sorted.
func (f *fakeLinks) ours() []string {
	var out []string
	for n := range f.links {
		if n != "eth0" && n != "lo" {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// fakeFirewall keeps the state as nat.Table does: a Model after Apply,
// updated by UpdateEndpoints with the same checks.
type fakeFirewall struct {
	last    nat.State
	model   *nat.Model
	n       int
	updates int
	fail    bool
	inits   int
	// noLast skips materializing last after updates (benchmarks: that
	// copy and sort is the fake's cost, not the driver's).
	noLast bool
}

func (f *fakeFirewall) Apply(s nat.State) error {
	if f.fail {
		return fmt.Errorf("injected firewall failure")
	}
	m, err := nat.NewModel(s)
	if err != nil {
		return err
	}
	f.model, f.last = m, s
	f.n++
	return nil
}

func (f *fakeFirewall) UpdateEndpoints(us []nat.EndpointUpdate) error {
	if f.fail {
		return fmt.Errorf("injected firewall failure")
	}
	if f.model == nil {
		return nat.ErrNoModel
	}
	if _, err := f.model.Update(us); err != nil {
		return err
	}
	if !f.noLast {
		f.last = f.model.State()
	}
	f.n++
	f.updates++
	return nil
}

type fakeNeighbors struct {
	addrs  []netip.Addr // sorted after an update, unless noList
	ranges []netip.Prefix
	set    map[netip.Addr]bool
	noList bool // benchmarks: skip listing addrs after updates
}

func (f *fakeNeighbors) SetTargets(addrs []netip.Addr, ranges []netip.Prefix) error {
	f.addrs, f.ranges = addrs, ranges
	f.set = map[netip.Addr]bool{}
	for _, a := range addrs {
		f.set[a] = true
	}
	return nil
}

func (f *fakeNeighbors) UpdateTargets(add, remove []netip.Addr) error {
	for _, a := range remove {
		delete(f.set, a)
	}
	for _, a := range add {
		f.set[a] = true
	}
	if !f.noList {
		f.addrs = slices.SortedFunc(maps.Keys(f.set), netip.Addr.Compare)
	}
	return nil
}

type memStore struct {
	networks  map[string]Network
	endpoints map[string]Endpoint
}

func newMemStore() *memStore {
	return &memStore{networks: map[string]Network{}, endpoints: map[string]Endpoint{}}
}

func (m *memStore) PutNetwork(n *Network) error    { m.networks[n.ID] = *n; return nil }
func (m *memStore) DeleteNetwork(id string) error  { delete(m.networks, id); return nil }
func (m *memStore) PutEndpoint(e *Endpoint) error  { m.endpoints[e.ID] = *e; return nil }
func (m *memStore) DeleteEndpoint(id string) error { delete(m.endpoints, id); return nil }
func (m *memStore) Load() ([]*Network, []*Endpoint, error) {
	var ns []*Network
	var es []*Endpoint
	for _, n := range m.networks {
		n := n
		ns = append(ns, &n)
	}
	for _, e := range m.endpoints {
		e := e
		es = append(es, &e)
	}
	return ns, es, nil
}
