package api

import (
	"fmt"
	"net/http"
	"net/netip"

	netapi "github.com/docker/go-plugins-helpers/network"
	"github.com/docker/go-plugins-helpers/sdk"
	"github.com/sirupsen/logrus"

	"github.com/v6bridge/v6bridge/driver"
)

// Static route types of libnetwork: via a next hop, or connected to the
// endpoint's interface.
const (
	routeNextHop   = 0
	routeConnected = 1
)

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

func (s *server) createNetwork(w http.ResponseWriter, r *http.Request) {
	var req netapi.CreateNetworkRequest
	if !decode(w, r, &req) {
		return
	}
	dreq, err := CreateNetworkFromWire(req)
	if err == nil {
		err = s.nw.CreateNetwork(dreq)
	}
	s.answer(w, "CreateNetwork", err)
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

func (s *server) deleteNetwork(w http.ResponseWriter, r *http.Request) {
	var req netapi.DeleteNetworkRequest
	if !decode(w, r, &req) {
		return
	}
	s.answer(w, "DeleteNetwork", s.nw.DeleteNetwork(req.NetworkID))
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

// endpointCall serves a route whose request names an endpoint and whose
// answer is empty (DeleteEndpoint, Leave): call gets the request's ids.
func (s *server) endpointCall(route string, call func(networkID, endpointID string) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req netapi.LeaveRequest // DeleteEndpointRequest has the same fields
		if !decode(w, r, &req) {
			return
		}
		s.answer(w, route, call(req.NetworkID, req.EndpointID))
	}
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

func (s *server) programExternal(w http.ResponseWriter, r *http.Request) {
	var req netapi.ProgramExternalConnectivityRequest
	if !decode(w, r, &req) {
		return
	}
	ports, err := s.ports(req.EndpointID, req.Options)
	if err == nil {
		err = s.nw.ProgramExternalConnectivity(req.NetworkID, req.EndpointID, ports)
	}
	s.answer(w, "ProgramExternalConnectivity", err)
}
