package api

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/v6bridge/v6bridge/driver"
	"github.com/v6bridge/v6bridge/ipam"
)

// calls records every call of the driver and the IPAM, as "Method arg...",
// so a route test sees which method a route reached and with what.
type calls struct {
	log []string
	err error
}

func (c *calls) add(format string, args ...any) { c.log = append(c.log, fmt.Sprintf(format, args...)) }

func (c *calls) GwAllocCheck(req driver.CreateNetworkRequest) (bool, error) {
	c.add("GwAllocCheck %v %v %v", req.Generic, req.EnableIPv6, req.Internal)
	return req.Generic[driver.OptGateway] == driver.GatewayLinkLocal, c.err
}
func (c *calls) CreateNetwork(req driver.CreateNetworkRequest) error {
	c.add("CreateNetwork %s", req.NetworkID)
	return c.err
}
func (c *calls) DeleteNetwork(id string) error { c.add("DeleteNetwork %s", id); return c.err }
func (c *calls) CreateEndpoint(req driver.CreateEndpointRequest) (string, error) {
	c.add("CreateEndpoint %s %s %s", req.NetworkID, req.EndpointID, req.AddressIPv6)
	return "", c.err
}
func (c *calls) DeleteEndpoint(n, e string) error { c.add("DeleteEndpoint %s %s", n, e); return c.err }
func (c *calls) Join(req driver.JoinRequest) (driver.JoinResponse, error) {
	c.add("Join %s %s %s %v", req.NetworkID, req.EndpointID, req.SandboxKey, req.Ports)
	return driver.JoinResponse{SrcName: "v6c1", DstPrefix: "eth"}, c.err
}
func (c *calls) Leave(n, e string) error { c.add("Leave %s %s", n, e); return c.err }
func (c *calls) ProgramExternalConnectivity(n, e string, ports []driver.PortRequest) error {
	c.add("ProgramExternalConnectivity %s %s %v", n, e, ports)
	return c.err
}
func (c *calls) EndpointInfo(n, e string) map[string]string {
	c.add("EndpointInfo %s %s", n, e)
	return map[string]string{}
}
func (c *calls) RequestPool(req ipam.PoolRequest) (ipam.Pool, error) {
	c.add("RequestPool %s %v %v", req.Pool, req.V6, req.Options)
	return ipam.Pool{ID: "pool1", Prefix: netip.MustParsePrefix("fd00:1::/112")}, c.err
}
func (c *calls) ReleasePool(id string) error { c.add("ReleasePool %s", id); return c.err }
func (c *calls) RequestAddress(poolID, addr string, opts ipam.AddressOptions) (netip.Prefix, error) {
	c.add("RequestAddress %s %s %+v", poolID, addr, opts)
	return netip.MustParsePrefix("fd00:1::5/112"), c.err
}
func (c *calls) ReleaseAddress(poolID, addr string) error {
	c.add("ReleaseAddress %s %s", poolID, addr)
	return c.err
}

