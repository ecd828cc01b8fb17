package driver

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/v6bridge/v6bridge/fwstate"
	"github.com/v6bridge/v6bridge/netspec"
)

// pubNet is a network of the publishing tests.
type pubNet struct {
	id, subnet string
	mode       netspec.Mode
}

// pubNets: a nat, two public, a routed and an internal network. The ids
// sort so that ties between the public ones go to "net-b".
var pubNets = []pubNet{
	{"net-a", "fd00:a::/112", netspec.ModeNAT},
	{"net-b", "2001:db8:1234:a1:b::/112", netspec.ModePublic},
	{"net-c", "2001:db8:1234:a1:c::/112", netspec.ModePublic},
	{"net-d", "2001:db8:99:d::/112", netspec.ModeRouted},
	{"net-e", "fd00:e::/112", netspec.ModeInternal},
}

func pubRig(t *testing.T) *rig {
	t.Helper()
	r := newRig(t)
	for _, n := range pubNets {
		var opts map[string]string
		if n.mode == netspec.ModeInternal {
			opts = map[string]string{OptMode: "internal"}
		}
		mustNetwork(t, r, n.id, n.subnet, opts)
	}
	return r
}

// pubAddr is container c's address on network n.
func pubAddr(n pubNet, c int) netip.Prefix {
	p := netip.MustParsePrefix(n.subnet)
	a := p.Addr().As16()
	a[15] = byte(0x10 + c)
	return netip.PrefixFrom(netip.AddrFrom16(a), p.Bits())
}

func pubEndpoint(n pubNet, c int) string { return fmt.Sprintf("ep-%s-%d", n.id, c) }

// hostAddr is a global address of the host (the rig's uplink address).
var hostAddr = netip.MustParseAddr("2001:db8:1234:a1::1")

// containerPorts: what container c publishes, each on its own host ports:
// one port, a port range that keeps its numbers, a port on ::1 only and
// one on one global host address.
func containerPorts(c int) []PortRequest {
	base := uint16(10000 + 100*c)
	var rs []PortRequest
	rs = append(rs, PortRequest{Proto: netspec.ProtoTCP, HostFirst: 8000 + uint16(c), HostLast: 8000 + uint16(c), ContainerPort: 80})
	for i := range uint16(3) {
		rs = append(rs, PortRequest{Proto: netspec.ProtoUDP, HostFirst: base + i, HostLast: base + i, ContainerPort: base + i})
	}
	rs = append(rs, PortRequest{Proto: netspec.ProtoTCP, HostAddr: netip.IPv6Loopback(), HostFirst: 5400 + uint16(c), HostLast: 5400 + uint16(c), ContainerPort: 5432})
	rs = append(rs, PortRequest{Proto: netspec.ProtoTCP, HostAddr: hostAddr, HostFirst: 8100 + uint16(c), HostLast: 8100 + uint16(c), ContainerPort: 81})
	return rs
}

// expectedState computes from scratch, from what the user did (which
// containers are on which networks, which publish), the endpoints the
// firewall must hold: the rule of publish.go written again, simply.
func expectedState(joined map[int][]pubNet, publishes map[int]bool) map[netip.Addr]fwstate.Endpoint {
	rank := map[netspec.Mode]int{netspec.ModeNAT: 0, netspec.ModePublic: 1, netspec.ModeRouted: 2}
	out := map[netip.Addr]fwstate.Endpoint{}
	for c, nets := range joined {
		var target *pubNet
		for i, n := range nets {
			if _, ok := rank[n.mode]; !ok {
				continue
			}
			if target == nil || cmp.Or(cmp.Compare(rank[n.mode], rank[target.mode]), cmp.Compare(n.id, target.id)) < 0 {
				target = &nets[i]
			}
		}
		for _, n := range nets {
			e := fwstate.Endpoint{Addr: pubAddr(n, c).Addr()}
			if publishes[c] && target != nil {
				ms := []netspec.Mapping{
					{Proto: netspec.ProtoTCP, HostFirst: 8000 + uint16(c), HostLast: 8000 + uint16(c), ContainerFirst: 80},
					{Proto: netspec.ProtoTCP, HostAddr: netip.IPv6Loopback(), HostFirst: 5400 + uint16(c), HostLast: 5400 + uint16(c), ContainerFirst: 5432},
					{Proto: netspec.ProtoTCP, HostAddr: hostAddr, HostFirst: 8100 + uint16(c), HostLast: 8100 + uint16(c), ContainerFirst: 81},
					{Proto: netspec.ProtoUDP, HostFirst: 10000 + 100*uint16(c), HostLast: 10002 + 100*uint16(c), ContainerFirst: 10000 + 100*uint16(c)},
				}
				if n.id == target.id {
					e.Ports = ms
				}
				if n.mode == netspec.ModePublic || n.mode == netspec.ModeRouted {
					// Not 5432: published on ::1 only. 81 is, on one
					// global host address.
					e.Open = []netspec.Port{{Proto: netspec.ProtoTCP, First: 80, Last: 80}, {Proto: netspec.ProtoTCP, First: 81, Last: 81},
						{Proto: netspec.ProtoUDP, First: 10000 + 100*uint16(c), Last: 10002 + 100*uint16(c)}}
				}
			}
			if n.mode == netspec.ModeInternal {
				e.Ports, e.Open = nil, nil
			}
			for _, o := range nets {
				if o.id != n.id && o.mode != netspec.ModeInternal {
					e.Also = append(e.Also, pubAddr(o, c).Addr())
				}
			}
			slices.SortFunc(e.Also, netip.Addr.Compare)
			out[e.Addr] = e
		}
	}
	return out
}

