package driver

import (
	"net/netip"

	"github.com/v6bridge/v6bridge/fwstate"
	"github.com/v6bridge/v6bridge/netspec"
	"github.com/v6bridge/v6bridge/portfwd"
)

// Links is what the driver needs from the kernel's links. Every method is
// idempotent: Ensure* creates or repairs, Delete* of a missing link is
// success.
type Links interface {
	EnsureBridge(spec netspec.BridgeSpec) error
	DeleteBridge(name string) error
	EnsureVeth(spec netspec.VethSpec) error
	DeleteVeth(hostName string) error
	// LinkExists reports whether an interface of that name exists.
	LinkExists(name string) (bool, error)
	// OwnedLinks lists the interfaces whose names carry v6bridge's prefixes
	// (bridges and host-side veths) with their marks, for orphan cleanup.
	OwnedLinks() ([]netspec.OwnedLink, error)
	// PrepareHost sets what the data path needs host wide (IPv6 forwarding,
	// accept_ra=2 on the uplinks first), returning what it changed.
	PrepareHost(uplinks []string) (changed []string, err error)
}

// Firewall applies the desired nftables state atomically: Apply the whole
// state, UpdateEndpoints the entries of a few endpoints on top of the last
// Apply (fwstate.EndpointUpdate), at the cost of what those endpoints change.
type Firewall interface {
	Apply(s fwstate.State) error
	UpdateEndpoints(us []fwstate.EndpointUpdate) error
}

// Neighbors answers NDP on the uplinks for the given addresses (public
// networks' endpoints) and stops answering for every other address. Ranges
// are whole subnets to answer for (NDP_RANGE=true); usually empty.
// UpdateTargets adds and removes single addresses after a SetTargets, at
// the cost of what changes.
type Neighbors interface {
	SetTargets(addrs []netip.Addr, ranges []netip.Prefix) error
	UpdateTargets(add, remove []netip.Addr) error
}

// Forwarder forwards ports in userspace (package portfwd). Set sets the
// whole set; its error names only the forwards new in the set that cannot
// bind (so only the request that asked for one fails); the others run, and
// one that could not bind binds by itself once its port is free.
type Forwarder interface {
	Set(fs []portfwd.Forward) error
}

// Routers advertises the host as the default router to container
// addresses, keyed by the bridge they are behind (router advertisements,
// package ra). SetTargets sets the whole set and never fails.
type Routers interface {
	SetTargets(targets map[string][]netip.Addr)
}
