// Package ndp answers IPv6 Neighbor Discovery on the uplink for the addresses
// of containers on public networks, so the provider's router can reach them.
//
// The protocol itself (parsing, decisions, budgets, targets, the plans of
// groups, proxy entries, the capture filter and the ingress table) is the
// pure package ndp/ndpproto; this package applies it to the kernel.
//
// Kernel part: Responder (NewResponder, Run, SetTargets, UpdateTargets,
// Stats, Close, CloseLeavingProxies) satisfies the driver's Neighbors
// interface. Its doc comment explains the choice of an AF_PACKET capture
// for the native mode (unicast reachability probes never reach an ICMPv6
// socket) and names the files of each part. Modes (ndpproto): ModeNative
// (default), ModeKernel (kernel proxy-neighbour entries) and ModeOff.
//
// Files, one concern each: responder_linux.go (Responder: targets, Run,
// Stats, Close), config.go (Config, Stats), uplink_linux.go (one uplink's
// sockets and facts), backend_linux.go (one backend per mode),
// capture_linux.go (AF_PACKET capture and answers), groups_linux.go
// (solicited-node groups), announce_linux.go (unsolicited advertisements),
// proxy_linux.go (kernel mode's proxy entries and the hand-over),
// ingress_linux.go (applies the nftables netdev table of ndp/ingress,
// which drops and answers solicitations in the kernel),
// router_linux.go (the default router's reserve), watch_linux.go (uplink
// changes and re-attach).
//
// mdlayher/ndp is imported as mndp everywhere, next to this package's name.
package ndp