// firewallEndpoints is what the (fake) firewall and proxy publish, by
// address: the proxy's forwards (ports on ::1) are added to the endpoint
// they lead to. The firewall itself must hold no port on ::1.
func firewallEndpoints(r *rig) map[netip.Addr]fwstate.Endpoint {
	out := map[netip.Addr]fwstate.Endpoint{}
	for _, n := range r.fw.last.Networks {
		for _, e := range n.Endpoints {
			e.Ports = slices.Clone(e.Ports)
			for _, m := range e.Ports {
				if m.HostAddr.IsLoopback() {
					e.Ports = append(e.Ports, netspec.Mapping{Proto: 255}) // shows in any diff
				}
			}
			out[e.Addr] = e
		}
	}
	for _, f := range r.px.fs {
		e, ok := out[f.To.Addr()]
		if !ok {
			e = fwstate.Endpoint{Addr: f.To.Addr()}
		}
		e.Ports = append(e.Ports, netspec.Mapping{Proto: f.Proto, HostAddr: f.Listen.Addr(), HostFirst: f.Listen.Port(), HostLast: f.Listen.Port(), ContainerFirst: f.To.Port()})
		out[e.Addr] = e
	}
	for a, e := range out {
		slices.SortFunc(e.Ports, func(a, b netspec.Mapping) int {
			return cmp.Or(cmp.Compare(a.Proto, b.Proto), a.HostAddr.Compare(b.HostAddr), cmp.Compare(a.HostFirst, b.HostFirst))
		})
		out[a] = e
	}
	return out
}

var pubCmp = []gocmp.Option{cmpopts.EquateComparable(netip.Addr{}), cmpopts.EquateEmpty()}

// TestPublishAnyJoinOrder: a container on every combination of networks,
// joined in every order, with the port map handed to any one of its joins
// or to ProgramExternalConnectivity: the host ports lead to the one
// address the rule picks, and the published ports are open on all its
// public and routed addresses, whatever the order.
func TestPublishAnyJoinOrder(t *testing.T) {
	shapes := [][]int{{0}, {1}, {3}, {4}, {0, 1}, {1, 2}, {0, 4}, {1, 4}, {0, 1, 3}, {0, 1, 2, 3, 4}}
	for _, shape := range shapes {
		for _, order := range permutations(shape) {
			for sender := -1; sender < len(order); sender++ {
				name := fmt.Sprintf("nets%v/order%v/sender%d", shape, order, sender)
				t.Run(name, func(t *testing.T) {
					r := pubRig(t)
					var nets []pubNet
					for _, i := range order {
						nets = append(nets, pubNets[i])
						mustEndpoint(t, r, pubNets[i].id, pubEndpoint(pubNets[i], 1), pubAddr(pubNets[i], 1).String())
					}
					for k, n := range nets {
						req := JoinRequest{NetworkID: n.id, EndpointID: pubEndpoint(n, 1), SandboxKey: "sb1"}
						if k == sender {
							req.Ports = containerPorts(1)
						}
						if _, err := r.d.Join(req); err != nil {
							t.Fatal(err)
						}
					}
					if sender == -1 { // the engine sent them only here, for the last network
						last := nets[len(nets)-1]
						if err := r.d.ProgramExternalConnectivity(last.id, pubEndpoint(last, 1), containerPorts(1)); err != nil {
							t.Fatal(err)
						}
					}
					want := expectedState(map[int][]pubNet{1: nets}, map[int]bool{1: true})
					if diff := gocmp.Diff(want, firewallEndpoints(r), pubCmp...); diff != "" {
						t.Errorf("firewall (-rule +driver):\n%s", diff)
					}
				})
			}
		}
	}
}

