// Package api is the one package that knows libnetwork's wire format. It
// serves the NetworkDriver and IpamDriver APIs on one socket: it decodes a
// request with go-plugins-helpers' types, calls the driver or the IPAM in
// domain types, and encodes the answer ({"Err": ...} for the network
// driver, {"Error": ...} for the IPAM; both fields are set on an error so
// every engine version reads it).
package api

import (
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
	route("/NetworkDriver.DeleteEndpoint", s.endpointCall("DeleteEndpoint", nw.DeleteEndpoint))
	route("/NetworkDriver.EndpointOperInfo", s.endpointInfo)
	route("/NetworkDriver.Join", s.join)
	route("/NetworkDriver.Leave", s.endpointCall("Leave", nw.Leave))
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

// server holds what the handlers of both APIs call.
type server struct {
	nw  Network
	im  IPAM
	log logrus.FieldLogger
}
