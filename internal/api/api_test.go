package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/sirupsen/logrus"

	"github.com/v6bridge/v6bridge/driver"
	"github.com/v6bridge/v6bridge/ipam"
)

// recorder is a Network that records what the API decoded.
type recorder struct {
	check      driver.CreateNetworkRequest
	create     driver.CreateNetworkRequest
	ep         driver.CreateEndpointRequest
	join       driver.JoinRequest
	programmed []driver.PortRequest
	deleted    []string
	err        error
}

func (r *recorder) GwAllocCheck(req driver.CreateNetworkRequest) (bool, error) {
	r.check = req
	return req.Generic[driver.OptGateway] == driver.GatewayLinkLocal, r.err
}
func (r *recorder) CreateNetwork(req driver.CreateNetworkRequest) error { r.create = req; return r.err }
func (r *recorder) DeleteNetwork(id string) error {
	r.deleted = append(r.deleted, "net "+id)
	return r.err
}
func (r *recorder) CreateEndpoint(req driver.CreateEndpointRequest) (string, error) {
	r.ep = req
	return "02:00:00:00:00:01", r.err
}
func (r *recorder) DeleteEndpoint(n, e string) error {
	r.deleted = append(r.deleted, "ep "+e)
	return r.err
}
func (r *recorder) Join(req driver.JoinRequest) (driver.JoinResponse, error) {
	r.join = req
	return driver.JoinResponse{SrcName: "v6c1", DstPrefix: "eth", GatewayIPv6: netip.MustParseAddr("fd00:1::1"),
		StaticRoutes: []driver.StaticRoute{{Destination: netip.MustParsePrefix("::/0"), NextHop: netip.MustParseAddr("fd00:1::1")}}}, r.err
}
func (r *recorder) Leave(n, e string) error { return r.err }
func (r *recorder) ProgramExternalConnectivity(n, e string, ports []driver.PortRequest) error {
	r.programmed = ports
	return r.err
}
func (r *recorder) EndpointInfo(n, e string) map[string]string { return map[string]string{"k": "v"} }

