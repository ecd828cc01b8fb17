package nat

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// This file turns a Ruleset into google/nftables objects, encoding each
// expression the way nft itself does, so `nft list table ip6 v6bridge`
// shows the same rules as Ruleset.String.

const ifnameSize = 16 // IFNAMSIZ: meta iifname/oifname load 16 bytes

func nftType(t DataType) nftables.SetDatatype {
	switch t {
	case TypeIfname:
		return nftables.TypeIFName
	case TypeIP6Addr:
		return nftables.TypeIP6Addr
	case TypeInetProto:
		return nftables.TypeInetProto
	case TypeInetService:
		return nftables.TypeInetService
	case TypeICMPv6Type:
		return nftables.TypeICMP6Type
	}
	return nftables.TypeInvalid
}

func nftTypes(ts []DataType) (nftables.SetDatatype, error) {
	if len(ts) == 1 {
		return nftType(ts[0]), nil
	}
	parts := make([]nftables.SetDatatype, len(ts))
	for i, t := range ts {
		parts[i] = nftType(t)
	}
	return nftables.ConcatSetType(parts...)
}

// regWords is how many 32-bit registers a value of the type takes in a
// concatenation (values are padded to 4 bytes).
func regWords(t DataType) uint32 {
	switch t {
	case TypeIfname:
		return ifnameSize / 4
	case TypeIP6Addr:
		return 4
	}
	return 1
}

// encodeValue returns the bytes of one component, padded to 4 bytes as in
// a concatenation when pad is set.
func encodeValue(t DataType, v Value, pad bool) []byte {
	var b []byte
	switch t {
	case TypeIfname:
		b = make([]byte, ifnameSize)
		copy(b, v.Name)
	case TypeIP6Addr:
		a := v.Addr
		if !a.IsValid() && v.Prefix.IsValid() {
			a = v.Prefix.Masked().Addr() // a prefix in a concatenated interval set: its first address
		}
		a16 := a.As16()
		b = a16[:]
	case TypeInetProto, TypeICMPv6Type:
		b = []byte{byte(v.Num)}
	case TypeInetService:
		b = binary.BigEndian.AppendUint16(nil, v.Num)
	}
	if pad && len(b)%4 != 0 {
		b = append(b, make([]byte, 4-len(b)%4)...)
	}
	return b
}

func encodeValues(ts []DataType, vs []Value) []byte {
	var b []byte
	pad := len(ts) > 1
	for i, t := range ts {
		b = append(b, encodeValue(t, vs[i], pad)...)
	}
	return b
}

// nftSet returns the set definition and its elements. Interval sets hold
// prefixes as half-open ranges [first, last+1).
func nftSet(t *nftables.Table, s Set) (*nftables.Set, []nftables.SetElement, error) {
	key, err := nftTypes(s.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("set %s: %w", s.Name, err)
	}
	set := &nftables.Set{
		Table:         t,
		Name:          s.Name,
		KeyType:       key,
		Interval:      s.Interval,
		Concatenation: len(s.Key) > 1,
		Comment:       s.Comment,
	}
	if len(s.Key) == 1 && s.Key[0] == TypeIfname {
		// nft stores ifname in host byte order; without this hint it
		// lists the names as "".
		set.KeyByteOrder = binaryutil.NativeEndian
	}
	if s.IsMap() {
		data, err := nftTypes(s.Data)
		if err != nil {
			return nil, nil, fmt.Errorf("map %s: %w", s.Name, err)
		}
		set.IsMap = true
		set.DataType = data
	}
	var elems []nftables.SetElement
	for _, e := range s.Elements {
		if s.Interval && len(s.Key) > 1 {
			// pipapo: each element is a whole range, first key to
			// KeyEnd, both inclusive.
			el := nftables.SetElement{Key: encodeValues(s.Key, e.Key), KeyEnd: encodeValues(s.Key, rangeEnds(e.Key))}
			if s.IsMap() {
				el.Val = encodeValues(s.Data, e.Data)
			}
			elems = append(elems, el)
			continue
		}
		if s.Interval {
			p := e.Key[0].Prefix
			first := p.Addr().As16()
			end := lastAddr(p.Addr().As16(), p.Bits())
			el := nftables.SetElement{Key: first[:]}
			if s.IsMap() {
				el.Val = encodeValues(s.Data, e.Data)
			}
			elems = append(elems, el)
			next, overflow := nextAddr(end)
			if overflow {
				elems[len(elems)-1].IntervalOpen = true
				continue
			}
			elems = append(elems, nftables.SetElement{Key: next[:], IntervalEnd: true})
			continue
		}
		el := nftables.SetElement{Key: encodeValues(s.Key, e.Key)}
		if s.IsMap() {
			el.Val = encodeValues(s.Data, e.Data)
		}
		elems = append(elems, el)
	}
	return set, elems, nil
}

