// Package api is the one package that knows libnetwork's wire format. It
// serves the NetworkDriver and IpamDriver APIs on one socket: it decodes a
// request with go-plugins-helpers' types, calls the driver or the IPAM in
// domain types, and encodes the answer ({"Err": ...} for the network
// driver, {"Error": ...} for the IPAM; both fields are set on an error so
// every engine version reads it).
package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	netapi "github.com/docker/go-plugins-helpers/network"
	"github.com/docker/go-plugins-helpers/sdk"
	"github.com/sirupsen/logrus"

	"github.com/v6bridge/v6bridge/driver"
	"github.com/v6bridge/v6bridge/ipam"
)

// Manifest is the answer to /Plugin.Activate for the legacy (host service)
// plugin discovery. Managed plugins declare the same in config.json.
const Manifest = `{"Implements": ["NetworkDriver", "IpamDriver"]}`

// AddressSpace is the one address space v6bridge's IPAM serves. Local and
// global default are the same name, so the engine (>= 27) does not re-check
// v6bridge's pools against the host's routes in a loop.
const AddressSpace = "v6bridge"

// Network is the network driver as the API needs it.
type Network interface {
	// GwAllocCheck says whether a network of these options (no pools yet)
	// needs no IPv6 gateway address of its subnet.
	GwAllocCheck(req driver.CreateNetworkRequest) (skipIPv6 bool, err error)
	CreateNetwork(req driver.CreateNetworkRequest) error
	DeleteNetwork(id string) error
	CreateEndpoint(req driver.CreateEndpointRequest) (string, error)
	DeleteEndpoint(networkID, endpointID string) error
	Join(req driver.JoinRequest) (driver.JoinResponse, error)
	Leave(networkID, endpointID string) error
	ProgramExternalConnectivity(networkID, endpointID string, ports []driver.PortRequest) error
	EndpointInfo(networkID, endpointID string) map[string]string
}

// IPAM is the IPAM driver as the API needs it.
type IPAM interface {
	RequestPool(req ipam.PoolRequest) (ipam.Pool, error)
	ReleasePool(id string) error
	RequestAddress(poolID, addr string, opts ipam.AddressOptions) (netip.Prefix, error)
	ReleaseAddress(poolID, addr string) error
}

// StatusFunc returns the read-only status document served at
// /v6bridge.Status.
type StatusFunc func() any

// IPAM option keys and values of libnetwork.
const (
	// optRequestAddressType is the RequestAddress option that says what
	// the address is for; addressTypeGateway: the network's gateway.
	optRequestAddressType = "RequestAddressType"
	addressTypeGateway    = "com.docker.network.gateway"
	// optEndpointName is the RequestAddress option naming the endpoint
	// (engines >= 29 send it).
	optEndpointName = "com.docker.network.endpoint.name"
	// dataGateway is the RequestPool response Data key carrying a pool's
	// gateway (CIDR); libnetwork then does not request one.
	dataGateway = "com.docker.network.gateway"
)

// Engine option keys in CreateNetwork's Options.
const (
	optGeneric    = "com.docker.network.generic"
	optEnableIPv6 = "com.docker.network.enable_ipv6"
	optEnableIPv4 = "com.docker.network.enable_ipv4"
	optInternal   = "com.docker.network.internal"
)

// Static route types of libnetwork: via a next hop, or connected to the
// endpoint's interface.
const (
	routeNextHop   = 0
	routeConnected = 1
)

// MaxRequestBytes bounds a request body: the largest the engine sends (a
// Join with many port bindings) is a few KiB.
const MaxRequestBytes = 4 << 20

// Limits of the socket server: a client that sends its request slowly or
// not at all, or keeps an idle connection, is cut off instead of holding a
// descriptor and memory for ever. Handlers get WriteTimeout to answer
// (a Join waits for the firewall and NDP).
const (
	ReadHeaderTimeout = 10 * time.Second
	ReadTimeout       = 30 * time.Second
	WriteTimeout      = 2 * time.Minute
	IdleTimeout       = 2 * time.Minute
	MaxHeaderBytes    = 64 << 10
)

