package driver

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/v6bridge/v6bridge/fwstate"
	"github.com/v6bridge/v6bridge/nat"
	"github.com/v6bridge/v6bridge/netspec"
)

// fakeLinks is an in-memory kernel: link name -> kind.
type fakeLinks struct {
	links   map[string]string
	bridges map[string]netspec.BridgeSpec
	veths   map[string]netspec.VethSpec
	failOn  string // a link name whose Ensure fails
	// fail, if set, is asked before every call with the call as recorded
	// in calls ("ensure-bridge v6b-x", "delete-veth v6h1", "link-exists
	// v6h1", "owned-links"); an error it returns is the call's result and
	// the call changes nothing.
	fail  func(call string) error
	calls []string
	// mark is the instance id Ensure* marks links with (link.Config.Mark);
	// marks holds every link's, markDirs each instance's state directory.
	mark     string
	marks    map[string]string
	markDirs map[string]string
}

func newFakeLinks() *fakeLinks {
	return &fakeLinks{links: map[string]string{"eth0": "device", "lo": "device"}, bridges: map[string]netspec.BridgeSpec{}, veths: map[string]netspec.VethSpec{},
		marks: map[string]string{}, markDirs: map[string]string{}}
}

var _ Links = (*fakeLinks)(nil)

// call records a call and returns the injected failure, if any.
func (f *fakeLinks) call(c string) error {
	f.calls = append(f.calls, c)
	if f.fail != nil {
		return f.fail(c)
	}
	return nil
}

// failCall returns a fail func that fails the calls named, once each
// unless always.
func failCall(always bool, calls ...string) func(string) error {
	left := map[string]bool{}
	for _, c := range calls {
		left[c] = true
	}
	return func(c string) error {
		if !left[c] {
			return nil
		}
		if !always {
			delete(left, c)
		}
		return fmt.Errorf("%s: injected failure", c)
	}
}

// ensure records the call "ensure-<kind> <name>", fails it when asked to
// (fail or failOn), and else makes the link name of kind, marked with
// f.mark if set.
func (f *fakeLinks) ensure(kind, name string) error {
	if err := f.call("ensure-" + kind + " " + name); err != nil {
		return err
	}
	if name == f.failOn {
		return fmt.Errorf("ensure %s %q: injected failure", kind, name)
	}
	f.links[name] = kind
	if f.mark != "" {
		f.marks[name] = f.mark
	}
	return nil
}

func (f *fakeLinks) EnsureBridge(s netspec.BridgeSpec) error {
	if k, ok := f.links[s.Name]; ok && k != "bridge" {
		return fmt.Errorf("ensure bridge %q: exists as %s", s.Name, k)
	}
	if err := f.ensure("bridge", s.Name); err != nil {
		return err
	}
	f.bridges[s.Name] = s
	return nil
}

// remove records the call "delete-<kind> <name>", fails it when asked to,
// and else removes the link name (and, for a veth, its peer).
func (f *fakeLinks) remove(kind, name string) error {
	if err := f.call("delete-" + kind + " " + name); err != nil {
		return err
	}
	if s, ok := f.veths[name]; ok {
		delete(f.links, s.PeerName)
	}
	delete(f.links, name)
	delete(f.marks, name)
	delete(f.bridges, name)
	delete(f.veths, name)
	return nil
}

func (f *fakeLinks) DeleteBridge(name string) error { return f.remove("bridge", name) }

func (f *fakeLinks) EnsureVeth(s netspec.VethSpec) error {
	if f.links[s.Bridge] != "bridge" {
		return fmt.Errorf("ensure veth %q: no bridge %q", s.HostName, s.Bridge)
	}
	if err := f.ensure("veth", s.HostName); err != nil {
		return err
	}
	f.links[s.PeerName] = "veth"
	f.veths[s.HostName] = s
	return nil
}

func (f *fakeLinks) DeleteVeth(name string) error { return f.remove("veth", name) }

func (f *fakeLinks) LinkExists(name string) (bool, error) {
	if f.fail != nil {
		if err := f.fail("link-exists " + name); err != nil {
			return false, err
		}
	}
	_, ok := f.links[name]
	return ok, nil
}

