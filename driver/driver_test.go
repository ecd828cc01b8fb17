package driver

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/v6bridge/v6bridge/internal/hostos"
	"github.com/v6bridge/v6bridge/netspec"
	"github.com/v6bridge/v6bridge/portfwd"
)

const (
	netA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	netB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	ep1  = "1111111111111111111111111111111111111111111111111111111111111111"
	ep2  = "2222222222222222222222222222222222222222222222222222222222222222"
	ep3  = "3333333333333333333333333333333333333333333333333333333333333333"
	ep4  = "4444444444444444444444444444444444444444444444444444444444444444"
)

type rig struct {
	// instance is the Config.Instance reopen passes (empty: unmarked).
	instance string
	d        *Driver
	links    *fakeLinks
	fw       *fakeFirewall
	nb       *fakeNeighbors
	px       *fakeForwarder
	// fwd, if set, is the forwarder reopen passes instead of px.
	fwd   Forwarder
	store *memStore
}

func newRig(t *testing.T) *rig {
	t.Helper()
	r := &rig{links: newFakeLinks(), fw: &fakeFirewall{}, nb: &fakeNeighbors{}, px: &fakeForwarder{}, store: newMemStore()}
	r.d = r.reopen(t)
	return r
}

// reopen builds a new Driver over the same store and kernel, as a plugin
// restart does.
func (r *rig) reopen(t *testing.T) *Driver {
	t.Helper()
	var px Forwarder = r.px
	if r.fwd != nil {
		px = r.fwd
	}
	d, err := New(Config{
		Links: r.links, Firewall: r.fw, Neighbors: r.nb, Forwarder: px, Store: r.store,
		Uplinks: []string{"eth0"},
		Host: &hostos.TestState{Uplink: []netip.Addr{netip.MustParseAddr("2001:db8:1234:a1::1")},
			Prefixes: []netip.Prefix{netip.MustParsePrefix("2001:db8:1234:a1::/64")}, MTU: 1500},
		Instance: r.instance, StateDir: "/var/lib/v6bridge-" + r.instance,
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func truep() *bool { b := false; return &b }

func createReq(id, subnet string, opts map[string]string) CreateNetworkRequest {
	p := netip.MustParsePrefix(subnet)
	return CreateNetworkRequest{
		NetworkID: id, Generic: opts, EnableIPv6: true, EnableIPv4: truep(),
		IPv6: []PoolData{{Pool: p, Gateway: netip.PrefixFrom(p.Addr().Next(), p.Bits())}},
	}
}

func TestCreateNetworkDefaults(t *testing.T) {
	tests := []struct {
		subnet string
		opts   map[string]string
		want   Network
	}{
		{"fd12:3456:789a:8101:1::/112", nil, Network{Mode: netspec.ModeNAT, MTU: 1500, ICC: true, AllowPing: true}},
		{"2001:db8:1234:a1:1::/112", nil, Network{Mode: netspec.ModePublic, MTU: 1500, ICC: true, AllowPing: true}},
		{"2001:db8:99::/112", nil, Network{Mode: netspec.ModeRouted, MTU: 1500, ICC: true, AllowPing: true}},
		{"fd00:1::/112", map[string]string{OptMode: "internal", OptMTU: "1400", OptICC: "false"}, Network{Mode: netspec.ModeInternal, MTU: 1400, ICC: false, AllowPing: true}},
		{"fd00:2::/112", map[string]string{OptBridgeName: "br-mine", OptMTU: "9000"}, Network{Mode: netspec.ModeNAT, MTU: 9000, ICC: true, AllowPing: true}},
	}
	for _, tt := range tests {
		t.Run(tt.subnet, func(t *testing.T) {
			r := newRig(t)
			if err := r.d.CreateNetwork(createReq(netA, tt.subnet, tt.opts)); err != nil {
				t.Fatal(err)
			}
			got := *r.d.networks[netA]
			p := netip.MustParsePrefix(tt.subnet)
			tt.want.ID, tt.want.Subnet, tt.want.Gateway, tt.want.EngineSetsGatewayRoute = netA, p, p.Addr().Next(), true
			tt.want.Bridge = "v6b-aaaaaaaaaaa"
			if tt.opts[OptBridgeName] != "" {
				tt.want.Bridge = tt.opts[OptBridgeName]
			}
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b }), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
				t.Errorf("network (-want +got):\n%s", diff)
			}
			if _, ok := r.store.networks[netA]; !ok {
				t.Error("network not persisted")
			}
			if b := r.links.bridges[got.Bridge]; b.Gateway.String() != p.Addr().Next().String()+"/112" || b.MTU != tt.want.MTU || b.Isolated != !tt.want.ICC {
				t.Errorf("bridge spec = %+v", b)
			}
		})
	}
}

