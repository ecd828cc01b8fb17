package api

import (
	"net/http"

	"github.com/docker/go-plugins-helpers/sdk"

	"github.com/v6bridge/v6bridge/ipam"
)

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
	s.answer(w, "ReleasePool", s.im.ReleasePool(req.PoolID))
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
	s.answer(w, "ReleaseAddress", s.im.ReleaseAddress(req.PoolID, req.Address))
}
