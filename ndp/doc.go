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
// Files, one concern each. Pure: parse.go (the two parsers: ParsePacket
// for captured packets, ParseICMP for ICMPv6 bodies), decide.go (Decide,
// Unsolicited, Answer), fast.go (the capture loop's allocation-free
// parser and answers), limits.go (budgets per source and per target, and
// the default router's reserve), targets.go and assign.go (what is
// answered for, on which uplink), plan.go (targets to per-uplink changes), filter.go (the
// capture's BPF program), ingress.go (the ingress table's plan), config.go
// (Config, Mode, Stats). Kernel: responder_linux.go (Responder: targets,
// Run, Stats, Close), uplink_linux.go (one uplink's sockets and facts),
// backend_linux.go (one backend per mode), capture_linux.go (AF_PACKET
// capture and answers), groups_linux.go (solicited-node groups),
// announce_linux.go (unsolicited advertisements), proxy_linux.go (kernel
// mode's proxy entries and the hand-over), ingress_linux.go (the nftables
// netdev table answering in the kernel), router_linux.go (the default
// router's reserve), watch_linux.go (uplink changes and re-attach).
//
// mdlayher/ndp is imported as mndp everywhere, next to this package's name.
package ndp