// serve starts the handler on a unix socket and returns a client for it.
func serve(t *testing.T, nw Network, im IPAM) func(path, body string) (int, map[string]any) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "p.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetLevel(logrus.PanicLevel)
	h := NewHandler(nw, im, func() any { return map[string]string{"ok": "yes"} }, log)
	go h.Serve(l)
	t.Cleanup(func() { l.Close() })
	c := http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return net.Dial("unix", sock)
	}}}
	return func(path, body string) (int, map[string]any) {
		t.Helper()
		resp, err := c.Post("http://plugin"+path, "application/json", bytes.NewBufferString(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil && resp.StatusCode != http.StatusNotFound {
			t.Fatalf("%s: decode: %v", path, err)
		}
		return resp.StatusCode, out
	}
}

func newIPAM(t *testing.T) *ipam.IPAM {
	t.Helper()
	im, err := ipam.New(ipam.Config{StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return im
}

func TestActivateAndCapabilities(t *testing.T) {
	call := serve(t, &recorder{}, newIPAM(t))
	_, act := call("/Plugin.Activate", "")
	if diff := cmp.Diff(map[string]any{"Implements": []any{"NetworkDriver", "IpamDriver"}}, act); diff != "" {
		t.Errorf("activate (-want +got):\n%s", diff)
	}
	_, caps := call("/NetworkDriver.GetCapabilities", "")
	if caps["Scope"] != "local" || caps["ConnectivityScope"] != "local" || caps["GwAllocChecker"] != true {
		t.Errorf("network caps = %v", caps)
	}
	_, spaces := call("/IpamDriver.GetDefaultAddressSpaces", "")
	if spaces["LocalDefaultAddressSpace"] != AddressSpace || spaces["GlobalDefaultAddressSpace"] != AddressSpace {
		t.Errorf("spaces = %v", spaces)
	}
	if code, _ := call("/v6bridge.Status", "{}"); code != 200 {
		t.Errorf("status code %d", code)
	}
}

// The JSON below is what engine 29 sends (see the plugin API notes).
func TestCreateNetworkDecodesEngineJSON(t *testing.T) {
	rec := &recorder{}
	call := serve(t, rec, newIPAM(t))
	body := `{"NetworkID":"n1","Options":{"com.docker.network.enable_ipv4":false,"com.docker.network.enable_ipv6":true,
	 "com.docker.network.generic":{"v6bridge.mode":"nat","com.docker.network.driver.mtu":"1400"}},
	 "IPv4Data":[],"IPv6Data":[{"AddressSpace":"v6bridge","Pool":"fd12:3456:789a:8101:1::/112","Gateway":"fd12:3456:789a:8101:1::1/112","AuxAddresses":{}}]}`
	if code, out := call("/NetworkDriver.CreateNetwork", body); code != 200 {
		t.Fatalf("code %d: %v", code, out)
	}
	f := false
	want := driver.CreateNetworkRequest{
		NetworkID: "n1", Generic: map[string]string{"v6bridge.mode": "nat", "v6bridge.mtu": "1400"}, // Docker's MTU key is v6bridge's
		EnableIPv6: true, EnableIPv4: &f,
		IPv6: []driver.PoolData{{Pool: netip.MustParsePrefix("fd12:3456:789a:8101:1::/112"), Gateway: netip.MustParsePrefix("fd12:3456:789a:8101:1::1/112")}},
	}
	if diff := cmp.Diff(want, rec.create, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("decoded (-want +got):\n%s", diff)
	}
	// Engine 20.10: no enable_ipv4 key, an IPv4 placeholder pool.
	body = `{"NetworkID":"n2","Options":{"com.docker.network.enable_ipv6":true,"com.docker.network.generic":{}},
	 "IPv4Data":[{"AddressSpace":"v6bridge","Pool":"169.254.0.0/16","Gateway":"169.254.0.1/16"}],
	 "IPv6Data":[{"AddressSpace":"v6bridge","Pool":"fd00:1::/112","Gateway":"fd00:1::1/112"}]}`
	call("/NetworkDriver.CreateNetwork", body)
	if rec.create.EnableIPv4 != nil || len(rec.create.IPv4) != 1 {
		t.Errorf("legacy decode = %+v", rec.create)
	}
}

// GwAllocCheck as engine 29 sends it: CreateNetwork's options, no pools.
func TestGwAllocCheckWire(t *testing.T) {
	rec := &recorder{}
	call := serve(t, rec, newIPAM(t))
	for _, tt := range []struct {
		generic  string
		skipIPv6 bool
	}{
		{`{"v6bridge.gateway":"link-local","com.docker.network.driver.mtu":"1400"}`, true},
		{`{}`, false},
	} {
		body := `{"Options":{"com.docker.network.enable_ipv4":false,"com.docker.network.enable_ipv6":true,"com.docker.network.internal":false,"com.docker.network.generic":` + tt.generic + `}}`
		code, out := call("/NetworkDriver.GwAllocCheck", body)
		if code != 200 {
			t.Fatalf("code %d: %v", code, out)
		}
		if diff := cmp.Diff(map[string]any{"SkipIPv4": false, "SkipIPv6": tt.skipIPv6}, out); diff != "" {
			t.Errorf("%s: answer (-want +got):\n%s", tt.generic, diff)
		}
		if !rec.check.EnableIPv6 || rec.check.EnableIPv4 == nil || *rec.check.EnableIPv4 {
			t.Errorf("%s: decoded %+v", tt.generic, rec.check)
		}
	}
	if rec.check.Generic == nil {
		t.Error("generic options not decoded")
	}
	code, out := call("/NetworkDriver.GwAllocCheck", `{"Options":{"com.docker.network.generic":"oops"}}`)
	if code == 200 || !strings.Contains(fmt.Sprint(out["Err"]), "com.docker.network.generic") {
		t.Errorf("bad options: code %d, answer %v", code, out)
	}
}

// A connected route (no next hop) goes out as libnetwork's CONNECTED type
// without a NextHop; a routed one as NEXTHOP.
func TestJoinToWireRouteTypes(t *testing.T) {
	out := JoinToWire(driver.JoinResponse{GatewayIPv6: netip.MustParseAddr("fe80::1"), StaticRoutes: []driver.StaticRoute{
		{Destination: netip.MustParsePrefix("fe80::1/128")},
		{Destination: netip.MustParsePrefix("::/0"), NextHop: netip.MustParseAddr("fd00:1::1")},
	}})
	if out.GatewayIPv6 != "fe80::1" {
		t.Errorf("GatewayIPv6 = %q", out.GatewayIPv6)
	}
	var got []string
	for _, r := range out.StaticRoutes {
		got = append(got, fmt.Sprintf("%s %d %q", r.Destination, r.RouteType, r.NextHop))
	}
	if diff := cmp.Diff([]string{`fe80::1/128 1 ""`, `::/0 0 "fd00:1::1"`}, got); diff != "" {
		t.Errorf("routes (-want +got):\n%s", diff)
	}
}

func TestErrorsTravelInBothFields(t *testing.T) {
	rec := &recorder{err: errBoom{}}
	call := serve(t, rec, newIPAM(t))
	code, out := call("/NetworkDriver.CreateNetwork", `{"NetworkID":"n1","Options":{}}`)
	if code == 200 || out["Err"] != "boom" || out["Error"] != "boom" {
		t.Errorf("code %d out %v", code, out)
	}
	code, out = call("/IpamDriver.RequestPool", `{"AddressSpace":"v6bridge","Pool":"10.0.0.0/24","V6":true}`)
	if code == 200 || !strings.Contains(out["Error"].(string), "10.0.0.0/24") {
		t.Errorf("ipam error: code %d out %v", code, out)
	}
	if code, _ := call("/NetworkDriver.Nope", "{}"); code != 404 {
		t.Errorf("unknown method code = %d, want 404 (the engine treats 404 as not implemented)", code)
	}
}

type errBoom struct{}

func (errBoom) Error() string { return "boom" }

func TestEndpointJoinWire(t *testing.T) {
	rec := &recorder{}
	call := serve(t, rec, newIPAM(t))
	_, out := call("/NetworkDriver.CreateEndpoint", `{"NetworkID":"n1","EndpointID":"e1","Interface":{"Address":"","AddressIPv6":"fd00:1::5/112","MacAddress":""},"Options":{}}`)
	if diff := cmp.Diff(map[string]any{"Interface": map[string]any{"Address": "", "AddressIPv6": "", "MacAddress": "02:00:00:00:00:01"}}, out); diff != "" {
		t.Errorf("create endpoint answer (-want +got):\n%s", diff)
	}
	if rec.ep.AddressIPv6.String() != "fd00:1::5/112" {
		t.Errorf("decoded endpoint = %+v", rec.ep)
	}
	_, out = call("/NetworkDriver.Join", `{"NetworkID":"n1","EndpointID":"e1","SandboxKey":"/var/run/docker/netns/x","Options":{"com.docker.network.portmap":[{"Proto":6,"IP":"","Port":80,"HostIP":"","HostPort":8081,"HostPortEnd":8081}]}}`)
	if out["GatewayIPv6"] != "fd00:1::1" {
		t.Errorf("GatewayIPv6 = %v, want a bare address", out["GatewayIPv6"])
	}
	if out["DisableGatewayService"] != true {
		t.Error("DisableGatewayService not set")
	}
	routes := out["StaticRoutes"].([]any)
	if r := routes[0].(map[string]any); r["Destination"] != "::/0" || r["NextHop"] != "fd00:1::1" || r["RouteType"] != float64(0) {
		t.Errorf("route = %v", r)
	}
	if in := out["InterfaceName"].(map[string]any); in["SrcName"] != "v6c1" || in["DstPrefix"] != "eth" {
		t.Errorf("interface = %v", in)
	}
	if want := []driver.PortRequest{{Proto: 6, HostFirst: 8081, HostLast: 8081, ContainerPort: 80}}; !reflect.DeepEqual(rec.join.Ports, want) {
		t.Errorf("join ports = %+v, want %+v", rec.join.Ports, want)
	}
	_, info := call("/NetworkDriver.EndpointOperInfo", `{"NetworkID":"n1","EndpointID":"e1"}`)
	if info["Value"].(map[string]any)["k"] != "v" {
		t.Errorf("info = %v", info)
	}
}

// A real IPAM behind the wire: pool, gateway, address, release — and
// ReleasePool must reach ReleasePool (a public plugin once wired it to
// ReleaseAddress).
func TestIPAMRoutes(t *testing.T) {
	im := newIPAM(t)
	call := serve(t, &recorder{}, im)
	_, pool := call("/IpamDriver.RequestPool", `{"AddressSpace":"v6bridge","Pool":"fd00:7::/112","SubPool":"","Options":{},"V6":true}`)
	id, _ := pool["PoolID"].(string)
	if pool["Pool"] != "fd00:7::/112" || id == "" {
		t.Fatalf("pool = %v", pool)
	}
	_, gw := call("/IpamDriver.RequestAddress", `{"PoolID":"`+id+`","Address":"","Options":{"RequestAddressType":"com.docker.network.gateway"}}`)
	if gw["Address"] != "fd00:7::1/112" {
		t.Errorf("gateway = %v", gw)
	}
	_, a := call("/IpamDriver.RequestAddress", `{"PoolID":"`+id+`","Address":"fd00:7::ab53","Options":null}`)
	if a["Address"] != "fd00:7::ab53/112" {
		t.Errorf("static = %v", a)
	}
	if code, _ := call("/IpamDriver.ReleaseAddress", `{"PoolID":"`+id+`","Address":"fd00:7::ab53"}`); code != 200 {
		t.Error("release address failed")
	}
	if code, _ := call("/IpamDriver.ReleasePool", `{"PoolID":"`+id+`"}`); code != 200 {
		t.Error("release pool failed")
	}
	if len(im.Pools()) != 0 {
		t.Errorf("pool not released: %+v", im.Pools())
	}
	_, v4 := call("/IpamDriver.RequestPool", `{"AddressSpace":"v6bridge","Pool":"","V6":false}`)
	if v4["Pool"] != "169.254.4.0/22" {
		t.Errorf("placeholder = %v", v4)
	}
}

func TestPortsFromWire(t *testing.T) {
	mk := func(bindings string) map[string]any {
		var v any
		if err := json.Unmarshal([]byte(bindings), &v); err != nil {
			t.Fatal(err)
		}
		return map[string]any{"com.docker.network.portmap": v}
	}
	tests := []struct {
		name    string
		opts    map[string]any
		want    []driver.PortRequest
		skipped int
		err     string
	}{
		{"none", nil, nil, 0, ""},
		{"one", mk(`[{"Proto":6,"Port":80,"HostIP":"","HostPort":8081,"HostPortEnd":8081}]`),
			[]driver.PortRequest{{Proto: 6, HostFirst: 8081, HostLast: 8081, ContainerPort: 80}}, 0, ""},
		{"pick one", mk(`[{"Proto":17,"Port":53,"HostIP":"::","HostPort":0,"HostPortEnd":0}]`),
			[]driver.PortRequest{{Proto: 17, ContainerPort: 53}}, 0, ""},
		{"loopback", mk(`[{"Proto":6,"Port":5432,"HostIP":"::1","HostPort":5432,"HostPortEnd":5432}]`),
			[]driver.PortRequest{{Proto: 6, HostAddr: netip.IPv6Loopback(), HostFirst: 5432, HostLast: 5432, ContainerPort: 5432}}, 0, ""},
		{"ipv4 skipped", mk(`[{"Proto":6,"Port":80,"HostIP":"0.0.0.0","HostPort":80},{"Proto":6,"Port":80,"HostIP":"192.0.2.1","HostPort":80}]`),
			[]driver.PortRequest{{Proto: 6, HostFirst: 80, HostLast: 80, ContainerPort: 80}}, 1, ""},
		{"bad proto", mk(`[{"Proto":1,"Port":80}]`), nil, 0, "accepted are tcp, udp, sctp"},
		{"bad host", mk(`[{"Proto":6,"Port":80,"HostIP":"nope"}]`), nil, 0, "accepted is an IPv6 address"},
		{"not a list", mk(`{"Proto":6}`), nil, 0, "accepted is a list of port bindings"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, skipped, err := PortsFromWire(tt.opts)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) || len(skipped) != tt.skipped {
				t.Errorf("got %+v skipped %v, want %+v and %d skipped", got, skipped, tt.want, tt.skipped)
			}
		})
	}
}

// TestCreateNetworkRefusesWrongTypes: an option of the wrong JSON type is
// refused with its name, never read as absent (an --internal request must
// not become a nat network).
func TestCreateNetworkRefusesWrongTypes(t *testing.T) {
	rec := &recorder{}
	call := serve(t, rec, newIPAM(t))
	pools := `"IPv6Data":[{"AddressSpace":"v6bridge","Pool":"fd00:1::/112","Gateway":"fd00:1::1/112"}]`
	tests := []struct {
		name, options, want string
	}{
		{"generic is a string", `"com.docker.network.generic":"v6bridge.mode=internal"`, "com.docker.network.generic: got a JSON string"},
		{"generic is an array", `"com.docker.network.generic":["x"]`, "com.docker.network.generic: got a JSON array"},
		{"a driver option is an object", `"com.docker.network.generic":{"v6bridge.mode":{"x":1}}`, "driver option v6bridge.mode: got a JSON object"},
		{"internal is a number", `"com.docker.network.internal":1`, "com.docker.network.internal: got a JSON number"},
		{"internal is a word", `"com.docker.network.internal":"yes"`, `com.docker.network.internal: got "yes"`},
		{"enable_ipv6 is an object", `"com.docker.network.enable_ipv6":{}`, "com.docker.network.enable_ipv6: got a JSON object"},
		{"enable_ipv4 is a number", `"com.docker.network.enable_ipv4":0`, "com.docker.network.enable_ipv4: got a JSON number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec.create = driver.CreateNetworkRequest{}
			code, out := call("/NetworkDriver.CreateNetwork", `{"NetworkID":"n1","Options":{`+tt.options+`},`+pools+`}`)
			if code == 200 || !strings.Contains(out["Err"].(string), tt.want) {
				t.Fatalf("code %d, answer %v; want an error containing %q", code, out, tt.want)
			}
			if rec.create.NetworkID != "" {
				t.Errorf("the driver was called with %+v", rec.create)
			}
		})
	}
	// The strings "true"/"false" stay accepted.
	if code, out := call("/NetworkDriver.CreateNetwork", `{"NetworkID":"n1","Options":{"com.docker.network.internal":"true","com.docker.network.enable_ipv6":true},`+pools+`}`); code != 200 || !rec.create.Internal {
		t.Errorf("internal \"true\": code %d %v, decoded %+v", code, out, rec.create)
	}
}