func TestCreateNetworkRefusals(t *testing.T) {
	const ula, global = "fd00:9::/112", "2001:db8:1234:a1:2::/112"
	type opts = map[string]string
	tests := []struct {
		name   string
		subnet string
		opts   opts
		edit   func(*CreateNetworkRequest) // nil: the request as made
		want   string
	}{
		{"unknown option", ula, opts{"v6bridge.colour": "blue"}, nil, `unknown network option "v6bridge.colour": accepted options are`},
		{"bad mode", ula, opts{OptMode: "bridge"}, nil, "accepted are nat, public, routed, internal"},
		{"bad mtu", ula, opts{OptMTU: "1000"}, nil, "1280 to 65535"},
		{"mtu not a number", ula, opts{OptMTU: "big"}, nil, "1280 to 65535"},
		{"bad icc", ula, opts{OptICC: "maybe"}, nil, "true or false"},
		{"long bridge name", ula, opts{OptBridgeName: "a-very-long-bridge-name"}, nil, "1 to 15 bytes"},
		{"bridge name with slash", ula, opts{OptBridgeName: "br/0"}, nil, "no spaces"},
		{"bridge name of existing interface", ula, opts{OptBridgeName: "eth0"}, nil, "an interface of that name exists"},
		{"bridge name of other network", ula, opts{OptBridgeName: "v6b-aaaaaaaaaaa"}, nil, "uses that bridge already"},
		{"public with ULA", ula, opts{OptMode: "public"}, nil, "needs a global subnet"},
		{"internal conflicts with mode", ula, opts{OptMode: "nat"}, func(r *CreateNetworkRequest) { r.Internal = true }, "conflicts with --internal"},
		{"no ipv6", ula, nil, func(r *CreateNetworkRequest) { r.EnableIPv6, r.IPv6 = false, nil }, "--ipv6"},
		{"overlapping subnet", "fd12:3456:789a:8101:1::/120", nil, nil, "overlaps"},
		{"bad allow", global, opts{OptAllow: "tcp/99999"}, nil, "1 to 65535"},
		{"allow on nat", ula, opts{OptAllow: "tcp/80"}, nil, "public and routed"},
		{"host_ipv6 not an address", ula, opts{OptHostIPv6: "host"}, nil, "IPv6 address"},
		{"host_ipv6 on public", global, opts{OptHostIPv6: "2001:db8:1234:a1::1", OptMode: "public"}, nil, "only to v6bridge.mode=nat"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			if err := r.d.CreateNetwork(createReq(netA, "fd12:3456:789a:8101:1::/112", nil)); err != nil {
				t.Fatal(err)
			}
			before := r.links.ours()
			req := createReq(netB, tt.subnet, tt.opts)
			if tt.edit != nil {
				tt.edit(&req)
			}
			err := r.d.CreateNetwork(req)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
			if diff := cmp.Diff(before, r.links.ours()); diff != "" {
				t.Errorf("links changed (-before +after):\n%s", diff)
			}
			if _, ok := r.store.networks[netB]; ok {
				t.Error("refused network was persisted")
			}
		})
	}
}

