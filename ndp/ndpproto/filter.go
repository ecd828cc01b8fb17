package ndpproto

import (
	"encoding/binary"
	"net/netip"
	"slices"

	"golang.org/x/net/bpf"
)

// The capture filter: a classic BPF program attached to the uplink's
// packet socket (SO_ATTACH_FILTER) that passes only Neighbor Solicitations
// (right after the IPv6 header or behind one hop-by-hop header) whose
// target is one we answer for. Everything else, the data path's traffic
// and a flood of solicitations for random addresses, is dropped in the
// kernel before a copy is made, so userspace never wakes for it.
//
// The program tests the target's first three 32-bit words once per group
// of addresses sharing them (a /96), then its last word against each
// address of the group. A group too big to list exactly is matched by the
// /112s its addresses lie in, then by the whole /96; ranges shorter than
// /96 get a block of their own. Programs stay under the kernel's limit of
// 4096 instructions by coarsening that way, and as the last resort pass
// every solicitation (the responder still decides in userspace).

const (
	maxFilterLen   = 4000 // BPF_MAXINSNS is 4096
	maxGroupExact  = 48   // per /96: exact addresses before /112s
	filterAccept   = 1 << 16
	filterTargetAt = IPv6HeaderLen + 8 // the target, relative to X
)

// filterGroup is the addresses and ranges under one /96.
type filterGroup struct {
	top      [3]uint32
	exact    []uint32       // last words of /128s
	prefixes []netip.Prefix // /97 to /127, masked
	whole    bool           // the whole /96 (or a shorter range) matches
}

// BuildFilter returns the capture filter that passes the solicitations for
// addrs and ranges. coarse reports that it passes more than exactly those
// (the set was too big to list); the responder's decision still applies.
func BuildFilter(addrs []netip.Addr, ranges []netip.Prefix) (prog []bpf.Instruction, coarse bool) {
	groups := map[[3]uint32]*filterGroup{}
	var wide []netip.Prefix // ranges shorter than /96
	group := func(a netip.Addr) *filterGroup {
		b := a.As16()
		k := [3]uint32{binary.BigEndian.Uint32(b[0:]), binary.BigEndian.Uint32(b[4:]), binary.BigEndian.Uint32(b[8:])}
		g := groups[k]
		if g == nil {
			g = &filterGroup{top: k}
			groups[k] = g
		}
		return g
	}
	for _, a := range addrs {
		b := a.As16()
		g := group(a)
		g.exact = append(g.exact, binary.BigEndian.Uint32(b[12:]))
	}
	for _, p := range ranges {
		p = p.Masked()
		switch {
		case p.Bits() < 96:
			wide = append(wide, p)
		case p.Bits() == 96:
			group(p.Addr()).whole = true
		case p.Bits() == 128:
			b := p.Addr().As16()
			g := group(p.Addr())
			g.exact = append(g.exact, binary.BigEndian.Uint32(b[12:]))
		default:
			g := group(p.Addr())
			g.prefixes = append(g.prefixes, p)
		}
	}
	list := make([]*filterGroup, 0, len(groups))
	for _, g := range groups {
		slices.Sort(g.exact)
		g.exact = slices.Compact(g.exact)
		list = append(list, g)
	}
	slices.SortFunc(list, func(a, b *filterGroup) int { return slices.Compare(a.top[:], b.top[:]) })
	slices.SortFunc(wide, comparePrefix)

	// Coarsen until it fits: big groups to /112s, then groups to /96s.
	for level := 0; ; level++ {
		for _, g := range list {
			if level >= 1 && len(g.exact) > maxGroupExact {
				last := uint32(1)           // no /112 starts with a 1 in its last 16 bits
				for _, w := range g.exact { // sorted: so are their /112s
					if w&0xffff0000 != last {
						last = w & 0xffff0000
						g.prefixes = append(g.prefixes, netip.PrefixFrom(netip.AddrFrom16(g.addr(last)), 112))
					}
				}
				g.exact = nil
				slices.SortFunc(g.prefixes, comparePrefix)
				g.prefixes = slices.Compact(g.prefixes)
				coarse = true
			}
			if level >= 2 && len(g.exact)+len(g.prefixes) > maxGroupExact {
				g.whole, g.exact, g.prefixes = true, nil, nil
				coarse = true
			}
		}
		prog = assembleFilter(list, wide, level >= 3)
		if prog != nil && len(prog) <= maxFilterLen {
			return prog, coarse || level >= 3
		}
	}
}

func (g *filterGroup) addr(last uint32) [16]byte {
	var b [16]byte
	binary.BigEndian.PutUint32(b[0:], g.top[0])
	binary.BigEndian.PutUint32(b[4:], g.top[1])
	binary.BigEndian.PutUint32(b[8:], g.top[2])
	binary.BigEndian.PutUint32(b[12:], last)
	return b
}