// TestPublishRandomSequences: random connects and disconnects of three
// containers (some publishing) to the networks, in random order; after
// every step the firewall the incremental updates left equals the rule
// computed from scratch, and a restarted driver (the same records) plans
// the same.
func TestPublishRandomSequences(t *testing.T) {
	r := pubRig(t)
	rnd := rand.New(rand.NewPCG(9, 9))
	joined := map[int][]pubNet{}
	publishes := map[int]bool{}
	created := map[string]bool{}
	for step := range 600 {
		c := 1 + rnd.IntN(3)
		n := pubNets[rnd.IntN(len(pubNets))]
		id := pubEndpoint(n, c)
		on := slices.ContainsFunc(joined[c], func(o pubNet) bool { return o.id == n.id })
		switch {
		case !on:
			if !created[id] {
				mustEndpoint(t, r, n.id, id, pubAddr(n, c).String())
				created[id] = true
			}
			req := JoinRequest{NetworkID: n.id, EndpointID: id, SandboxKey: fmt.Sprintf("sb%d", c)}
			// Containers 1 and 2 publish; the engine may send the port map
			// with this join or not (it did with an earlier one).
			if c != 3 && (len(joined[c]) == 0 || rnd.IntN(2) == 0) {
				req.Ports = containerPorts(c)
			}
			if _, err := r.d.Join(req); err != nil {
				t.Fatalf("step %d: join %s: %v", step, id, err)
			}
			if len(req.Ports) > 0 {
				publishes[c] = true
			}
			joined[c] = append(joined[c], n)
		case rnd.IntN(2) == 0:
			if err := r.d.Leave(n.id, id); err != nil {
				t.Fatalf("step %d: leave %s: %v", step, id, err)
			}
			joined[c] = slices.DeleteFunc(joined[c], func(o pubNet) bool { return o.id == n.id })
		default:
			if err := r.d.DeleteEndpoint(n.id, id); err != nil {
				t.Fatalf("step %d: delete %s: %v", step, id, err)
			}
			delete(created, id)
			joined[c] = slices.DeleteFunc(joined[c], func(o pubNet) bool { return o.id == n.id })
		}
		if len(joined[c]) == 0 {
			// The container is gone from every network: a new one starts
			// over.
			delete(joined, c)
			delete(publishes, c)
		}
		want := expectedState(joined, publishes)
		if diff := gocmp.Diff(want, firewallEndpoints(r), pubCmp...); diff != "" {
			t.Fatalf("step %d (%s %s): firewall (-rule +driver):\n%s", step, id, map[bool]string{true: "left", false: "joined"}[on], diff)
		}
		if step%50 == 49 {
			d := r.reopen(t)
			if err := d.Reconcile(); err != nil {
				t.Fatal(err)
			}
			if diff := gocmp.Diff(want, firewallEndpoints(r), pubCmp...); diff != "" {
				t.Fatalf("step %d: after a restart (-rule +driver):\n%s", step, diff)
			}
			r.d = d
		}
	}
}

// TestPublishRangeIsOneMapping: a 10,001-port range arrives as 10,001
// bindings and is kept, and sent to the firewall, as one mapping.
func TestPublishRangeIsOneMapping(t *testing.T) {
	r := pubRig(t)
	n := pubNets[1]
	mustEndpoint(t, r, n.id, pubEndpoint(n, 1), pubAddr(n, 1).String())
	var reqs []PortRequest
	for p := 10000; p <= 20000; p++ {
		reqs = append(reqs, PortRequest{Proto: netspec.ProtoUDP, HostFirst: uint16(p), HostLast: uint16(p), ContainerPort: uint16(p)})
	}
	if _, err := r.d.Join(JoinRequest{NetworkID: n.id, EndpointID: pubEndpoint(n, 1), SandboxKey: "sb", Ports: reqs}); err != nil {
		t.Fatal(err)
	}
	got := firewallEndpoints(r)[pubAddr(n, 1).Addr()]
	want := fwstate.Endpoint{Addr: pubAddr(n, 1).Addr(),
		Ports: []netspec.Mapping{{Proto: netspec.ProtoUDP, HostFirst: 10000, HostLast: 20000, ContainerFirst: 10000}},
		Open:  []netspec.Port{{Proto: netspec.ProtoUDP, First: 10000, Last: 20000}}}
	if diff := gocmp.Diff(want, got, pubCmp...); diff != "" {
		t.Errorf("firewall entry (-want +got):\n%s", diff)
	}
}

func permutations(xs []int) [][]int {
	if len(xs) <= 1 {
		return [][]int{slices.Clone(xs)}
	}
	var out [][]int
	for i := range xs {
		rest := append(slices.Clone(xs[:i]), xs[i+1:]...)
		for _, p := range permutations(rest) {
			out = append(out, append([]int{xs[i]}, p...))
		}
	}
	return out
}