// Handler serves both APIs (and /Plugin.Activate) on one mux.
type Handler struct {
	mux *http.ServeMux
}

// ServeHTTP serves one request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// HandleFunc adds a route of v6bridge's own (status, gc), with the same
// body limit as the plugin API's.
func (h *Handler) HandleFunc(path string, fn http.HandlerFunc) {
	h.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, MaxRequestBytes)
		fn(w, r)
	})
}

// Serve serves the plugin on l with the server limits above until l is
// closed.
func (h *Handler) Serve(l net.Listener) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
	}
	return srv.Serve(l)
}

// NewHandler returns the plugin's handler with every route of both APIs
// registered on one mux; serve it with its Serve method on a listener.
// Request bodies over MaxRequestBytes are refused.
func NewHandler(nw Network, im IPAM, status StatusFunc, log logrus.FieldLogger, opts ...Option) *Handler {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	h := &Handler{mux: http.NewServeMux()}
	h.mux.HandleFunc("/Plugin.Activate", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", sdk.DefaultContentTypeV1_1)
		fmt.Fprintln(w, Manifest)
	})
	s := &server{nw: nw, im: im, log: log}
	route := func(path string, fn func(w http.ResponseWriter, r *http.Request)) {
		h.mux.HandleFunc(path, observed(o.observe, strings.TrimPrefix(path, "/"), func(w http.ResponseWriter, r *http.Request) {
			log.WithField("route", path).Debug("request")
			r.Body = http.MaxBytesReader(w, r.Body, MaxRequestBytes)
			fn(w, r)
		}))
	}
	empty := func(w http.ResponseWriter, r *http.Request) { sdk.EncodeResponse(w, struct{}{}, false) }

	route("/NetworkDriver.GetCapabilities", func(w http.ResponseWriter, r *http.Request) {
		sdk.EncodeResponse(w, capabilities{Scope: "local", ConnectivityScope: "local", GwAllocChecker: true}, false)
	})
	route("/NetworkDriver.GwAllocCheck", s.gwAllocCheck)
	route("/NetworkDriver.CreateNetwork", s.createNetwork)
	route("/NetworkDriver.DeleteNetwork", s.deleteNetwork)
	route("/NetworkDriver.CreateEndpoint", s.createEndpoint)
	route("/NetworkDriver.DeleteEndpoint", s.deleteEndpoint)
	route("/NetworkDriver.EndpointOperInfo", s.endpointInfo)
	route("/NetworkDriver.Join", s.join)
	route("/NetworkDriver.Leave", s.leave)
	route("/NetworkDriver.ProgramExternalConnectivity", s.programExternal)
	route("/NetworkDriver.RevokeExternalConnectivity", empty)
	route("/NetworkDriver.DiscoverNew", empty)
	route("/NetworkDriver.DiscoverDelete", empty)
	route("/NetworkDriver.AllocateNetwork", func(w http.ResponseWriter, r *http.Request) {
		sdk.EncodeResponse(w, netapi.AllocateNetworkResponse{Options: map[string]string{}}, false)
	})
	route("/NetworkDriver.FreeNetwork", empty)

	route("/IpamDriver.GetCapabilities", func(w http.ResponseWriter, r *http.Request) {
		sdk.EncodeResponse(w, ipamCapabilities{}, false)
	})
	route("/IpamDriver.GetDefaultAddressSpaces", func(w http.ResponseWriter, r *http.Request) {
		sdk.EncodeResponse(w, addressSpaces{LocalDefaultAddressSpace: AddressSpace, GlobalDefaultAddressSpace: AddressSpace}, false)
	})
	route("/IpamDriver.RequestPool", s.requestPool)
	route("/IpamDriver.ReleasePool", s.releasePool)
	route("/IpamDriver.RequestAddress", s.requestAddress)
	route("/IpamDriver.ReleaseAddress", s.releaseAddress)

	route("/v6bridge.Status", func(w http.ResponseWriter, r *http.Request) {
		var doc any = struct{}{}
		if status != nil {
			doc = status()
		}
		sdk.EncodeResponse(w, doc, false)
	})
	return h
}

