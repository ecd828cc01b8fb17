package driver

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/v6bridge/v6bridge/netspec"
)

// llReq is CreateNetwork of a public network with a link-local gateway as
// an engine >= 28 sends it after GwAllocCheck: no gateway in the pool.
func llReq(id, subnet string) CreateNetworkRequest {
	r := createReq(id, subnet, map[string]string{OptGateway: GatewayLinkLocal})
	r.IPv6[0].Gateway = netip.Prefix{}
	return r
}

func TestGwAllocCheck(t *testing.T) {
	d := newRig(t).d
	for _, tt := range []struct {
		opts map[string]string
		want bool
		err  string
	}{
		{nil, false, ""},
		{map[string]string{OptGateway: "subnet"}, false, ""},
		{map[string]string{OptGateway: "link-local"}, true, ""},
		{map[string]string{OptGateway: "Link-Local", OptMode: "routed"}, true, ""},
		{map[string]string{OptGateway: "fe80::1"}, false, "accepted are subnet (the default: the subnet's first address) and link-local"},
		{map[string]string{OptGateway: "link-local", OptMode: "nat"}, false, "applies only to public and routed networks"},
		{map[string]string{"v6bridge.colour": "blue"}, false, "unknown network option"},
	} {
		got, err := d.GwAllocCheck(CreateNetworkRequest{Generic: tt.opts, EnableIPv6: true, EnableIPv4: truep()})
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%v: err = %v, want it to contain %q", tt.opts, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%v: skip = %v, %v; want %v", tt.opts, got, err, tt.want)
		}
	}
	if _, err := d.GwAllocCheck(CreateNetworkRequest{Generic: map[string]string{OptGateway: "link-local"}, Internal: true}); err == nil ||
		!strings.Contains(err.Error(), "applies only to public and routed networks") {
		t.Errorf("internal: err = %v", err)
	}
}

func TestLinkLocalGatewayNetwork(t *testing.T) {
	r := newRig(t)
	const subnet = "2001:db8:1234:a1:1::/112"
	if err := r.d.CreateNetwork(llReq(netA, subnet)); err != nil {
		t.Fatal(err)
	}
	n := r.d.networks[netA]
	if n.Gateway != LinkLocalGateway || !n.LinkLocalGateway() || n.Mode != netspec.ModePublic {
		t.Errorf("network = %+v", n)
	}
	want := netspec.BridgeSpec{Name: n.Bridge, MTU: 1500, Gateway: netip.MustParsePrefix("fe80::1/64"), Subnet: netip.MustParsePrefix(subnet)}
	if diff := cmp.Diff(want, r.links.bridges[n.Bridge], cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("bridge spec (-want +got):\n%s", diff)
	}
	if fn := r.fw.last.Networks[0]; fn.Gateway.IsValid() || fn.Subnet.String() != subnet {
		t.Errorf("firewall network = %+v, want no gateway", fn)
	}
	// The subnet's first address is a container's.
	mustEndpoint(t, r, netA, ep1, "2001:db8:1234:a1:1::1/112")
	resp, err := r.d.Join(JoinRequest{NetworkID: netA, EndpointID: ep1, SandboxKey: "sb"})
	if err != nil {
		t.Fatal(err)
	}
	wantResp := JoinResponse{SrcName: r.d.endpoints[ep1].PeerVeth, DstPrefix: "eth", GatewayIPv6: LinkLocalGateway,
		StaticRoutes: []StaticRoute{{Destination: netip.MustParsePrefix("fe80::1/128")}}}
	addrCmp := cmp.Comparer(func(a, b netip.Addr) bool { return a == b })
	prefixCmp := cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })
	if diff := cmp.Diff(wantResp, resp, addrCmp, prefixCmp); diff != "" {
		t.Errorf("join (-want +got):\n%s", diff)
	}
	if got := r.nb.addrs; len(got) != 1 || got[0].String() != "2001:db8:1234:a1:1::1" {
		t.Errorf("ndp targets = %v", got)
	}

	// A plugin restart reads the record back: same bridge, same answer.
	r.d = r.reopen(t)
	if err := r.d.Reconcile(); err != nil {
		t.Fatal(err)
	}
	if got := r.links.bridges[n.Bridge]; got.Gateway != want.Gateway || got.Subnet != want.Subnet {
		t.Errorf("bridge after restart = %+v", got)
	}
	if !r.d.endpoints[ep1].GatewayRoute {
		t.Error("the endpoint's connected route was not persisted")
	}
}

