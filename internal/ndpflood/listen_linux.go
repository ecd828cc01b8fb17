package ndpflood

import (
	"net/netip"

	"github.com/mdlayher/ndp"
	"golang.org/x/net/ipv6"
)

// EachAdvertisement reads from c until a read fails (c closed, or past its
// deadline) and calls f for each Neighbor Advertisement, with its control
// message (nil if c gives none) and source: what the router's side of a
// flood (the bench, ndp's tests) watches for while it floods.
func EachAdvertisement(c *ndp.Conn, f func(na *ndp.NeighborAdvertisement, cm *ipv6.ControlMessage, src netip.Addr)) {
	for {
		m, cm, src, err := c.ReadFrom()
		if err != nil {
			return
		}
		if na, ok := m.(*ndp.NeighborAdvertisement); ok {
			f(na, cm, src)
		}
	}
}
