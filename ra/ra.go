// Package ra sends IPv6 router advertisements to the containers of
// v6bridge networks that lost their default route.
//
// Engines before Docker 28 install a container's IPv6 default route only
// from a static route a Join returns, and only one endpoint of a container
// may carry ::/0. When the network with that route is disconnected, the
// route goes with its interface and the engine never moves it: the
// container is left without a way out. Containers on those engines accept
// router advertisements (accept_ra=1, forwarding=0), so the advertiser
// tells exactly those containers, on their remaining networks, that the
// bridge is their default router.
//
// The advertisements go unicast to the containers' addresses, never to all
// nodes: a container that is starting must not learn a default route
// before its engine installs the static ::/0, or the engine's route fails
// with EEXIST ("failed to add static route ::/0: file exists") and the
// container does not start. Engines >= 28 choose the gateway themselves;
// their networks get none.
package ra

import (
	"time"

	"github.com/mdlayher/ndp"
)

// Lifetimes and intervals of the advertisements (RFC 4861 6.2.1 defaults:
// MaxRtrAdvInterval 600 s, AdvDefaultLifetime 3 x that). Shorter here, so a
// container that missed one learns the router soon.
const (
	// Interval is the time between advertisements to the same container.
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
