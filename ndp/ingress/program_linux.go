package ingress

import (
	"encoding/binary"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/v6bridge/v6bridge/ndp/ndpproto"
)

// Table names the netdev table of the ingress filter on uplink
// (see ndpproto.IngressFilter).
func Table(uplink string) string { return "v6bridge-ndp-" + uplink }

// Names of the table's chains and sets, and the size and timeout of the
// per-solicitor meter.
const (
	Chain          = "ingress"
	AllowSet       = "allow"
	AnswerSet      = "answer"  // destination . target of the solicitations answered in the kernel
	SourcesSet     = "sources" // the per-solicitor budgets (a meter)
	RouterSet      = "router"  // the default router's addresses
	BudgetChain    = "budgets" // what the kernel would answer, through the budgets
	ReplyChain     = "reply"   // the answers' rewrite
	SourcesTimeout = time.Minute
	SourcesSize    = 65536
)

// The ingress rules' tags (rule user data), which tell their counters
// apart.
const (
	TagDrop            = "drop"
	TagAnswerMulticast = "answer multicast"
	TagAnswerUnicast   = "answer unicast"
	TagSourceLimit     = "limit source"
	TagTotalLimit      = "limit total"
	TagRouterLimit     = "limit router"
	TagOverflowLimit   = "limit overflow"
	TagNonUnicast      = "non-unicast"
)

// AddAnswerRules queues the answer set and the rules answering in the
// kernel: in ch, what answerMatch takes jumps to the budgets chain, where
// an option naming no unicast MAC and what is over a budget are dropped
// (each counted by cause) and the rest goes to the reply chain, which
// turns the solicitation into the advertisement and sends it back out of
// the uplink. The router's solicitations have a reserve of their own;
// the others share a meter per source address, an overflow bucket for
// the sources a full meter cannot hold, and the total.
func AddAnswerRules(nft *nftables.Conn, t *nftables.Table, ch *nftables.Chain, uplink string, ifindex int, want ndpproto.IngressFilter) (*nftables.Set, error) {
	a := want.Answer
	answer := &nftables.Set{
		Table: t, Name: AnswerSet, Concatenation: true,
		KeyType: nftables.MustConcatSetType(nftables.TypeIP6Addr, nftables.TypeIP6Addr),
	}
	if err := nft.AddSet(answer, AnswerElements(slices.Collect(maps.Keys(want.Answered)))); err != nil {
		return nil, fmt.Errorf("ndp ingress filter %q: answer set: %w", uplink, err)
	}
	budgets := nft.AddChain(&nftables.Chain{Name: BudgetChain, Table: t})
	reply := nft.AddChain(&nftables.Chain{Name: ReplyChain, Table: t})
	add := func(c *nftables.Chain, tag string, e ...[]expr.Any) {
		nft.AddRule(&nftables.Rule{Table: t, Chain: c, Exprs: slices.Concat(e...), UserData: []byte(tag)})
	}
	drop := []expr.Any{&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop}}
	toReply := []expr.Any{&expr.Verdict{Kind: expr.VerdictGoto, Chain: reply.Name}}
	th, nh := expr.PayloadBaseTransportHeader, expr.PayloadBaseNetworkHeader
	source := []expr.Any{&expr.Payload{DestRegister: 1, Base: nh, Offset: 8, Len: 16}}

	add(ch, "", answerMatch(a.MAC, answer), []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: budgets.Name}})

	// The option's MAC becomes the answer's destination: never a group
	// (broadcast included) or zeros.
	add(budgets, TagNonUnicast, []expr.Any{
		&expr.Payload{DestRegister: 1, Base: th, Offset: 26, Len: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{1}, Xor: []byte{0}},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0}},
	}, drop)
	add(budgets, TagNonUnicast, payloadIs(th, 26, expr.CmpOpEq, make([]byte, 6)), drop)

	if a.Gateway.Known() {
		rs := &nftables.Set{Table: t, Name: RouterSet, KeyType: nftables.TypeIP6Addr}
		if err := nft.AddSet(rs, AddrElements(a.Gateway.List())); err != nil {
			return nil, fmt.Errorf("ndp ingress filter %q: router set: %w", uplink, err)
		}
		fromRouter := slices.Concat(
			payloadIs(expr.PayloadBaseLLHeader, 6, expr.CmpOpEq, a.Gateway.MAC[:]),
			payloadIs(th, 26, expr.CmpOpEq, a.Gateway.MAC[:]),
			source,
			[]expr.Any{&expr.Lookup{SourceRegister: 1, SetName: rs.Name, SetID: rs.ID}},
		)
		if a.RouterRate > 0 {
			add(budgets, TagRouterLimit, fromRouter, []expr.Any{overLimit(a.RouterRate, 2*a.RouterRate)}, drop)
		}
		add(budgets, "", fromRouter, toReply)
	}
	if a.SourceRate > 0 {
		sources := &nftables.Set{
			Table: t, Name: SourcesSet, KeyType: nftables.TypeIP6Addr,
			Dynamic: true, HasTimeout: true, Timeout: SourcesTimeout, Size: SourcesSize,
		}
		if err := nft.AddSet(sources, nil); err != nil {
			return nil, fmt.Errorf("ndp ingress filter %q: solicitor budgets: %w", uplink, err)
		}
		add(budgets, TagSourceLimit, source, []expr.Any{
			&expr.Dynset{
				SrcRegKey: 1, SetName: sources.Name, SetID: sources.ID, Operation: uint32(unix.NFT_DYNSET_OP_UPDATE),
				Timeout: SourcesTimeout,
				Exprs:   []expr.Any{overLimit(a.SourceRate, 2*a.SourceRate)},
			},
		}, drop)
		// A full meter adds no element (the dynset above does not
		// match): those sources share one more solicitor's budget.
		add(budgets, TagOverflowLimit, source, []expr.Any{
			&expr.Lookup{SourceRegister: 1, SetName: sources.Name, SetID: sources.ID, Invert: true},
			overLimit(a.SourceRate, 2*a.SourceRate),
		}, drop)
	}
	if a.TotalRate > 0 {
		add(budgets, TagTotalLimit, []expr.Any{overLimit(a.TotalRate, a.TotalRate)}, drop)
	}
	add(budgets, "", toReply)

	for _, unicast := range []bool{false, true} {
		tag, op := TagAnswerMulticast, expr.CmpOpEq
		if unicast {
			tag, op = TagAnswerUnicast, expr.CmpOpNeq
		}
		add(reply, tag, payloadIs(nh, 24, op, []byte{0xff}), answerRewrite(a, ifindex))
	}
	return answer, nil
}