// TestRoutesReachTheirMethods sends every route of both APIs the JSON an
// engine sends and checks which method it reached, with which arguments,
// and that an error of that method reaches the engine: a route wired to
// the wrong method (ReleasePool to ReleaseAddress, Leave to
// DeleteEndpoint) fails here.
func TestRoutesReachTheirMethods(t *testing.T) {
	tests := []struct {
		route, body string
		want        []string // nil: answered by the API itself
	}{
		{"/NetworkDriver.CreateNetwork", `{"NetworkID":"n1","Options":{"com.docker.network.enable_ipv6":true},"IPv6Data":[{"Pool":"fd00:1::/112"}]}`, []string{"CreateNetwork n1"}},
		{"/NetworkDriver.GwAllocCheck", `{"Options":{"com.docker.network.enable_ipv6":true,"com.docker.network.enable_ipv4":false,"com.docker.network.generic":{"v6bridge.gateway":"link-local"}}}`,
			[]string{"GwAllocCheck map[v6bridge.gateway:link-local] true false"}},
		{"/NetworkDriver.DeleteNetwork", `{"NetworkID":"n1"}`, []string{"DeleteNetwork n1"}},
		{"/NetworkDriver.CreateEndpoint", `{"NetworkID":"n1","EndpointID":"e1","Interface":{"AddressIPv6":"fd00:1::5/112"}}`, []string{"CreateEndpoint n1 e1 fd00:1::5/112"}},
		{"/NetworkDriver.DeleteEndpoint", `{"NetworkID":"n1","EndpointID":"e1"}`, []string{"DeleteEndpoint n1 e1"}},
		{"/NetworkDriver.EndpointOperInfo", `{"NetworkID":"n1","EndpointID":"e1"}`, []string{"EndpointInfo n1 e1"}},
		{"/NetworkDriver.Join", `{"NetworkID":"n1","EndpointID":"e1","SandboxKey":"/sb","Options":{"com.docker.network.portmap":[{"Proto":6,"Port":80,"HostPort":8081,"HostPortEnd":8081}]}}`,
			[]string{"Join n1 e1 /sb [{6 invalid IP 8081 8081 80}]"}},
		{"/NetworkDriver.Leave", `{"NetworkID":"n1","EndpointID":"e1"}`, []string{"Leave n1 e1"}},
		{"/NetworkDriver.ProgramExternalConnectivity", `{"NetworkID":"n1","EndpointID":"e1","Options":{"com.docker.network.portmap":[{"Proto":17,"Port":53,"HostPort":0}]}}`,
			[]string{"ProgramExternalConnectivity n1 e1 [{17 invalid IP 0 0 53}]"}},
		{"/NetworkDriver.RevokeExternalConnectivity", `{"NetworkID":"n1","EndpointID":"e1"}`, nil},
		{"/NetworkDriver.DiscoverNew", `{"DiscoveryType":1,"DiscoveryData":{}}`, nil},
		{"/NetworkDriver.DiscoverDelete", `{"DiscoveryType":1,"DiscoveryData":{}}`, nil},
		{"/NetworkDriver.AllocateNetwork", `{"NetworkID":"n1","Options":{}}`, nil},
		{"/NetworkDriver.FreeNetwork", `{"NetworkID":"n1"}`, nil},
		{"/IpamDriver.RequestPool", `{"AddressSpace":"v6bridge","Pool":"fd00:1::/112","Options":{"v6bridge.mode":"nat"},"V6":true}`, []string{"RequestPool fd00:1::/112 true map[v6bridge.mode:nat]"}},
		{"/IpamDriver.ReleasePool", `{"PoolID":"pool1"}`, []string{"ReleasePool pool1"}},
		{"/IpamDriver.RequestAddress", `{"PoolID":"pool1","Address":"fd00:1::5","Options":{"com.docker.network.endpoint.name":"web"}}`,
			[]string{"RequestAddress pool1 fd00:1::5 {Gateway:false Name:web}"}},
		{"/IpamDriver.RequestAddress", `{"PoolID":"pool1","Address":"","Options":{"RequestAddressType":"com.docker.network.gateway"}}`,
			[]string{"RequestAddress pool1  {Gateway:true Name:}"}},
		{"/IpamDriver.ReleaseAddress", `{"PoolID":"pool1","Address":"fd00:1::5"}`, []string{"ReleaseAddress pool1 fd00:1::5"}},
	}
	for _, tt := range tests {
		t.Run(tt.route, func(t *testing.T) {
			c := &calls{}
			call := serve(t, c, c)
			code, out := call(tt.route, tt.body)
			if code != 200 {
				t.Fatalf("code %d: %v", code, out)
			}
			if diff := cmp.Diff(tt.want, c.log); diff != "" {
				t.Errorf("calls (-want +got):\n%s", diff)
			}
			if tt.want == nil || tt.route == "/NetworkDriver.EndpointOperInfo" {
				return
			}
			// The method's error reaches the engine, in both fields.
			c = &calls{err: fmt.Errorf("boom")}
			call = serve(t, c, c)
			code, out = call(tt.route, tt.body)
			if code == 200 || out["Err"] != "boom" || out["Error"] != "boom" {
				t.Errorf("failing method: code %d, answer %v; want an error answer carrying %q", code, out, "boom")
			}
		})
	}
}
