// Package ndpproto is the pure protocol of the NDP responder (package
// ndp): decisions, solicitation in, advertisement out, and the plans the
// responder applies to the kernel. Nothing here needs root; everything is
// tested without it.
//
// ParsePacket and ParseICMP turn captured bytes into a Solicitation
// (errors wrap ErrMalformed, or ErrNotSolicitation for other
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
// capture loop's fast path (ParseFast, DecideFast) gives the same answers
// as ParsePacket and Decide without allocating; Limiter keeps the answers
// within budgets.
//
// Files, one concern each: parse.go (the two parsers: ParsePacket for
// captured packets, ParseICMP for ICMPv6 bodies), decide.go (Decide,
// Unsolicited, Answer), fast.go (the capture loop's allocation-free parser
// and answers), limits.go (budgets per source and per target, and the
// default router's reserve), targets.go and assign.go (what is answered
// for, on which uplink), plan.go (targets to per-uplink changes), mode.go
// (the modes), filter.go (the capture's BPF program), ingress.go (the
// ingress table's plan).
//
// mdlayher/ndp is imported as mndp everywhere, next to this package's name.
package ndpproto