// overLimit is a limit that matches once rate per second (burst) is used.
func overLimit(rate, burst float64) *expr.Limit {
	return &expr.Limit{Type: expr.LimitTypePkts, Rate: uint64(max(rate, 1)), Unit: expr.LimitTimeSecond, Burst: uint32(max(burst, 1)), Over: true}
}

// answerMatch matches the solicitations the kernel answers: IPv6 without
// extension headers, 32 bytes of ICMPv6 (type 135, code 0, the target, one
// Source Link-Layer Address option), hop limit 255, a unicast source, not
// from mac, and destination . target in answer. It leaves the target in
// register 2.
func answerMatch(mac [6]byte, answer *nftables.Set) []expr.Any {
	nh, th := expr.PayloadBaseNetworkHeader, expr.PayloadBaseTransportHeader
	return slices.Concat(
		[]expr.Any{
			&expr.Meta{Key: expr.MetaKeyPROTOCOL, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0x86, 0xdd}},
		},
		payloadIs(nh, 4, expr.CmpOpEq, []byte{0, ndpproto.NALen - ndpproto.IPv6HeaderLen, ndpproto.ProtoICMPv6, 255}), // payload length, next header, hop limit
		payloadIs(th, 0, expr.CmpOpEq, []byte{ndpproto.TypeNeighSolic, 0}),
		payloadIs(th, 24, expr.CmpOpEq, []byte{1, 1}), // the option: source link-layer address, 8 bytes
		payloadIs(th, 26, expr.CmpOpNeq, mac[:]),
		payloadIs(nh, 8, expr.CmpOpNeq, []byte{0xff}), // a multicast source
		payloadIs(nh, 8, expr.CmpOpNeq, make([]byte, 16)),
		payloadIs(expr.PayloadBaseLLHeader, 6, expr.CmpOpNeq, mac[:]),
		[]expr.Any{
			&expr.Payload{DestRegister: 1, Base: nh, Offset: 24, Len: 16},
			&expr.Payload{DestRegister: 2, Base: expr.PayloadBaseTransportHeader, Offset: 8, Len: 16},
			&expr.Lookup{SourceRegister: 1, SetName: answer.Name, SetID: answer.ID},
		},
	)
}