func TestCreateNetworkUndoesOnFirewallFailure(t *testing.T) {
	r := newRig(t)
	r.fw.fail = true
	if err := r.d.CreateNetwork(createReq(netA, "fd00:1::/112", nil)); err == nil {
		t.Fatal("want error")
	}
	if got := r.links.ours(); len(got) != 0 {
		t.Errorf("links left behind: %v", got)
	}
	if len(r.store.networks) != 0 || len(r.d.networks) != 0 {
		t.Error("state left behind")
	}
}

func mustNetwork(t *testing.T, r *rig, id, subnet string, opts map[string]string) {
	t.Helper()
	if err := r.d.CreateNetwork(createReq(id, subnet, opts)); err != nil {
		t.Fatal(err)
	}
}

func mustEndpoint(t *testing.T, r *rig, nid, eid, addr string) {
	t.Helper()
	if _, err := r.d.CreateEndpoint(CreateEndpointRequest{NetworkID: nid, EndpointID: eid, AddressIPv6: netip.MustParsePrefix(addr)}); err != nil {
		t.Fatal(err)
	}
}

func portmap(hostIP string, hostPort, port int) []PortRequest {
	r := PortRequest{Proto: netspec.ProtoTCP, HostFirst: uint16(hostPort), HostLast: uint16(hostPort), ContainerPort: uint16(port)}
	if hostIP != "" {
		r.HostAddr = netip.MustParseAddr(hostIP)
	}
	return []PortRequest{r}
}