// Each link-local network has a gateway of its own, the lowest free one:
// a container on two of them carries a connected route to each gateway,
// in every join order, so the engine's route lookup of the gateway it
// chose names that network's interface.
func TestLinkLocalGatewayPerNetwork(t *testing.T) {
	for _, order := range [][]string{{ep1, ep2}, {ep2, ep1}} {
		r := newRig(t)
		for _, req := range []CreateNetworkRequest{llReq(netA, "2001:db8:1234:a1:1::/112"), llReq(netB, "2001:db8:1234:a1:2::/112")} {
			if err := r.d.CreateNetwork(req); err != nil {
				t.Fatal(err)
			}
		}
		gws := map[string]netip.Addr{ep1: netip.MustParseAddr("fe80::1"), ep2: netip.MustParseAddr("fe80::2")}
		if a, b := r.d.networks[netA].Gateway, r.d.networks[netB].Gateway; a != gws[ep1] || b != gws[ep2] {
			t.Fatalf("gateways %s, %s; want fe80::1, fe80::2", a, b)
		}
		if got := r.links.bridges[r.d.networks[netB].Bridge].Gateway; got != netip.MustParsePrefix("fe80::2/64") {
			t.Errorf("second bridge's gateway %s", got)
		}
		mustEndpoint(t, r, netA, ep1, "2001:db8:1234:a1:1::5/112")
		mustEndpoint(t, r, netB, ep2, "2001:db8:1234:a1:2::5/112")
		nets := map[string]string{ep1: netA, ep2: netB}
		for _, ep := range order {
			resp, err := r.d.Join(JoinRequest{NetworkID: nets[ep], EndpointID: ep, SandboxKey: "sb"})
			if err != nil {
				t.Fatal(err)
			}
			want := []StaticRoute{{Destination: netip.PrefixFrom(gws[ep], 128)}}
			if resp.GatewayIPv6 != gws[ep] || len(resp.StaticRoutes) != 1 || resp.StaticRoutes[0] != want[0] {
				t.Errorf("join order %v, %s: gateway %s routes %v; want %s, %v", order, ep[:4], resp.GatewayIPv6, resp.StaticRoutes, gws[ep], want)
			}
		}
	}

	// CreateNetwork again keeps the gateway; a freed one is taken again.
	r := newRig(t)
	for _, req := range []CreateNetworkRequest{llReq(netA, "2001:db8:1234:a1:1::/112"), llReq(netB, "2001:db8:1234:a1:2::/112")} {
		if err := r.d.CreateNetwork(req); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.d.DeleteNetwork(netA); err != nil {
		t.Fatal(err)
	}
	if err := r.d.CreateNetwork(llReq(netB, "2001:db8:1234:a1:2::/112")); err != nil || r.d.networks[netB].Gateway != netip.MustParseAddr("fe80::2") {
		t.Errorf("create again: %v, gateway %s; want fe80::2 kept", err, r.d.networks[netB].Gateway)
	}
	if err := r.d.CreateNetwork(llReq(netA, "2001:db8:1234:a1:3::/112")); err != nil || r.d.networks[netA].Gateway != LinkLocalGateway {
		t.Errorf("after the first network left: %v, gateway %s; want fe80::1", err, r.d.networks[netA].Gateway)
	}
}

// Records of older versions gave every link-local network fe80::1: only
// the first joined endpoint of a sandbox gets the connected fe80::1/128
// (a second would fail the join with EEXIST); after it leaves, the next
// join gets it again.
func TestLinkLocalGatewayRouteOncePerSandbox(t *testing.T) {
	r := newRig(t)
	for _, req := range []CreateNetworkRequest{llReq(netA, "2001:db8:1234:a1:1::/112"), llReq(netB, "2001:db8:1234:a1:2::/112")} {
		if err := r.d.CreateNetwork(req); err != nil {
			t.Fatal(err)
		}
	}
	r.d.networks[netB].Gateway = LinkLocalGateway // as an older version recorded it
	mustEndpoint(t, r, netA, ep1, "2001:db8:1234:a1:1::5/112")
	mustEndpoint(t, r, netB, ep2, "2001:db8:1234:a1:2::5/112")
	routes := func(nid, eid string) int {
		t.Helper()
		resp, err := r.d.Join(JoinRequest{NetworkID: nid, EndpointID: eid, SandboxKey: "sb"})
		if err != nil {
			t.Fatal(err)
		}
		if resp.GatewayIPv6 != LinkLocalGateway {
			t.Errorf("join %s: gateway %s", eid[:4], resp.GatewayIPv6)
		}
		return len(resp.StaticRoutes)
	}
	if n := routes(netA, ep1); n != 1 {
		t.Errorf("first join: %d routes, want the connected one", n)
	}
	if n := routes(netB, ep2); n != 0 {
		t.Errorf("second join of the sandbox: %d routes, want none", n)
	}
	if err := r.d.Leave(netA, ep1); err != nil {
		t.Fatal(err)
	}
	if err := r.d.Leave(netB, ep2); err != nil {
		t.Fatal(err)
	}
	if n := routes(netB, ep2); n != 1 {
		t.Errorf("join after the carrier left: %d routes, want the connected one", n)
	}
}

func TestLinkLocalGatewayRefusals(t *testing.T) {
	const global = "2001:db8:1234:a1:1::/112"
	for _, tt := range []struct {
		name string
		req  CreateNetworkRequest
		edit func(*CreateNetworkRequest) // nil: req as made
		want string
	}{
		{"engine before 28", llReq(netA, global), func(r *CreateNetworkRequest) { r.EnableIPv4 = nil },
			"needs Docker >= 28 (API 1.48), and this engine is older"},
		{"a gateway of the subnet", createReq(netA, global, map[string]string{OptGateway: GatewayLinkLocal}), nil,
			"the engine reserved gateway 2001:db8:1234:a1:1::1 of the subnet"},
		{"nat by default", llReq(netA, "fd00:1::/112"), nil, "applies only to public and routed networks, not v6bridge.mode=nat"},
		{"internal", llReq(netA, global), func(r *CreateNetworkRequest) { r.Internal = true },
			"applies only to public and routed networks, not v6bridge.mode=internal"},
		{"bad value", createReq(netA, global, map[string]string{OptGateway: "yes"}), nil,
			`network option v6bridge.gateway="yes": accepted are subnet`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			if tt.edit != nil {
				tt.edit(&tt.req)
			}
			err := r.d.CreateNetwork(tt.req)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
			if len(r.links.ours()) != 0 || len(r.store.networks) != 0 {
				t.Error("a refused network left links or a record")
			}
		})
	}
}