// answerRewrite turns the matched solicitation into the advertisement
// BuildNA makes for it, counts it and sends it out
// of ifindex; the solicitation itself goes no further. Checksums are
// updated as each field changes; address writes update the ICMPv6
// checksum through its pseudo-header (at 42 from the IPv6 header: no
// extension headers).
func answerRewrite(a *ndpproto.KernelAnswer, ifindex int) []expr.Any {
	const csumFromNH, csumFromTH = ndpproto.IPv6HeaderLen + 2, 2
	set := func(base expr.PayloadBase, off, n uint32, reg uint32, csum uint32) *expr.Payload {
		p := &expr.Payload{OperationType: expr.PayloadWrite, SourceRegister: reg, Base: base, Offset: off, Len: n}
		if csum != 0 {
			p.CsumType, p.CsumOffset = expr.CsumTypeInet, csum
		}
		return p
	}
	imm := func(reg uint32, b []byte) *expr.Immediate { return &expr.Immediate{Register: reg, Data: b} }
	var flags byte = 0x60 // Solicited, Override
	if a.Router {
		flags |= 0x80
	}
	e := []expr.Any{
		// The target, for a target source.
		&expr.Payload{DestRegister: 2, Base: expr.PayloadBaseTransportHeader, Offset: 8, Len: 16},
		// The solicitor's MAC, from its option, becomes the frame's destination.
		&expr.Payload{DestRegister: 3, Base: expr.PayloadBaseTransportHeader, Offset: 26, Len: 6},
		set(expr.PayloadBaseLLHeader, 0, 6, 3, 0),
		imm(3, a.MAC[:]),
		set(expr.PayloadBaseLLHeader, 6, 6, 3, 0),
		// Version 6, no traffic class or flow label.
		imm(3, []byte{0x60, 0, 0, 0}),
		set(expr.PayloadBaseNetworkHeader, 0, 4, 3, 0),
		// The solicitor becomes the destination; the source is ours.
		&expr.Payload{DestRegister: 3, Base: expr.PayloadBaseNetworkHeader, Offset: 8, Len: 16},
		set(expr.PayloadBaseNetworkHeader, 24, 16, 3, csumFromNH),
	}
	if a.Source.IsValid() {
		e = append(e, imm(3, a.Source.AsSlice()), set(expr.PayloadBaseNetworkHeader, 8, 16, 3, csumFromNH))
	} else {
		e = append(e, set(expr.PayloadBaseNetworkHeader, 8, 16, 2, csumFromNH))
	}
	return append(e,
		imm(3, []byte{ndpproto.TypeNeighAdv, 0}),
		set(expr.PayloadBaseTransportHeader, 0, 2, 3, csumFromTH),
		imm(3, []byte{flags, 0, 0, 0}),
		set(expr.PayloadBaseTransportHeader, 4, 4, 3, csumFromTH),
		imm(3, append([]byte{2, 1}, a.MAC[:]...)), // target link-layer address
		set(expr.PayloadBaseTransportHeader, 24, 8, 3, csumFromTH),
		&expr.Counter{},
		imm(3, binary.NativeEndian.AppendUint32(nil, uint32(ifindex))),
		&expr.Dup{RegDev: 3, IsRegDevSet: true},
		&expr.Verdict{Kind: expr.VerdictDrop},
	)
}

// DropRule drops Neighbor Solicitations whose target is in served,
// outside every range and not in the allow set.
func DropRule(served netip.Prefix, ranges []netip.Prefix, allow *nftables.Set) []expr.Any {
	e := slices.Concat(
		[]expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_ICMPV6}},
		},
		payloadIs(expr.PayloadBaseTransportHeader, 0, expr.CmpOpEq, []byte{ndpproto.TypeNeighSolic}),
		[]expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 8, Len: 16}},
	)
	e = append(e, prefixMatch(served, expr.CmpOpEq)...)
	for _, q := range ranges {
		e = append(e, prefixMatch(q, expr.CmpOpNeq)...)
	}
	return append(e,
		&expr.Lookup{SourceRegister: 1, SetName: allow.Name, SetID: allow.ID, Invert: true},
		&expr.Counter{},
		&expr.Verdict{Kind: expr.VerdictDrop},
	)
}

// payloadIs compares the len(data) bytes at off from base with data.
func payloadIs(base expr.PayloadBase, off uint32, op expr.CmpOp, data []byte) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: base, Offset: off, Len: uint32(len(data))},
		&expr.Cmp{Op: op, Register: 1, Data: data},
	}
}

// prefixMatch compares the address in register 1, masked to p's length
// into register 2, with p.
func prefixMatch(p netip.Prefix, op expr.CmpOp) []expr.Any {
	mask := make([]byte, 16)
	for i := range p.Bits() {
		mask[i/8] |= 0x80 >> (i % 8)
	}
	return []expr.Any{
		&expr.Bitwise{SourceRegister: 1, DestRegister: 2, Len: 16, Mask: mask, Xor: make([]byte, 16)},
		&expr.Cmp{Op: op, Register: 2, Data: p.Masked().Addr().AsSlice()},
	}
}

// AnswerElements are the answer set's elements for targets: two keys each
// (ndpproto.AnswerKeys: destination . target, for the two destinations a
// solicitation for it may have).
func AnswerElements(targets []netip.Addr) []nftables.SetElement {
	out := make([]nftables.SetElement, 0, 2*len(targets))
	for _, t := range targets {
		for _, k := range ndpproto.AnswerKeys(t) {
			out = append(out, nftables.SetElement{Key: k[:]})
		}
	}
	return out
}

// AddrElements are the elements of an address set (AllowSet, RouterSet)
// holding addrs.
func AddrElements(addrs []netip.Addr) []nftables.SetElement {
	out := make([]nftables.SetElement, len(addrs))
	for i, a := range addrs {
		out[i] = nftables.SetElement{Key: a.AsSlice()}
	}
	return out
}