// capabilities is the network driver's GetCapabilities answer; the
// helpers' type lacks GwAllocChecker, with which engines >= 28 ask
// GwAllocCheck before CreateNetwork (older engines ignore the field).
type capabilities struct {
	Scope             string
	ConnectivityScope string
	GwAllocChecker    bool
}

// gwAllocCheckResponse is GwAllocCheck's answer: whether the engine should
// reserve no gateway address of the network's IPv4 and IPv6 pools.
type gwAllocCheckResponse struct {
	SkipIPv4 bool
	SkipIPv6 bool
}

// ipamCapabilities is the IPAM's GetCapabilities answer; the helpers' type
// lacks RequiresRequestReplay. v6bridge persists its own state, so it needs
// no replay.
type ipamCapabilities struct {
	RequiresMACAddress    bool
	RequiresRequestReplay bool
}

type addressSpaces struct {
	LocalDefaultAddressSpace  string
	GlobalDefaultAddressSpace string
}

// errorResponse carries an error for both APIs.
type errorResponse struct {
	Err   string
	Error string
}

type server struct {
	nw  Network
	im  IPAM
	log logrus.FieldLogger
}

func (s *server) fail(w http.ResponseWriter, route string, err error) {
	s.log.WithField("route", route).WithError(err).Error("request failed")
	sdk.EncodeResponse(w, errorResponse{Err: err.Error(), Error: err.Error()}, true)
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		msg := fmt.Sprintf("decode request: %v", err)
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			msg = fmt.Sprintf("decode request: the body is over %d bytes: accepted are requests up to that size", tooBig.Limit)
		}
		sdk.EncodeResponse(w, errorResponse{Err: msg, Error: msg}, true)
		return false
	}
	return true
}

func (s *server) createNetwork(w http.ResponseWriter, r *http.Request) {
	var req netapi.CreateNetworkRequest
	if !decode(w, r, &req) {
		return
	}
	dreq, err := CreateNetworkFromWire(req)
	if err == nil {
		err = s.nw.CreateNetwork(dreq)
	}
	if err != nil {
		s.fail(w, "CreateNetwork", err)
		return
	}
	sdk.EncodeResponse(w, struct{}{}, false)
}

// gwAllocCheck answers GwAllocCheck, whose Options are CreateNetwork's
// (before the engine has pools).
func (s *server) gwAllocCheck(w http.ResponseWriter, r *http.Request) {
	var req struct{ Options map[string]any }
	if !decode(w, r, &req) {
		return
	}
	dreq, err := CreateNetworkFromWire(netapi.CreateNetworkRequest{Options: req.Options})
	var skip bool
	if err == nil {
		skip, err = s.nw.GwAllocCheck(dreq)
	}
	if err != nil {
		s.fail(w, "GwAllocCheck", err)
		return
	}
	sdk.EncodeResponse(w, gwAllocCheckResponse{SkipIPv6: skip}, false)
}