func loadWord(i int) bpf.Instruction {
	return bpf.LoadIndirect{Off: uint32(filterTargetAt + 4*i), Size: 4}
}

// assembleFilter lays the program out. Every conditional jump goes to the
// next group's first instruction or to a return inside its own group, so
// offsets stay small whatever the number of groups; nil when a group is
// too long for 8-bit offsets.
func assembleFilter(groups []*filterGroup, wide []netip.Prefix, all bool) []bpf.Instruction {
	drop, accept := bpf.RetConstant{Val: 0}, bpf.RetConstant{Val: filterAccept}
	p := []bpf.Instruction{
		bpf.LoadAbsolute{Off: 6, Size: 1},                                // 0: next header
		bpf.LoadConstant{Dst: bpf.RegX, Val: 0},                          // 1: X = 0: no extension header
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: ProtoICMPv6, SkipTrue: 9},   // 2: -> 12
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: protoHopByHop, SkipTrue: 1}, // 3: -> 5
		drop, // 4
		bpf.LoadAbsolute{Off: IPv6HeaderLen, Size: 1},                  // 5: hop-by-hop's next header
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: ProtoICMPv6, SkipTrue: 1}, // 6: -> 8
		drop, // 7
		bpf.LoadAbsolute{Off: IPv6HeaderLen + 1, Size: 1}, // 8: its length in 8 bytes, minus one
		bpf.ALUOpConstant{Op: bpf.ALUOpAdd, Val: 1},       // 9
		bpf.ALUOpConstant{Op: bpf.ALUOpShiftLeft, Val: 3}, // 10
		bpf.TAX{}, // 11: X = its length
		bpf.LoadIndirect{Off: IPv6HeaderLen, Size: 1},                             // 12: icmpv6 type
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(TypeNeighSolic), SkipTrue: 1}, // 13
		drop, // 14
	}
	if all {
		return append(p, accept)
	}
	for _, w := range wide {
		// word by word: a mismatch skips to the end of this block
		b := w.Addr().As16()
		n := (w.Bits() + 31) / 32
		block := []bpf.Instruction{}
		for i := range n {
			bits := min(32, w.Bits()-32*i)
			mask := uint32(0xffffffff) << (32 - bits)
			block = append(block, loadWord(i))
			if mask != 0xffffffff {
				block = append(block, bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: mask})
			}
			block = append(block, bpf.JumpIf{Cond: bpf.JumpEqual, Val: binary.BigEndian.Uint32(b[4*i:]) & mask})
		}
		block = append(block, accept)
		p = append(p, fixSkips(block)...)
	}
	for _, g := range groups {
		var block []bpf.Instruction
		for i := range 3 {
			block = append(block, loadWord(i), bpf.JumpIf{Cond: bpf.JumpEqual, Val: g.top[i]})
		}
		if g.whole {
			block = append(block, accept)
			p = append(p, fixSkips(block)...)
			continue
		}
		// The /96 matched: the last word decides, no later group can match.
		var tail []bpf.Instruction
		tail = append(tail, loadWord(3))
		for _, w := range g.exact {
			tail = append(tail, bpf.JumpIf{Cond: bpf.JumpEqual, Val: w, SkipTrue: 0xff}) // to accept
		}
		for _, q := range g.prefixes {
			b := q.Addr().As16()
			mask := uint32(0xffffffff) << (128 - q.Bits())
			tail = append(tail, loadWord(3), bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: mask},
				bpf.JumpIf{Cond: bpf.JumpEqual, Val: binary.BigEndian.Uint32(b[12:]) & mask, SkipTrue: 0xff})
		}
		tail = append(tail, drop, accept)
		for i, ins := range tail {
			if j, ok := ins.(bpf.JumpIf); ok && j.SkipTrue == 0xff {
				j.SkipTrue = uint8(len(tail) - 1 - i - 1)
				tail[i] = j
			}
		}
		block = append(block, tail...)
		if len(block) > 250 { // jump offsets are 8 bits: coarsen
			return nil
		}
		p = append(p, fixSkips(block)...)
	}
	return append(p, drop)
}

// fixSkips points the false branch of every JumpIf in block without one
// (SkipFalse 0 and SkipTrue 0: "test and fall through") past the block's
// end, so a mismatch goes on with what follows.
func fixSkips(block []bpf.Instruction) []bpf.Instruction {
	for i, ins := range block {
		if j, ok := ins.(bpf.JumpIf); ok && j.SkipTrue == 0 && j.SkipFalse == 0 {
			j.SkipFalse = uint8(len(block) - 1 - i)
			block[i] = j
		}
	}
	return block
}
