// Package ra sends IPv6 router advertisements on the bridges of v6bridge
// networks whose engine keeps no default route of its own in containers.
//
// Engines before Docker 28 install a container's IPv6 default route only
// from a static route a Join returns, and only one endpoint of a container
// may carry ::/0. When the network with that route is disconnected, the
// route goes with its interface and the engine never moves it: the
// container is left without a way out. Containers on those engines accept
// router advertisements (accept_ra=1, forwarding=0), so a bridge that
// advertises itself as a router gives every container on it a default
// route of its own, which survives the disconnect of any other network.
// Engines >= 28 choose the gateway themselves; their networks get none.
package ra

import (
	"time"

	"github.com/mdlayher/ndp"
)

// Lifetimes and intervals of the advertisements (RFC 4861 6.2.1 defaults:
// MaxRtrAdvInterval 600 s, AdvDefaultLifetime 3 x that). Shorter here, so a
// container that missed one learns the router soon.
const (
	// Interval is the time between unsolicited advertisements.
	Interval = 60 * time.Second
	// RouterLifetime is how long a container keeps the default route
	// without hearing the bridge again.
	RouterLifetime = 30 * time.Minute
)

// Advertisement returns the router advertisement a bridge sends: a default
// router with its link-layer address, no prefixes (containers' addresses
// are static) and no other configuration.
func Advertisement(mac []byte) *ndp.RouterAdvertisement {
	ra := &ndp.RouterAdvertisement{CurrentHopLimit: 64, RouterLifetime: RouterLifetime}
	if len(mac) == 6 {
		ra.Options = append(ra.Options, &ndp.LinkLayerAddress{Direction: ndp.Source, Addr: mac})
	}
	return ra
}