// CreateNetworkFromWire converts the engine's CreateNetwork request.
func CreateNetworkFromWire(req netapi.CreateNetworkRequest) (driver.CreateNetworkRequest, error) {
	out := driver.CreateNetworkRequest{NetworkID: req.NetworkID, Generic: map[string]string{}}
	if g, ok := req.Options[optGeneric]; ok && g != nil {
		m, ok := g.(map[string]any)
		if !ok {
			return out, fmt.Errorf("option %s: got a JSON %s, accepted is an object of driver options (name: value)", optGeneric, jsonType(g))
		}
		for k, v := range m {
			switch v := v.(type) {
			case string:
				out.Generic[k] = v
			case bool, float64:
				out.Generic[k] = fmt.Sprint(v)
			default:
				return out, fmt.Errorf("driver option %s: got a JSON %s, accepted is a string, number or boolean", k, jsonType(v))
			}
		}
	}
	if err := dockerDriverOptions(out.Generic); err != nil {
		return out, err
	}
	var err error
	if out.EnableIPv6, err = boolOpt(req.Options, optEnableIPv6); err != nil {
		return out, err
	}
	if _, ok := req.Options[optEnableIPv4]; ok {
		b, err := boolOpt(req.Options, optEnableIPv4)
		if err != nil {
			return out, err
		}
		out.EnableIPv4 = &b
	}
	if out.Internal, err = boolOpt(req.Options, optInternal); err != nil {
		return out, err
	}
	if out.IPv4, err = poolsFromWire(req.IPv4Data); err != nil {
		return out, err
	}
	if out.IPv6, err = poolsFromWire(req.IPv6Data); err != nil {
		return out, err
	}
	return out, nil
}

// boolOpt reads the engine option name: a JSON boolean, or the strings
// "true"/"false"; absent or null is false. Anything else is an error naming
// the option, never silently false (a request for an internal network must
// not produce a nat one).
// dockerDriverOptions are Docker's own generic driver options v6bridge
// honours, and the v6bridge option each one means.
var dockerOptions = map[string]string{
	"com.docker.network.driver.mtu": driver.OptMTU,
	"com.docker.network.host_ipv6":  driver.OptHostIPv6,
}

// dockerDriverOptions turns Docker's own generic options in generic into
// v6bridge's (-o com.docker.network.driver.mtu=1400 is v6bridge.mtu=1400),
// refusing the two given with different values.
func dockerDriverOptions(generic map[string]string) error {
	for dk, vk := range dockerOptions {
		dv, ok := generic[dk]
		if !ok {
			continue
		}
		if v, both := generic[vk]; both && strings.TrimSpace(v) != strings.TrimSpace(dv) {
			return fmt.Errorf("driver options %s=%q and %s=%q disagree: give one of them", dk, dv, vk, v)
		}
		generic[vk] = dv
		delete(generic, dk)
	}
	return nil
}

