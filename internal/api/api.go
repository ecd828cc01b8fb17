// Package api is the one package that knows libnetwork's wire format. It
// serves the NetworkDriver and IpamDriver APIs on one socket: it decodes a
// request with go-plugins-helpers' types, calls the driver or the IPAM in
// domain types, and encodes the answer ({"Err": ...} for the network
// driver, {"Error": ...} for the IPAM; both fields are set on an error so
// every engine version reads it).
package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"strings"

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

// NewHandler returns the plugin's handler with every route of both APIs
// registered on one mux; serve it with its Serve method on a listener.
func NewHandler(nw Network, im IPAM, status StatusFunc, log logrus.FieldLogger) sdk.Handler {
	h := sdk.NewHandler(Manifest)
	s := &server{nw: nw, im: im, log: log}
	route := func(path string, fn func(w http.ResponseWriter, r *http.Request)) {
		h.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			log.WithField("route", path).Debug("request")
			fn(w, r)
		})
	}
	empty := func(w http.ResponseWriter, r *http.Request) { sdk.EncodeResponse(w, struct{}{}, false) }

	route("/NetworkDriver.GetCapabilities", func(w http.ResponseWriter, r *http.Request) {
		sdk.EncodeResponse(w, netapi.CapabilitiesResponse{Scope: "local", ConnectivityScope: "local"}, false)
	})
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

// CreateNetworkFromWire converts the engine's CreateNetwork request.
func CreateNetworkFromWire(req netapi.CreateNetworkRequest) (driver.CreateNetworkRequest, error) {
	out := driver.CreateNetworkRequest{NetworkID: req.NetworkID, Generic: map[string]string{}}
	if g, ok := req.Options[optGeneric].(map[string]any); ok {
		for k, v := range g {
			switch v := v.(type) {
			case string:
				out.Generic[k] = v
			default:
				out.Generic[k] = fmt.Sprint(v)
			}
		}
	}
	out.EnableIPv6 = boolOpt(req.Options[optEnableIPv6])
	if v, ok := req.Options[optEnableIPv4]; ok {
		b := boolOpt(v)
		out.EnableIPv4 = &b
	}
	out.Internal = boolOpt(req.Options[optInternal])
	var err error
	if out.IPv4, err = poolsFromWire(req.IPv4Data); err != nil {
		return out, err
	}
	if out.IPv6, err = poolsFromWire(req.IPv6Data); err != nil {
		return out, err
	}
	return out, nil
}

func boolOpt(v any) bool {
	switch v := v.(type) {
	case bool:
		return v
	case string:
		return strings.EqualFold(v, "true")
	}
	return false
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
		out.StaticRoutes = append(out.StaticRoutes, &netapi.StaticRoute{Destination: sr.Destination.String(), RouteType: 0, NextHop: sr.NextHop.String()})
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
