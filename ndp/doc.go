// Package ndp answers IPv6 Neighbor Discovery on the uplink for the addresses
// of containers on public networks, so the provider's router can reach them.
//
// The files without a build tag are pure (decisions: solicitation in,
// advertisement out); the _linux.go files own the sockets.
//
// Pure part: ParsePacket and ParseICMP turn captured bytes into a
// Solicitation (errors wrap ErrMalformed, or ErrNotSolicitation for other
// traffic); Decide applies RFC 4861 7.1.1 and 7.2.4 to it and builds the
// Answer (Solicited set for solicited answers, Override set, Router per
// configuration, the uplink's MAC as Target Link-Layer Address, DAD probes
// defended to ff02::1); Unsolicited builds the advertisement sent when an
// address appears; Answer.Packet marshals either. Targets is the set of
// addresses and ranges answered for; Assign picks the uplink for each.
// PlanTargets and PlanUpdate turn targets into per-uplink changes (groups
// to join and leave, proxy entries, announcements); BuildFilter makes the
// capture filter that passes only solicitations for the targets;
// PlanIngress the uplink's ingress filter (IngressFilter), which drops
// solicitations for addresses of its prefixes nobody answers for and, with
// a KernelAnswer (native mode), answers the common ones in the kernel. The
// capture loop's fast path (parseFast, decideFast) gives the same answers
// as ParsePacket and Decide without allocating; limiter keeps the answers
// within budgets.
//
// Kernel part: Responder (NewResponder, Run, SetTargets, UpdateTargets,
// Stats, Close, CloseLeavingProxies) satisfies the driver's Neighbors
// interface. Its doc comment explains the choice of an AF_PACKET capture
// for the native mode (unicast reachability probes never reach an ICMPv6
// socket) and names the files of each part. Modes: ModeNative (default),
// ModeKernel (kernel proxy-neighbour entries) and ModeOff.
//
// mdlayher/ndp is imported as mndp everywhere, next to this package's name.
package ndp