// TestRequestBodyLimit: a body over MaxRequestBytes is refused without
// reading it all.
func TestRequestBodyLimit(t *testing.T) {
	call := serve(t, &recorder{}, newIPAM(t))
	body := `{"NetworkID":"` + strings.Repeat("a", MaxRequestBytes+1) + `"}`
	code, out := call("/NetworkDriver.CreateNetwork", body)
	if code == 200 || !strings.Contains(out["Err"].(string), "over 4194304 bytes") {
		t.Errorf("code %d, answer %.200v; want the body refused as too large", code, out)
	}
}

// TestDockerDriverOptions: Docker's own generic keys become v6bridge's in
// the API, and the two given with different values are refused.
func TestDockerDriverOptions(t *testing.T) {
	g := map[string]string{"com.docker.network.host_ipv6": "2001:db8::1", "v6bridge.mtu": "1400", "com.docker.network.driver.mtu": "1400"}
	if err := dockerDriverOptions(g); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"v6bridge.host_ipv6": "2001:db8::1", "v6bridge.mtu": "1400"}, g); diff != "" {
		t.Errorf("options (-want +got):\n%s", diff)
	}
	err := dockerDriverOptions(map[string]string{"v6bridge.mtu": "1400", "com.docker.network.driver.mtu": "9000"})
	if err == nil || !strings.Contains(err.Error(), "com.docker.network.driver.mtu") || !strings.Contains(err.Error(), "v6bridge.mtu") {
		t.Errorf("conflicting MTUs: %v", err)
	}
}