func TestEndpointLifecycle(t *testing.T) {
	r := newRig(t)
	mustNetwork(t, r, netA, "2001:db8:1234:a1:1::/112", nil)
	mac, err := r.d.CreateEndpoint(CreateEndpointRequest{NetworkID: netA, EndpointID: ep1, AddressIPv6: netip.MustParsePrefix("2001:db8:1234:a1:1::ab53/112")})
	if err != nil {
		t.Fatal(err)
	}
	if mac == "" || mac != EndpointMAC(ep1).String() {
		t.Errorf("mac = %q", mac)
	}
	host1, peer1 := VethNames(ep1)
	if v := r.links.veths[host1]; v.Bridge != "v6b-aaaaaaaaaaa" || v.PeerName != peer1 || v.MTU != 1500 {
		t.Errorf("veth = %+v", v)
	}
	resp, err := r.d.Join(JoinRequest{NetworkID: netA, EndpointID: ep1, SandboxKey: "/run/docker/netns/c1", Ports: portmap("", 8081, 80)})
	if err != nil {
		t.Fatal(err)
	}
	want := JoinResponse{SrcName: peer1, DstPrefix: "eth", GatewayIPv6: netip.MustParseAddr("2001:db8:1234:a1:1::1")}
	if diff := cmp.Diff(want, resp, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("join (-want +got):\n%s", diff)
	}
	if got := r.nb.addrs; len(got) != 1 || got[0].String() != "2001:db8:1234:a1:1::ab53" {
		t.Errorf("ndp targets = %v", got)
	}
	eps := r.fw.last.Networks[0].Endpoints
	if len(eps) != 1 || len(eps[0].Ports) != 1 || eps[0].Ports[0].HostFirst != 8081 || eps[0].Ports[0].ContainerFirst != 80 {
		t.Errorf("firewall endpoints = %+v", eps)
	}
	if info := r.d.EndpointInfo(netA, ep1); info["v6bridge.ports"] != "[::]:8081->80/tcp" {
		t.Errorf("info = %v", info)
	}
	// Second container asking for the same host port: refused, nothing changes.
	mustEndpoint(t, r, netA, ep2, "2001:db8:1234:a1:1::2/112")
	if _, err := r.d.Join(JoinRequest{NetworkID: netA, EndpointID: ep2, SandboxKey: "/run/docker/netns/c2", Ports: portmap("", 8081, 80)}); err == nil || !strings.Contains(err.Error(), "host port tcp/8081") {
		t.Fatalf("second join err = %v", err)
	}
	if r.d.endpoints[ep2].Joined {
		t.Error("failed join left the endpoint joined")
	}
	if err := r.d.Leave(netA, ep1); err != nil {
		t.Fatal(err)
	}
	if len(r.nb.addrs) != 0 || len(r.fw.last.Networks[0].Endpoints) != 0 {
		t.Errorf("after leave: ndp %v fw %+v", r.nb.addrs, r.fw.last.Networks[0].Endpoints)
	}
	if err := r.d.DeleteEndpoint(netA, ep1); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{ep1, "unknown"} { // repeated and unknown deletes succeed
		if err := r.d.DeleteEndpoint(netA, id); err != nil {
			t.Fatal(err)
		}
		if err := r.d.Leave(netA, id); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.d.DeleteNetwork(netA); err != nil {
		t.Fatal(err)
	}
	if err := r.d.DeleteNetwork(netA); err != nil {
		t.Fatal(err)
	}
	if got := r.links.ours(); len(got) != 0 {
		t.Errorf("links left behind: %v", got)
	}
	if len(r.store.networks)+len(r.store.endpoints)+len(r.store.sandboxes) != 0 {
		t.Errorf("state left behind: %+v", r.store)
	}
}

func TestJoinLegacyEngineDefaultRoute(t *testing.T) {
	r := newRig(t)
	a := createReq(netA, "fd00:1::/112", nil)
	a.EnableIPv4 = nil // engine < 28
	b := createReq(netB, "fd00:2::/112", nil)
	b.EnableIPv4 = nil
	for _, req := range []CreateNetworkRequest{a, b} {
		if err := r.d.CreateNetwork(req); err != nil {
			t.Fatal(err)
		}
	}
	mustEndpoint(t, r, netA, ep1, "fd00:1::5/112")
	mustEndpoint(t, r, netB, ep2, "fd00:2::5/112")
	first, err := r.d.Join(JoinRequest{NetworkID: netA, EndpointID: ep1, SandboxKey: "sb"})
	if err != nil {
		t.Fatal(err)
	}
	second, err := r.d.Join(JoinRequest{NetworkID: netB, EndpointID: ep2, SandboxKey: "sb"})
	if err != nil {
		t.Fatal(err)
	}
	if first.GatewayIPv6.IsValid() || len(first.StaticRoutes) != 1 || first.StaticRoutes[0].Destination.String() != "::/0" || first.StaticRoutes[0].NextHop.String() != "fd00:1::1" {
		t.Errorf("first join = %+v", first)
	}
	if len(second.StaticRoutes) != 0 {
		t.Errorf("second network of the same container got a default route too: %+v", second)
	}
}

func TestSandboxOnTwoNetworksPublishesOnce(t *testing.T) {
	r := newRig(t)
	mustNetwork(t, r, netA, "fd12:3456:789a:8101:1::/112", nil)
	mustNetwork(t, r, netB, "2001:db8:1234:a1:1::/112", nil)
	mustEndpoint(t, r, netA, ep1, "fd12:3456:789a:8101:1::ab53/112")
	mustEndpoint(t, r, netB, ep2, "2001:db8:1234:a1:1::ab53/112")
	for _, j := range []JoinRequest{
		{NetworkID: netA, EndpointID: ep1, SandboxKey: "sb", Ports: portmap("", 8081, 80)},
		{NetworkID: netB, EndpointID: ep2, SandboxKey: "sb", Ports: portmap("", 8081, 80)},
	} {
		if _, err := r.d.Join(j); err != nil {
			t.Fatal(err)
		}
	}
	// The first requests count; the host port leads to the nat address.
	want := []netspec.Mapping{{Proto: netspec.ProtoTCP, HostFirst: 8081, HostLast: 8081, ContainerFirst: 80}}
	p1, _ := r.d.pub.entry(r.d.endpoints[ep1])
	p2, _ := r.d.pub.entry(r.d.endpoints[ep2])
	if s := r.store.sandboxes["sb"]; !slices.Equal(s.Ports, want) || !slices.Equal(p1, want) || len(p2) != 0 {
		t.Fatalf("sandbox record %+v, ports: ep1 %v ep2 %v", s, p1, p2)
	}
	if err := r.d.Leave(netA, ep1); err != nil {
		t.Fatal(err)
	}
	if p2, _ := r.d.pub.entry(r.d.endpoints[ep2]); !slices.Equal(p2, want) || !slices.Equal(r.store.sandboxes["sb"].Ports, want) {
		t.Errorf("ports did not move to the container's other network: %v (record %+v)", p2, r.store.sandboxes["sb"])
	}
	// Its last endpoint gone, the sandbox's record goes too.
	if err := r.d.DeleteEndpoint(netB, ep2); err != nil {
		t.Fatal(err)
	}
	if len(r.d.pub.sandboxes)+len(r.store.sandboxes) != 0 {
		t.Errorf("sandbox records left: %v on disk %v", r.d.pub.sandboxes, r.store.sandboxes)
	}
}

func TestEphemeralAndAddressSpecificPorts(t *testing.T) {
	r := newRig(t)
	mustNetwork(t, r, netA, "fd00:1::/112", nil)
	mustEndpoint(t, r, netA, ep1, "fd00:1::2/112")
	mustEndpoint(t, r, netA, ep2, "fd00:1::3/112")
	mustEndpoint(t, r, netA, ep3, "fd00:1::4/112")
	if _, err := r.d.Join(JoinRequest{NetworkID: netA, EndpointID: ep1, SandboxKey: "a", Ports: portmap("2001:db8:1234:a1::1", 8081, 80)}); err != nil {
		t.Fatal(err)
	}
	// Same port on another address is free; any address overlaps the first.
	if _, err := r.d.Join(JoinRequest{NetworkID: netA, EndpointID: ep2, SandboxKey: "b", Ports: portmap("2001:db8:1234:a1::2", 8081, 80)}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.d.Join(JoinRequest{NetworkID: netA, EndpointID: ep3, SandboxKey: "c", Ports: portmap("", 8081, 80)}); err == nil {
		t.Fatal("any-address binding of a taken port accepted")
	}
	if _, err := r.d.Join(JoinRequest{NetworkID: netA, EndpointID: ep3, SandboxKey: "c", Ports: portmap("", 0, 80)}); err != nil {
		t.Fatal(err)
	}
	if p := r.d.pub.sandboxes["c"].Ports; len(p) != 1 || p[0].HostFirst != ephemeralFirst {
		t.Errorf("ephemeral = %+v", p)
	}
}

func TestRestartKeepsStateAndReconcileCleansOrphans(t *testing.T) {
	r := newRig(t)
	mustNetwork(t, r, netA, "fd00:1::/112", nil)
	mustEndpoint(t, r, netA, ep1, "fd00:1::2/112")
	if _, err := r.d.Join(JoinRequest{NetworkID: netA, EndpointID: ep1, SandboxKey: "a", Ports: portmap("", 8081, 80)}); err != nil {
		t.Fatal(err)
	}
	// A simulated reboot: every bridge gone; plus leftovers of a crash.
	r.links = newFakeLinks()
	host1, _ := VethNames(ep1)
	r.links.links[host1] = "veth" // the container's link survived
	r.links.links["v6b-deadbeef000"] = "bridge"
	r.links.links["v6hdeadbeef0000"] = "veth"
	d := r.reopen(t)
	if err := d.Reconcile(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"v6b-aaaaaaaaaaa", host1}, r.links.ours()); diff != "" {
		t.Errorf("links after reconcile (-want +got):\n%s", diff)
	}
	if eps := r.fw.last.Networks[0].Endpoints; len(eps) != 1 || len(eps[0].Ports) != 1 {
		t.Errorf("firewall after restart = %+v", r.fw.last)
	}
	// The container's link vanished: it is unpublished.
	delete(r.links.links, host1)
	d = r.reopen(t)
	if err := d.Reconcile(); err != nil {
		t.Fatal(err)
	}
	if eps := r.fw.last.Networks[0].Endpoints; len(eps) != 0 {
		t.Errorf("dead endpoint still published: %+v", eps)
	}
}

// TestModeDecidedOnce: a network takes its mode from the IPAM option its
// subnet was chosen with; -o with another mode is refused, naming both.
func TestModeDecidedOnce(t *testing.T) {
	pools := map[netip.Prefix]netspec.Mode{
		netip.MustParsePrefix("2001:db8:1234:a1:7::/112"): netspec.ModePublic,
		netip.MustParsePrefix("2001:db8:77::/112"):        netspec.ModeRouted,
	}
	r := newRig(t)
	r.d.cfg.PoolMode = func(p netip.Prefix) netspec.Mode { return pools[p] }
	for _, c := range []struct {
		subnet string
		opts   map[string]string
		want   netspec.Mode
		err    string
	}{
		{"2001:db8:1234:a1:7::/112", nil, netspec.ModePublic, ""},
		{"2001:db8:77::/112", nil, netspec.ModeRouted, ""},
		{"fd00:5::/112", map[string]string{OptMode: "internal"}, netspec.ModeInternal, ""}, // no IPAM mode: -o decides
		{"2001:db8:1234:a1:7::/112", map[string]string{OptMode: "public"}, netspec.ModePublic, ""},
		{"2001:db8:1234:a1:7::/112", map[string]string{OptMode: "routed"}, "", "contradicts the ipam option v6bridge.mode=public"},
	} {
		r := newRig(t)
		r.d.cfg.PoolMode = func(p netip.Prefix) netspec.Mode { return pools[p] }
		err := r.d.CreateNetwork(createReq(netA, c.subnet, c.opts))
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s %v: err %v, want %q", c.subnet, c.opts, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s %v: %v", c.subnet, c.opts, err)
			continue
		}
		if got := r.d.networks[netA].Mode; got != c.want {
			t.Errorf("%s %v: mode %s, want %s", c.subnet, c.opts, got, c.want)
		}
	}
}