func (f *fakeLinks) OwnedLinks() ([]netspec.OwnedLink, error) {
	if err := f.call("owned-links"); err != nil {
		return nil, err
	}
	var out []netspec.OwnedLink
	for n, k := range f.links {
		b := k == "bridge" && strings.HasPrefix(n, netspec.BridgePrefix)
		if b || k == "veth" && strings.HasPrefix(n, netspec.HostVethPrefix) {
			out = append(out, netspec.OwnedLink{Name: n, Bridge: b, Instance: f.marks[n], StateDir: f.markDirs[f.marks[n]]})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
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
	last    fwstate.State
	model   *nat.Model
	n       int
	updates int
	fail    bool
	// failOp, if set, is asked before Apply ("apply") and UpdateEndpoints
	// ("update"); an error fails the call, which changes nothing.
	failOp func(op string) error
	inits  int
	// noLast skips materializing last after updates (benchmarks: that
	// copy and sort is the fake's cost, not the driver's).
	noLast bool
}

func (f *fakeFirewall) Apply(s fwstate.State) error {
	if f.fail {
		return fmt.Errorf("injected firewall failure")
	}
	if f.failOp != nil {
		if err := f.failOp("apply"); err != nil {
			return err
		}
	}
	m, err := nat.NewModel(s)
	if err != nil {
		return err
	}
	f.model, f.last = m, s
	f.n++
	return nil
}

func (f *fakeFirewall) UpdateEndpoints(us []fwstate.EndpointUpdate) error {
	if f.fail {
		return fmt.Errorf("injected firewall failure")
	}
	if f.failOp != nil {
		if err := f.failOp("update"); err != nil {
			return err
		}
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
	// fail, if set, is asked before SetTargets ("set") and UpdateTargets
	// ("update"); an error fails the call, which changes nothing.
	fail func(op string) error
}

func (f *fakeNeighbors) SetTargets(addrs []netip.Addr, ranges []netip.Prefix) error {
	if f.fail != nil {
		if err := f.fail("set"); err != nil {
			return err
		}
	}
	f.addrs, f.ranges = addrs, ranges
	f.set = map[netip.Addr]bool{}
	for _, a := range addrs {
		f.set[a] = true
	}
	return nil
}

func (f *fakeNeighbors) UpdateTargets(add, remove []netip.Addr) error {
	if f.fail != nil {
		if err := f.fail("update"); err != nil {
			return err
		}
	}
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
	sandboxes map[string]Sandbox
	// fail, if set, is asked before every call ("put-network <id>",
	// "delete-network <id>", "put-endpoint <id>", "delete-endpoint <id>",
	// "put-sandbox <key>", "delete-sandbox <key>", "load",
	// "load-sandboxes"); an error fails the call, which changes nothing.
	fail func(call string) error
}

func newMemStore() *memStore {
	return &memStore{networks: map[string]Network{}, endpoints: map[string]Endpoint{}, sandboxes: map[string]Sandbox{}}
}

func (m *memStore) check(call string) error {
	if m.fail == nil {
		return nil
	}
	return m.fail(call)
}

// put and del are the memStore's changes: the call checked by fail, then
// one entry of one map replaced or removed.
func put[T any](m *memStore, call string, to map[string]T, key string, v T) error {
	if err := m.check(call + " " + key); err != nil {
		return err
	}
	to[key] = v
	return nil
}

func del[T any](m *memStore, call string, from map[string]T, key string) error {
	if err := m.check(call + " " + key); err != nil {
		return err
	}
	delete(from, key)
	return nil
}

func (m *memStore) PutNetwork(n *Network) error {
	return put(m, "put-network", m.networks, n.ID, *n)
}
func (m *memStore) DeleteNetwork(id string) error {
	return del(m, "delete-network", m.networks, id)
}
func (m *memStore) PutEndpoint(e *Endpoint) error {
	return put(m, "put-endpoint", m.endpoints, e.ID, *e)
}
func (m *memStore) DeleteEndpoint(id string) error {
	return del(m, "delete-endpoint", m.endpoints, id)
}
func (m *memStore) PutSandbox(s *Sandbox) error {
	return put(m, "put-sandbox", m.sandboxes, s.Key, *cloneSandbox(s))
}
func (m *memStore) DeleteSandbox(key string) error {
	return del(m, "delete-sandbox", m.sandboxes, key)
}

func (m *memStore) LoadSandboxes() ([]*Sandbox, error) {
	if err := m.check("load-sandboxes"); err != nil {
		return nil, err
	}
	var out []*Sandbox
	for _, s := range m.sandboxes {
		out = append(out, cloneSandbox(&s))
	}
	return out, nil
}

func (m *memStore) Load() ([]*Network, []*Endpoint, error) {
	if err := m.check("load"); err != nil {
		return nil, nil, err
	}
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