// rangeEnds returns the values with each port range replaced by its last
// port and each prefix by its last address: the end key of a concatenated
// interval element.
func rangeEnds(vs []Value) []Value {
	out := make([]Value, len(vs))
	for i, v := range vs {
		out[i] = Value{Name: v.Name, Addr: v.Addr, Num: v.last()}
		if !v.Addr.IsValid() && v.Prefix.IsValid() {
			out[i].Addr = netip.AddrFrom16(lastAddr(v.Prefix.Masked().Addr().As16(), v.Prefix.Bits()))
		}
	}
	return out
}

func lastAddr(a [16]byte, bits int) [16]byte {
	for i := bits; i < 128; i++ {
		a[i/8] |= 0x80 >> (i % 8)
	}
	return a
}

func nextAddr(a [16]byte) ([16]byte, bool) {
	for i := 15; i >= 0; i-- {
		a[i]++
		if a[i] != 0 {
			return a, false
		}
	}
	return a, true
}

func fieldLoad(f Field, reg uint32) expr.Any {
	switch f {
	case FieldIIFName:
		return &expr.Meta{Key: expr.MetaKeyIIFNAME, Register: reg}
	case FieldOIFName:
		return &expr.Meta{Key: expr.MetaKeyOIFNAME, Register: reg}
	case FieldSaddr:
		return &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: 8, Len: 16}
	case FieldDaddr:
		return &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: 24, Len: 16}
	case FieldL4Proto:
		return &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg}
	case FieldDport:
		return &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2}
	}
	return nil
}

// loadFields loads the fields one after the other from register 1 (the
// first 32-bit register), as nft lays out a concatenation.
func loadFields(fs []Field) []expr.Any {
	var out []expr.Any
	reg := uint32(unix.NFT_REG32_00)
	for _, f := range fs {
		out = append(out, fieldLoad(f, reg))
		reg += regWords(f.Type())
	}
	return out
}

// compiler turns the rules of one batch into expressions; it needs the
// batch's named sets (by name) and adds anonymous sets to the connection.
type compiler struct {
	conn       *nftables.Conn
	table      *nftables.Table
	sets       map[string]*nftables.Set
	flowtables map[string]bool
}

func (c *compiler) rule(chain *nftables.Chain, r Rule) (*nftables.Rule, error) {
	out := &nftables.Rule{Table: c.table, Chain: chain}
	for _, e := range r.Exprs {
		exprs, err := c.expr(e)
		if err != nil {
			return nil, fmt.Errorf("chain %s rule %q: %w", chain.Name, r.String(), err)
		}
		out.Exprs = append(out.Exprs, exprs...)
	}
	if r.Comment != "" {
		out.UserData = userdata.AppendString(nil, userdata.TypeComment, r.Comment)
	}
	return out, nil
}

func (c *compiler) lookup(name string) (*nftables.Set, error) {
	s, ok := c.sets[name]
	if !ok {
		return nil, fmt.Errorf("unknown set %q", name)
	}
	return s, nil
}

// byteIn appends to out, which loads one byte into register 1, the match
// of that byte against vals: a compare for one value, else a lookup in an
// anonymous constant set of key type typ; what names the match in errors.
func (c *compiler) byteIn(out []expr.Any, vals []uint8, typ nftables.SetDatatype, what string) ([]expr.Any, error) {
	if len(vals) == 1 {
		return append(out, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{vals[0]}}), nil
	}
	anon := &nftables.Set{Table: c.table, Anonymous: true, Constant: true, KeyType: typ}
	elems := make([]nftables.SetElement, len(vals))
	for i, v := range vals {
		elems[i] = nftables.SetElement{Key: []byte{v}}
	}
	if err := c.conn.AddSet(anon, elems); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return append(out, &expr.Lookup{SourceRegister: 1, SetName: anon.Name, SetID: anon.ID}), nil
}

