package driver

import (
	"net/netip"
	"sync"
)

// heldAddrs are the addresses of the driver's endpoints, under a lock of
// their own: the IPAM asks HoldsAddr while it holds its own lock, so
// HoldsAddr must not wait for d.mu (the driver asks the IPAM under d.mu).
type heldAddrs struct {
	mu sync.Mutex
	m  map[netip.Addr]string // address -> endpoint id
}

func (h *heldAddrs) hold(e *Endpoint) {
	if !e.Addr.IsValid() {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m == nil {
		h.m = map[netip.Addr]string{}
	}
	h.m[e.Addr.Addr()] = e.ID
}

func (h *heldAddrs) unhold(e *Endpoint) {
	if !e.Addr.IsValid() {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m[e.Addr.Addr()] == e.ID {
		delete(h.m, e.Addr.Addr())
	}
}

// HoldsAddr reports whether an endpoint of the driver has address a. The
// IPAM asks it before handing an address out: since Docker 29 the engine
// releases an endpoint's address in the IPAM without telling the network
// driver when per-endpoint sysctls remove the container's IPv6 address,
// and the driver's firewall and NDP state for it stays until the endpoint
// is deleted; the IPAM hands the address to nobody else until then
// (docs/engines.md).
func (d *Driver) HoldsAddr(a netip.Addr) bool {
	d.held.mu.Lock()
	defer d.held.mu.Unlock()
	_, ok := d.held.m[a]
	return ok
}