type fakeRouters struct{ targets map[string][]netip.Addr }

func (f *fakeRouters) SetTargets(t map[string][]netip.Addr) { f.targets = t }

// TestRoutersAdvertiseToContainersThatLostTheirRoute: on engines before 28
// only the containers that left the network with their static ::/0 hear
// router advertisements, on their other non-internal networks; a
// container that does is given no static ::/0 again (EEXIST), and a new
// container hears none while its engine installs its own. Networks of
// current engines never advertise; a restarted driver advertises to the
// same containers.
func TestRoutersAdvertiseToContainersThatLostTheirRoute(t *testing.T) {
	r := newRig(t)
	fr := &fakeRouters{}
	r.d.cfg.Routers = fr
	legacy := func(id, subnet string, opts map[string]string) {
		req := createReq(id, subnet, opts)
		req.EnableIPv4 = nil
		if err := r.d.CreateNetwork(req); err != nil {
			t.Fatal(err)
		}
	}
	legacy(netA, "fd00:1::/112", nil)
	legacy(netB, "fd00:2::/112", nil)
	legacy("cccc", "fd00:3::/112", map[string]string{OptMode: "internal"})
	mustNetwork(t, r, "dddd", "fd00:4::/112", nil) // current engine
	mustEndpoint(t, r, netA, ep1, "fd00:1::5/112")
	mustEndpoint(t, r, netB, ep2, "fd00:2::5/112")
	mustEndpoint(t, r, "cccc", ep3, "fd00:3::5/112")
	join := func(nid, eid string) JoinResponse {
		t.Helper()
		resp, err := r.d.Join(JoinRequest{NetworkID: nid, EndpointID: eid, SandboxKey: "sb"})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	want := func(what string, targets map[string][]netip.Addr) {
		t.Helper()
		if diff := cmp.Diff(targets, fr.targets, cmpopts.EquateEmpty(), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
			t.Errorf("%s: targets (-want +got):\n%s", what, diff)
		}
	}
	join(netA, ep1)
	join(netB, ep2)
	join("cccc", ep3)
	want("routed by the static ::/0", nil)
	if err := r.d.Leave(netA, ep1); err != nil {
		t.Fatal(err)
	}
	lost := map[string][]netip.Addr{BridgeName(netB): {netip.MustParseAddr("fd00:2::5")}}
	want("after the network with ::/0 left", lost)
	if resp := join(netA, ep1); len(resp.StaticRoutes) != 0 {
		t.Errorf("a container routed by advertisements got a static ::/0 again: %+v", resp)
	}
	want("after it came back", map[string][]netip.Addr{
		BridgeName(netA): {netip.MustParseAddr("fd00:1::5")},
		BridgeName(netB): {netip.MustParseAddr("fd00:2::5")},
	})
	r.d = r.reopen(t)
	r.d.cfg.Routers = fr
	fr.targets = nil
	if err := r.d.Reconcile(); err != nil {
		t.Fatal(err)
	}
	want("after a restart", map[string][]netip.Addr{
		BridgeName(netA): {netip.MustParseAddr("fd00:1::5")},
		BridgeName(netB): {netip.MustParseAddr("fd00:2::5")},
	})
	for _, ep := range []string{ep1, ep2, ep3} {
		if err := r.d.Leave("", ep); err != nil {
			t.Fatal(err)
		}
	}
	want("after the container stopped", nil)
	// A new container: the first routed network carries ::/0, nobody
	// advertises; a current engine's network never does.
	mustEndpoint(t, r, "dddd", ep4, "fd00:4::5/112")
	join("dddd", ep4)
	if resp := join(netB, ep2); len(resp.StaticRoutes) != 1 {
		t.Errorf("first routed network of a new container: %+v", resp)
	}
	if err := r.d.Leave(netB, ep2); err != nil {
		t.Fatal(err)
	}
	want("current engine's network", nil)
}

// TestCreateEndpointRefusesHeldAddresses: the engine may hand out an
// address another endpoint (of any v6bridge network) or a gateway holds
// (it only prevents this when our IPAM is used); both are refused, naming
// the holder, and nothing is created.
func TestCreateEndpointRefusesHeldAddresses(t *testing.T) {
	r := newRig(t)
	mustNetwork(t, r, netA, "fd00:1::/112", nil)
	mustNetwork(t, r, netB, "fd00:2::/112", nil)
	mustEndpoint(t, r, netA, ep1, "fd00:1::2/112")
	tests := []struct {
		name, network, addr, want string
	}{
		{"another endpoint's", netA, "fd00:1::2/112", "held by endpoint " + short(ep1, 12)},
		{"the gateway", netA, "fd00:1::1/112", "is the gateway of network " + short(netA, 12)},
		{"outside the subnet (another network's)", netB, "fd00:1::2/112", "outside subnet"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			veths := len(r.links.veths)
			_, err := r.d.CreateEndpoint(CreateEndpointRequest{NetworkID: tt.network, EndpointID: ep2, AddressIPv6: netip.MustParsePrefix(tt.addr)})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
			if _, ok := r.d.endpoints[ep2]; ok || len(r.links.veths) != veths {
				t.Errorf("a refused endpoint was created")
			}
		})
	}
}