func ctBits(key expr.CtKey, mask uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: key},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binary.NativeEndian.AppendUint32(nil, mask), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}

func (c *compiler) expr(e Expr) ([]expr.Any, error) {
	switch e := e.(type) {
	case Lookup:
		s, err := c.lookup(e.Set)
		if err != nil {
			return nil, err
		}
		return append(loadFields(e.Fields), &expr.Lookup{
			SourceRegister: unix.NFT_REG32_00, SetName: s.Name, SetID: s.ID, Invert: e.Invert,
		}), nil
	case CtState:
		var mask uint32
		for _, st := range e.States {
			switch st {
			case CtInvalid:
				mask |= expr.CtStateBitINVALID
			case CtEstablished:
				mask |= expr.CtStateBitESTABLISHED
			case CtRelated:
				mask |= expr.CtStateBitRELATED
			case CtNew:
				mask |= expr.CtStateBitNEW
			default:
				return nil, fmt.Errorf("unknown ct state %q", st)
			}
		}
		return ctBits(expr.CtKeySTATE, mask), nil
	case L4Proto:
		out := []expr.Any{&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1}}
		return c.byteIn(out, e.Protos, nftables.TypeInetProto, "l4proto")
	case FlowOffload:
		if !c.flowtables[e.Flowtable] {
			return nil, fmt.Errorf("unknown flowtable %q", e.Flowtable)
		}
		return []expr.Any{&expr.FlowOffload{Name: e.Flowtable}}, nil
	case TCPNotSyn:
		const syn, ack = 0x02, 0x10
		return []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{syn | ack}, Xor: []byte{0}},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{syn}},
		}, nil
	case CtStatusDNAT:
		return ctBits(expr.CtKeySTATUS, 1<<5 /* IPS_DST_NAT */), nil
	case ICMPv6Type:
		out := []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_ICMPV6}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
		}
		return c.byteIn(out, e.Types, nftables.TypeICMP6Type, "icmpv6 types")
	case Verdict:
		switch e.Kind {
		case VerdictAccept:
			return []expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}}, nil
		case VerdictDrop:
			return []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}}, nil
		case VerdictReturn:
			return []expr.Any{&expr.Verdict{Kind: expr.VerdictReturn}}, nil
		case VerdictJump:
			return []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: e.Chain}}, nil
		}
		return nil, fmt.Errorf("unknown verdict %q", e.Kind)
	case AddrCmp:
		op := expr.CmpOpEq
		if e.Invert {
			op = expr.CmpOpNeq
		}
		a := e.Addr.As16()
		return []expr.Any{fieldLoad(e.Field, 1), &expr.Cmp{Op: op, Register: 1, Data: a[:]}}, nil
	case MarkSet:
		return []expr.Any{
			&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
				Mask: binary.NativeEndian.AppendUint32(nil, ^e.Bits), Xor: binary.NativeEndian.AppendUint32(nil, e.Bits)},
			&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1},
		}, nil
	case MarkMatch:
		return markMatch(e.Bits, e.Invert), nil
	case Masquerade:
		return []expr.Any{&expr.Masq{}}, nil
	case NATMap:
		s, err := c.lookup(e.Map)
		if err != nil {
			return nil, err
		}
		out := append(loadFields(e.Fields), &expr.Lookup{
			SourceRegister: unix.NFT_REG32_00, DestRegister: unix.NFT_REG32_00, IsDestRegSet: true,
			SetName: s.Name, SetID: s.ID,
		})
		n := &expr.NAT{Family: unix.NFPROTO_IPV6, RegAddrMin: unix.NFT_REG32_00}
		switch e.Kind {
		case NATSource:
			n.Type = expr.NATTypeSourceNAT
		case NATDest:
			n.Type = expr.NATTypeDestNAT
			if !e.AddrOnly {
				// The map's value is address . port: the port follows
				// the address's four registers.
				n.RegProtoMin = unix.NFT_REG32_00 + 4
				n.Specified = true
			}
		default:
			return nil, fmt.Errorf("unknown nat kind %q", e.Kind)
		}
		return append(out, n), nil
	}
	return nil, fmt.Errorf("unknown expression %T", e)
}