func boolOpt(opts map[string]any, name string) (bool, error) {
	switch v := opts[name].(type) {
	case nil:
		return false, nil
	case bool:
		return v, nil
	case string:
		switch strings.ToLower(v) {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
		return false, fmt.Errorf("option %s: got %q, accepted are true and false", name, v)
	default:
		return false, fmt.Errorf("option %s: got a JSON %s, accepted are true and false", name, jsonType(v))
	}
}

// jsonType names the JSON type of a decoded value.
func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case float64, json.Number:
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

func poolsFromWire(data []*netapi.IPAMData) ([]driver.PoolData, error) {
	var out []driver.PoolData
	for _, d := range data {
		if d == nil {
			continue
		}
		p, err := netip.ParsePrefix(d.Pool)
		if err != nil {
			return nil, fmt.Errorf("pool %q: %w", d.Pool, err)
		}
		pd := driver.PoolData{Pool: p}
		if d.Gateway != "" {
			if pd.Gateway, err = parseAddrOrPrefix(d.Gateway); err != nil {
				return nil, fmt.Errorf("gateway %q: %w", d.Gateway, err)
			}
		}
		out = append(out, pd)
	}
	return out, nil
}

// parseAddrOrPrefix accepts "addr/len" or a bare address (as a /128 or /32).
func parseAddrOrPrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		return netip.ParsePrefix(s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func (s *server) deleteNetwork(w http.ResponseWriter, r *http.Request) {
	var req netapi.DeleteNetworkRequest
	if !decode(w, r, &req) {
		return
	}
	if err := s.nw.DeleteNetwork(req.NetworkID); err != nil {
		s.fail(w, "DeleteNetwork", err)
		return
	}
	sdk.EncodeResponse(w, struct{}{}, false)
}

func (s *server) createEndpoint(w http.ResponseWriter, r *http.Request) {
	var req netapi.CreateEndpointRequest
	if !decode(w, r, &req) {
		return
	}
	dreq := driver.CreateEndpointRequest{NetworkID: req.NetworkID, EndpointID: req.EndpointID}
	if req.Interface != nil {
		dreq.MAC = req.Interface.MacAddress
		if req.Interface.AddressIPv6 != "" {
			p, err := netip.ParsePrefix(req.Interface.AddressIPv6)
			if err != nil {
				s.fail(w, "CreateEndpoint", fmt.Errorf("endpoint address %q: %w", req.Interface.AddressIPv6, err))
				return
			}
			dreq.AddressIPv6 = p
		}
	}
	mac, err := s.nw.CreateEndpoint(dreq)
	if err != nil {
		s.fail(w, "CreateEndpoint", err)
		return
	}
	// Only fields the request left empty may be filled: the engine refuses
	// an answer that changes a value it set.
	resp := netapi.CreateEndpointResponse{}
	if mac != "" {
		resp.Interface = &netapi.EndpointInterface{MacAddress: mac}
	}
	sdk.EncodeResponse(w, resp, false)
}

func (s *server) deleteEndpoint(w http.ResponseWriter, r *http.Request) {
	var req netapi.DeleteEndpointRequest
	if !decode(w, r, &req) {
		return
	}
	if err := s.nw.DeleteEndpoint(req.NetworkID, req.EndpointID); err != nil {
		s.fail(w, "DeleteEndpoint", err)
		return
	}
	sdk.EncodeResponse(w, struct{}{}, false)
}

func (s *server) endpointInfo(w http.ResponseWriter, r *http.Request) {
	var req netapi.InfoRequest
	if !decode(w, r, &req) {
		return
	}
	sdk.EncodeResponse(w, netapi.InfoResponse{Value: s.nw.EndpointInfo(req.NetworkID, req.EndpointID)}, false)
}

func (s *server) join(w http.ResponseWriter, r *http.Request) {
	var req netapi.JoinRequest
	if !decode(w, r, &req) {
		return
	}
	ports, err := s.ports(req.EndpointID, req.Options)
	if err != nil {
		s.fail(w, "Join", err)
		return
	}
	resp, err := s.nw.Join(driver.JoinRequest{NetworkID: req.NetworkID, EndpointID: req.EndpointID, SandboxKey: req.SandboxKey, Ports: ports})
	if err != nil {
		s.fail(w, "Join", err)
		return
	}
	sdk.EncodeResponse(w, JoinToWire(resp), false)
}

// ports decodes the published ports of a Join or
// ProgramExternalConnectivity, warning once per binding to an IPv4 host
// address (skipped: v6bridge publishes on IPv6).
func (s *server) ports(endpointID string, options map[string]any) ([]driver.PortRequest, error) {
	reqs, skipped, err := PortsFromWire(options)
	for _, p := range skipped {
		s.log.WithFields(logrus.Fields{"endpoint": endpointID, "port": p}).Warn("not publishing a port bound to an IPv4 address: v6bridge publishes on IPv6")
	}
	return reqs, err
}

// JoinToWire converts Join's answer. Gateways are bare addresses (a /len
// suffix fails the join); static route destinations are CIDR.
func JoinToWire(resp driver.JoinResponse) netapi.JoinResponse {
	out := netapi.JoinResponse{
		InterfaceName:         netapi.InterfaceName{SrcName: resp.SrcName, DstPrefix: resp.DstPrefix},
		DisableGatewayService: true,
	}
	if resp.GatewayIPv6.IsValid() {
		out.GatewayIPv6 = resp.GatewayIPv6.String()
	}
	for _, sr := range resp.StaticRoutes {
		wr := &netapi.StaticRoute{Destination: sr.Destination.String(), RouteType: routeNextHop}
		if sr.NextHop.IsValid() {
			wr.NextHop = sr.NextHop.String()
		} else {
			wr.RouteType = routeConnected
		}
		out.StaticRoutes = append(out.StaticRoutes, wr)
	}
	return out
}

func (s *server) leave(w http.ResponseWriter, r *http.Request) {
	var req netapi.LeaveRequest
	if !decode(w, r, &req) {
		return
	}
	if err := s.nw.Leave(req.NetworkID, req.EndpointID); err != nil {
		s.fail(w, "Leave", err)
		return
	}
	sdk.EncodeResponse(w, struct{}{}, false)
}

func (s *server) programExternal(w http.ResponseWriter, r *http.Request) {
	var req netapi.ProgramExternalConnectivityRequest
	if !decode(w, r, &req) {
		return
	}
	ports, err := s.ports(req.EndpointID, req.Options)
	if err == nil {
		err = s.nw.ProgramExternalConnectivity(req.NetworkID, req.EndpointID, ports)
	}
	if err != nil {
		s.fail(w, "ProgramExternalConnectivity", err)
		return
	}
	sdk.EncodeResponse(w, struct{}{}, false)
}

type requestPoolRequest struct {
	AddressSpace string
	Pool         string
	SubPool      string
	Options      map[string]string
	V6           bool
}

type requestPoolResponse struct {
	PoolID string
	Pool   string
	Data   map[string]string
}

func (s *server) requestPool(w http.ResponseWriter, r *http.Request) {
	var req requestPoolRequest
	if !decode(w, r, &req) {
		return
	}
	p, err := s.im.RequestPool(ipam.PoolRequest{Pool: req.Pool, SubPool: req.SubPool, Options: req.Options, V6: req.V6})
	if err != nil {
		s.fail(w, "RequestPool", err)
		return
	}
	data := map[string]string{}
	if p.Gateway.IsValid() {
		// The engine then requests no gateway of the pool.
		data[dataGateway] = p.Gateway.String()
	}
	sdk.EncodeResponse(w, requestPoolResponse{PoolID: p.ID, Pool: p.Prefix.String(), Data: data}, false)
}

func (s *server) releasePool(w http.ResponseWriter, r *http.Request) {
	var req struct{ PoolID string }
	if !decode(w, r, &req) {
		return
	}
	if err := s.im.ReleasePool(req.PoolID); err != nil {
		s.fail(w, "ReleasePool", err)
		return
	}
	sdk.EncodeResponse(w, struct{}{}, false)
}

func (s *server) requestAddress(w http.ResponseWriter, r *http.Request) {
	var req struct {
		PoolID  string
		Address string
		Options map[string]string
	}
	if !decode(w, r, &req) {
		return
	}
	a, err := s.im.RequestAddress(req.PoolID, req.Address, ipam.AddressOptions{
		Gateway: req.Options[optRequestAddressType] == addressTypeGateway,
		Name:    req.Options[optEndpointName],
	})
	if err != nil {
		s.fail(w, "RequestAddress", err)
		return
	}
	sdk.EncodeResponse(w, struct {
		Address string
		Data    map[string]string
	}{Address: a.String(), Data: map[string]string{}}, false)
}

func (s *server) releaseAddress(w http.ResponseWriter, r *http.Request) {
	var req struct {
		PoolID  string
		Address string
	}
	if !decode(w, r, &req) {
		return
	}
	if err := s.im.ReleaseAddress(req.PoolID, req.Address); err != nil {
		s.fail(w, "ReleaseAddress", err)
		return
	}
	sdk.EncodeResponse(w, struct{}{}, false)
}