// TestVethNamesWholeID: ids that share their first characters get
// different veth names within the kernel's 15 bytes, and a taken name is
// refused rather than handed to EnsureVeth.
func TestVethNamesWholeID(t *testing.T) {
	a, b := strings.Repeat("1", 64), strings.Repeat("1", 63)+"2"
	ha, pa := VethNames(a)
	hb, pb := VethNames(b)
	if ha == hb || pa == pb {
		t.Errorf("ids differing in the last character share veth names %s/%s", ha, pa)
	}
	for _, n := range []string{ha, pa, hb, pb} {
		if len(n) > 15 {
			t.Errorf("%s is %d bytes, over the kernel's 15", n, len(n))
		}
	}
	r := newRig(t)
	mustNetwork(t, r, netA, "fd00:1::/112", nil)
	mustEndpoint(t, r, netA, ep1, "fd00:1::2/112")
	// A record whose veth name equals the one ep2 would get (a hash
	// collision, or a record of an older version).
	h2, _ := VethNames(ep2)
	r.d.endpoints[ep1].HostVeth = h2
	if _, err := r.d.CreateEndpoint(CreateEndpointRequest{NetworkID: netA, EndpointID: ep2, AddressIPv6: netip.MustParsePrefix("fd00:1::3/112")}); err == nil || !strings.Contains(err.Error(), "is taken by endpoint") {
		t.Errorf("err = %v, want the veth name refused", err)
	}
}