func nftFlowtable(t *nftables.Table, f Flowtable) *nftables.Flowtable {
	ft := &nftables.Flowtable{
		Table:    t,
		Name:     f.Name,
		Hooknum:  nftables.FlowtableHookIngress,
		Priority: nftables.FlowtablePriorityRef(nftables.FlowtablePriority(f.Priority)),
		Devices:  slices.Clone(f.Devices),
	}
	if f.Counter {
		ft.Flags |= nftables.FlowtableFlagsCounter
	}
	return ft
}

// markMatch is what nft and iptables-nft write for "meta mark & bits ==
// bits" (`-m mark --mark bits/bits`), or != with invert.
func markMatch(bits uint32, invert bool) []expr.Any {
	op := expr.CmpOpEq
	if invert {
		op = expr.CmpOpNeq
	}
	b := binary.NativeEndian.AppendUint32(nil, bits)
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: b, Xor: make([]byte, 4)},
		&expr.Cmp{Op: op, Register: 1, Data: b},
	}
}

// chainTypes and chainHooks name the chain types and hooks a Chain may use.
var (
	chainTypes = map[string]nftables.ChainType{"filter": nftables.ChainTypeFilter, "nat": nftables.ChainTypeNAT}
	chainHooks = map[string]*nftables.ChainHook{
		"prerouting":  nftables.ChainHookPrerouting,
		"input":       nftables.ChainHookInput,
		"forward":     nftables.ChainHookForward,
		"output":      nftables.ChainHookOutput,
		"postrouting": nftables.ChainHookPostrouting,
	}
)

func nftChain(t *nftables.Table, c Chain) (*nftables.Chain, error) {
	ch := &nftables.Chain{Name: c.Name, Table: t}
	if c.Hook == "" {
		return ch, nil
	}
	var ok bool
	if ch.Type, ok = chainTypes[c.Type]; !ok {
		return nil, fmt.Errorf("chain %s: unknown type %q", c.Name, c.Type)
	}
	if ch.Hooknum, ok = chainHooks[c.Hook]; !ok {
		return nil, fmt.Errorf("chain %s: unknown hook %q", c.Name, c.Hook)
	}
	ch.Priority = nftables.ChainPriorityRef(nftables.ChainPriority(c.Priority))
	policy := nftables.ChainPolicyAccept
	if c.Policy == VerdictDrop {
		policy = nftables.ChainPolicyDrop
	}
	ch.Policy = &policy
	return ch, nil
}

// addRuleset queues the whole table into the connection's batch: the table
// is added, deleted and added again (so the batch works whether or not it
// existed), then its sets, chains and rules. Nothing reaches the kernel
// until the caller's Flush, which commits all of it or nothing.
func addRuleset(conn *nftables.Conn, r *Ruleset) error {
	t := &nftables.Table{Family: nftables.TableFamilyIPv6, Name: r.Name}
	conn.AddTable(t)
	conn.DelTable(t)
	conn.AddTable(t)
	c := &compiler{conn: conn, table: t, sets: map[string]*nftables.Set{}}
	for _, s := range r.Sets {
		set, elems, err := nftSet(t, s)
		if err != nil {
			return err
		}
		if err := conn.AddSet(set, elems); err != nil {
			return fmt.Errorf("set %s: %w", s.Name, err)
		}
		c.sets[s.Name] = set
	}
	c.flowtables = map[string]bool{}
	for _, f := range r.Flowtables {
		conn.AddFlowtable(nftFlowtable(t, f))
		c.flowtables[f.Name] = true
	}
	chains := make([]*nftables.Chain, len(r.Chains))
	for i, ch := range r.Chains {
		nch, err := nftChain(t, ch)
		if err != nil {
			return err
		}
		chains[i] = conn.AddChain(nch)
	}
	for i, ch := range r.Chains {
		for _, rule := range ch.Rules {
			nr, err := c.rule(chains[i], rule)
			if err != nil {
				return err
			}
			conn.AddRule(nr)
		}
	}
	return nil
}