type fakeForwarder struct {
	fs  []portfwd.Forward
	err error
}

func (f *fakeForwarder) Set(fs []portfwd.Forward) error {
	if f.err != nil {
		return f.err
	}
	f.fs = fs
	return nil
}

// TestLoopbackPortsAreForwardedNotFirewalled: -p [::1]:5432:80 goes to the
// proxy, towards the container's target address (which moves when a nat
// network joins), never to the firewall; a port the proxy cannot bind
// fails the join and leaves nothing published.
func TestLoopbackPortsAreForwardedNotFirewalled(t *testing.T) {
	r := newRig(t)
	fp := r.px
	mustNetwork(t, r, netA, "2001:db8:1234:a1:1::/112", nil)
	mustNetwork(t, r, netB, "fd00:2::/112", nil)
	mustEndpoint(t, r, netA, ep1, "2001:db8:1234:a1:1::5/112")
	mustEndpoint(t, r, netB, ep2, "fd00:2::5/112")
	ports := append(portmap("::1", 5432, 80), portmap("", 8081, 80)...)
	if _, err := r.d.Join(JoinRequest{NetworkID: netA, EndpointID: ep1, SandboxKey: "sb", Ports: ports}); err != nil {
		t.Fatal(err)
	}
	want := func(what, to string) {
		t.Helper()
		w := []portfwd.Forward{{Proto: netspec.ProtoTCP, Listen: netip.MustParseAddrPort("[::1]:5432"), To: netip.MustParseAddrPort(to)}}
		if diff := cmp.Diff(w, fp.fs, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
			t.Errorf("%s: forwards (-want +got):\n%s", what, diff)
		}
		for _, n := range r.fw.last.Networks {
			for _, e := range n.Endpoints {
				for _, m := range e.Ports {
					if m.HostAddr.IsLoopback() {
						t.Errorf("%s: the firewall publishes %+v", what, m)
					}
				}
			}
		}
	}
	want("public only", "[2001:db8:1234:a1:1::5]:80")
	if _, err := r.d.Join(JoinRequest{NetworkID: netB, EndpointID: ep2, SandboxKey: "sb"}); err != nil {
		t.Fatal(err)
	}
	want("a nat network joined", "[fd00:2::5]:80")
	if err := r.d.Leave(netB, ep2); err != nil {
		t.Fatal(err)
	}
	if err := r.d.Leave(netA, ep1); err != nil {
		t.Fatal(err)
	}
	if len(fp.fs) != 0 {
		t.Errorf("forwards after the container left: %v", fp.fs)
	}
	fp.err = errors.New("forward tcp [::1]:5432: address already in use")
	_, err := r.d.Join(JoinRequest{NetworkID: netA, EndpointID: ep1, SandboxKey: "sb2", Ports: ports})
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("join with the port taken: %v", err)
	}
	if r.d.endpoints[ep1].Joined || r.d.pub.sandboxes["sb2"] != nil || len(r.store.sandboxes) != 0 {
		t.Errorf("the failed join left the endpoint joined or publishing: %+v", r.d.endpoints[ep1])
	}
}
