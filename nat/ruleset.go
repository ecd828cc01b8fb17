package nat

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/v6bridge/v6bridge/netspec"
)

// TableName is the name of the one nftables table v6bridge owns, in family
// TableFamily.
const (
	TableName   = "v6bridge"
	TableFamily = "ip6"
)

// Base chain priorities (the standard nft names in brackets). The NAT chains
// run where the kernel's nat hooks expect them; the filter chains run at the
// usual filter priority, beside (not instead of) other tables' chains on the
// same hooks: our drops are final, our accepts only end our own chain.
const (
	PriorityDNAT   = -100 // "dstnat": prerouting and output DNAT of published ports
	PriorityFilter = 0    // "filter": the standard filter priority
	PrioritySNAT   = 100  // "srcnat": masquerade/SNAT in postrouting
	// PriorityJudge ("filter - 10") is where our input and forward chains
	// run: before the engine's ip6tables (iptables-nft, "filter"), so the
	// MarkJudged bit is set when its DOCKER-USER chain looks for it.
	PriorityJudge = PriorityFilter - 10
	// PriorityGuard ("filter + 10") is where the guard table's chains run:
	// after ours, to drop what our chains did not judge.
	PriorityGuard = PriorityFilter + 10
)

// MarkJudged is the packet mark bit v6bridge's input and forward chains set
// on every packet of its bridges they accept. What v6bridge adds outside its
// table (the guard table, the engine's DOCKER-USER) accepts a packet of our
// bridges only with this bit, so losing our table drops their traffic
// instead of opening it. Other bits of the mark are kept.
const MarkJudged uint32 = 0x20000000

// MarkPass is the packet mark bit v6bridge's forward chains set, with
// MarkJudged, on what they accept towards the uplinks or into one of our
// bridges: the engine's DOCKER-USER accepts only packets with both bits
// (Coexistence). What leaves our bridges for any other interface (the
// engine's own bridges, a VPN) carries MarkJudged alone, so the guard
// table lets it by and the engine's own rules judge it.
const MarkPass uint32 = 0x10000000

// Ruleset describes one nftables table: its sets and maps with their
// elements, and its chains with their rules. It is a plain value; the
// kernel side (Table.Apply) turns it into netlink messages and String
// renders it as nft text.
type Ruleset struct {
	Family     string // "ip6"
	Name       string // "v6bridge"
	Sets       []Set
	Flowtables []Flowtable
	Chains     []Chain
}

// Flowtable is a software fast path of the table: connections a rule hands
// to it (FlowOffload) are forwarded between Devices at their ingress hook,
// with their NAT, skipping the forward chain, conntrack and routing.
type Flowtable struct {
	Name     string
	Priority int      // of the ingress hook
	Devices  []string // interfaces whose ingress it hooks, sorted
	Counter  bool     // offloaded packets still count in conntrack
}

// DataType is the type of a set key or map value component.
type DataType int

// Data types used by the ruleset, named as nft names them.
const (
	TypeIfname DataType = iota + 1
	TypeIP6Addr
	TypeInetProto
	TypeInetService
	TypeICMPv6Type
)

// String returns nft's name of the type.
func (t DataType) String() string {
	switch t {
	case TypeIfname:
		return "ifname"
	case TypeIP6Addr:
		return "ipv6_addr"
	case TypeInetProto:
		return "inet_proto"
	case TypeInetService:
		return "inet_service"
	case TypeICMPv6Type:
		return "icmpv6_type"
	}
	return "invalid"
}

// Set is a named set (Data empty) or map (Data non-empty) of the table.
type Set struct {
	Name string
	Key  []DataType // more than one: a concatenation
	Data []DataType // map values; empty for a plain set
	// Interval: elements are ranges. With one TypeIP6Addr key they are
	// prefixes (Value.Prefix); with a concatenation (the kernel's pipapo
	// sets, Linux >= 5.6) each element is a single value per component
	// except ports, which may be ranges (Value.Num to Value.End), so a
	// published port range costs one element, not one per port, and
	// addresses, which may be prefixes (Value.Prefix).
	Interval bool
	Comment  string
	Elements []Element
}

// IsMap reports whether the set is a map.
func (s Set) IsMap() bool { return len(s.Data) > 0 }

// Element is one set element or map entry; Key and Data hold one Value per
// component of the set's Key and Data types.
type Element struct {
	Key  []Value
	Data []Value
}

// Value is one component of an element. Which field is used depends on the
// component's DataType: Name for TypeIfname, Addr for TypeIP6Addr (Prefix
// in single-key interval sets), Num for protocols, ports and ICMPv6 types.
// End, when above Num, makes a port the range Num-End (concatenated
// interval sets only).
type Value struct {
	Name   string
	Addr   netip.Addr
	Prefix netip.Prefix
	Num    uint16
	End    uint16
}

// last returns the last port of a port value: End for a range, else Num.
func (v Value) last() uint16 { return max(v.Num, v.End) }

// Chain is a base chain (Hook set) or a regular chain of the table.
type Chain struct {
	Name     string
	Type     string // "filter" or "nat"; base chains only
	Hook     string // "prerouting", "input", "forward", "output", "postrouting"; empty: regular chain
	Priority int
	Policy   string // "accept" or "drop"; base chains only
	Rules    []Rule
}

// Rule is a list of expressions evaluated left to right, the last usually
// a statement (verdict or NAT).
type Rule struct {
	Exprs   []Expr
	Comment string
}

// Expr is one match or statement of a rule. The concrete types are the
// ones of this package; the kernel side knows how to encode each.
type Expr interface {
	nft() string
}

// Field is a packet or metadata field a rule reads.
type Field int

// Fields a rule can match on.
const (
	FieldIIFName Field = iota + 1 // input interface name
	FieldOIFName                  // output interface name
	FieldSaddr                    // IPv6 source address
	FieldDaddr                    // IPv6 destination address
	FieldL4Proto                  // transport protocol number
	FieldDport                    // transport destination port (tcp, udp, sctp)
)

// String returns the field as nft writes it.
func (f Field) String() string {
	switch f {
	case FieldIIFName:
		return "iifname"
	case FieldOIFName:
		return "oifname"
	case FieldSaddr:
		return "ip6 saddr"
	case FieldDaddr:
		return "ip6 daddr"
	case FieldL4Proto:
		return "meta l4proto"
	case FieldDport:
		return "th dport"
	}
	return "invalid"
}

// Type returns the data type of the field's value.
func (f Field) Type() DataType {
	switch f {
	case FieldIIFName, FieldOIFName:
		return TypeIfname
	case FieldSaddr, FieldDaddr:
		return TypeIP6Addr
	case FieldL4Proto:
		return TypeInetProto
	case FieldDport:
		return TypeInetService
	}
	return 0
}

func fieldsText(fs []Field) string {
	parts := make([]string, len(fs))
	for i, f := range fs {
		parts[i] = f.String()
	}
	return strings.Join(parts, " . ")
}

// Lookup matches when the concatenation of Fields is (Invert: is not) an
// element of the named set.
type Lookup struct {
	Fields []Field
	Set    string
	Invert bool
}

func (e Lookup) nft() string {
	if e.Invert {
		return fieldsText(e.Fields) + " != @" + e.Set
	}
	return fieldsText(e.Fields) + " @" + e.Set
}

// Connection tracking states for CtState.
const (
	CtInvalid     = "invalid"
	CtEstablished = "established"
	CtRelated     = "related"
	CtNew         = "new"
)

// CtState matches when the packet's conntrack state is one of States.
type CtState struct {
	States []string
}

func (e CtState) nft() string { return "ct state " + strings.Join(e.States, ",") }

// L4Proto matches packets whose transport protocol is one of Protos.
type L4Proto struct {
	Protos []uint8
}

func (e L4Proto) nft() string { return nftOneOf("meta l4proto", e.Protos, ProtoName) }

// nftOneOf writes the match of key against vals as nft does: the one
// value's name, or an anonymous set of names.
func nftOneOf(key string, vals []uint8, name func(uint8) string) string {
	if len(vals) == 1 {
		return key + " " + name(vals[0])
	}
	names := make([]string, len(vals))
	for i, v := range vals {
		names[i] = name(v)
	}
	return key + " { " + strings.Join(names, ", ") + " }"
}

// FlowOffload hands the packet's connection to the named flowtable: its
// later packets take the fast path. It does not end the rule.
type FlowOffload struct {
	Flowtable string
}

func (e FlowOffload) nft() string { return "flow add @" + e.Flowtable }

// TCPNotSyn matches TCP packets that cannot start a connection: of SYN
// and ACK, not SYN alone.
type TCPNotSyn struct{}

func (TCPNotSyn) nft() string { return "tcp flags != syn / syn,ack" }

// CtStatusDNAT matches packets of connections whose destination was
// translated (a published port).
type CtStatusDNAT struct{}

func (CtStatusDNAT) nft() string { return "ct status dnat" }

// ICMPv6Type matches ICMPv6 packets of one of Types.
type ICMPv6Type struct {
	Types []uint8
}

func (e ICMPv6Type) nft() string { return nftOneOf("icmpv6 type", e.Types, icmpv6Name) }

// ICMPv6 types the ruleset names.
const (
	ICMPv6DestUnreach     uint8 = 1
	ICMPv6PacketTooBig    uint8 = 2
	ICMPv6TimeExceeded    uint8 = 3
	ICMPv6ParamProblem    uint8 = 4
	ICMPv6EchoRequest     uint8 = 128
	ICMPv6MLDQuery        uint8 = 130
	ICMPv6MLDReport       uint8 = 131
	ICMPv6MLDDone         uint8 = 132
	ICMPv6RouterSolicit   uint8 = 133
	ICMPv6NeighborSolicit uint8 = 135
	ICMPv6NeighborAdvert  uint8 = 136
	ICMPv6MLD2Report      uint8 = 143
)

// icmpv6Names are nft's names of the ICMPv6 types the rules use.
var icmpv6Names = map[uint8]string{
	ICMPv6DestUnreach:     "destination-unreachable",
	ICMPv6PacketTooBig:    "packet-too-big",
	ICMPv6TimeExceeded:    "time-exceeded",
	ICMPv6ParamProblem:    "parameter-problem",
	ICMPv6EchoRequest:     "echo-request",
	ICMPv6MLDQuery:        "mld-listener-query",
	ICMPv6MLDReport:       "mld-listener-report",
	ICMPv6MLDDone:         "mld-listener-done",
	ICMPv6RouterSolicit:   "nd-router-solicit",
	ICMPv6NeighborSolicit: "nd-neighbor-solicit",
	ICMPv6NeighborAdvert:  "nd-neighbor-advert",
	ICMPv6MLD2Report:      "mld2-listener-report",
}

// icmpv6Name is nft's name of ICMPv6 type t, or its number.
func icmpv6Name(t uint8) string {
	if n, ok := icmpv6Names[t]; ok {
		return n
	}
	return strconv.Itoa(int(t))
}

// Verdict kinds.
const (
	VerdictAccept = "accept"
	VerdictDrop   = "drop"
	VerdictJump   = "jump"
	VerdictReturn = "return"
)

// Verdict ends the rule with accept, drop, return or a jump to Chain.
type Verdict struct {
	Kind  string
	Chain string // for VerdictJump
}

func (e Verdict) nft() string {
	if e.Kind == VerdictJump {
		return "jump " + e.Chain
	}
	return e.Kind
}

// AddrCmp matches when Field (FieldSaddr or FieldDaddr) is (Invert: is
// not) Addr.
type AddrCmp struct {
	Field  Field
	Addr   netip.Addr
	Invert bool
}

func (e AddrCmp) nft() string {
	if e.Invert {
		return e.Field.String() + " != " + e.Addr.String()
	}
	return e.Field.String() + " " + e.Addr.String()
}

// MarkSet sets the Bits of the packet mark, keeping the others.
type MarkSet struct{ Bits uint32 }

func (e MarkSet) nft() string { return fmt.Sprintf("meta mark set meta mark | 0x%08x", e.Bits) }

// MarkMatch matches when all Bits of the packet mark are set (Invert: not
// all of them).
type MarkMatch struct {
	Bits   uint32
	Invert bool
}

func (e MarkMatch) nft() string {
	op := "=="
	if e.Invert {
		op = "!="
	}
	return fmt.Sprintf("meta mark & 0x%08x %s 0x%08x", e.Bits, op, e.Bits)
}

// Masquerade rewrites the source to the output interface's address.
type Masquerade struct{}

func (Masquerade) nft() string { return "masquerade" }

// NAT kinds for NATMap.
const (
	NATSource = "snat"
	NATDest   = "dnat"
)

// NATMap translates the source (snat) or destination (dnat) to the value
// the named map holds for the concatenation of Fields. A dnat map's value
// is an address and a port, a snat map's an address. No entry: no change.
type NATMap struct {
	Kind   string
	Fields []Field
	Map    string
	// AddrOnly: the dnat map's value is an address alone and the port is
	// kept (published port ranges whose host and container ports are the
	// same).
	AddrOnly bool
}

func (e NATMap) nft() string {
	// nft names the family only where the value is an address and a port.
	family := ""
	if e.Kind == NATDest && !e.AddrOnly {
		family = " ip6"
	}
	return e.Kind + family + " to " + fieldsText(e.Fields) + " map @" + e.Map
}

// String renders the ruleset like `nft list table`, one set element per
// line, for golden tests and `v6bridge status`.
func (r *Ruleset) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "table %s %s {\n", r.Family, r.Name)
	for i, s := range r.Sets {
		if i > 0 {
			b.WriteString("\n")
		}
		writeSet(&b, s)
	}
	for i, f := range r.Flowtables {
		if i > 0 || len(r.Sets) > 0 {
			b.WriteString("\n")
		}
		writeFlowtable(&b, f)
	}
	for i, c := range r.Chains {
		if i > 0 || len(r.Sets)+len(r.Flowtables) > 0 {
			b.WriteString("\n")
		}
		writeChain(&b, c)
	}
	b.WriteString("}\n")
	return b.String()
}

func typesText(ts []DataType) string {
	parts := make([]string, len(ts))
	for i, t := range ts {
		parts[i] = t.String()
	}
	return strings.Join(parts, " . ")
}

func writeSet(b *strings.Builder, s Set) {
	kind := "set"
	typ := typesText(s.Key)
	if s.IsMap() {
		kind = "map"
		typ += " : " + typesText(s.Data)
	}
	fmt.Fprintf(b, "\t%s %s {\n\t\ttype %s\n", kind, s.Name, typ)
	if s.Interval {
		b.WriteString("\t\tflags interval\n")
	}
	if s.Comment != "" {
		fmt.Fprintf(b, "\t\tcomment %q\n", s.Comment)
	}
	if len(s.Elements) > 0 {
		b.WriteString("\t\telements = { ")
		for i, e := range s.Elements {
			if i > 0 {
				b.WriteString(",\n\t\t\t     ")
			}
			b.WriteString(valuesText(s.Key, e.Key, s.Interval))
			if s.IsMap() {
				b.WriteString(" : " + valuesText(s.Data, e.Data, false))
			}
		}
		b.WriteString(" }\n")
	}
	b.WriteString("\t}\n")
}

func valuesText(ts []DataType, vs []Value, interval bool) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		var t DataType
		if i < len(ts) {
			t = ts[i]
		}
		parts[i] = valueText(t, v, interval)
	}
	return strings.Join(parts, " . ")
}

func valueText(t DataType, v Value, interval bool) string {
	switch t {
	case TypeIfname:
		return strconv.Quote(v.Name)
	case TypeIP6Addr:
		if interval && v.Prefix.IsValid() {
			return v.Prefix.String()
		}
		return v.Addr.String()
	case TypeInetProto:
		return ProtoName(uint8(v.Num))
	case TypeICMPv6Type:
		return icmpv6Name(uint8(v.Num))
	}
	if v.End > v.Num {
		return strconv.Itoa(int(v.Num)) + "-" + strconv.Itoa(int(v.End))
	}
	return strconv.Itoa(int(v.Num))
}

// priorityText names the priority as nft 1.0 prints it: the standard names
// only on the hooks they are defined for.
func priorityText(c Chain) string {
	p := c.Priority
	switch {
	case c.Type == "filter" && p == PriorityFilter:
		return "filter"
	case c.Type == "filter" && p < PriorityFilter:
		return "filter - " + strconv.Itoa(PriorityFilter-p)
	case c.Type == "filter" && p > PriorityFilter:
		return "filter + " + strconv.Itoa(p-PriorityFilter)
	case c.Type == "nat" && c.Hook == "prerouting" && p == PriorityDNAT:
		return "dstnat"
	case c.Type == "nat" && c.Hook == "postrouting" && p == PrioritySNAT:
		return "srcnat"
	}
	return strconv.Itoa(p)
}

// writeFlowtable writes the flowtable as nft 1.0 lists it.
func writeFlowtable(b *strings.Builder, f Flowtable) {
	prio := strconv.Itoa(f.Priority)
	if f.Priority == PriorityFilter {
		prio = "filter"
	}
	fmt.Fprintf(b, "\tflowtable %s {\n\t\thook ingress priority %s\n", f.Name, prio)
	if len(f.Devices) > 0 {
		fmt.Fprintf(b, "\t\tdevices = { %s }\n", strings.Join(f.Devices, ", "))
	}
	if f.Counter {
		b.WriteString("\t\tcounter\n")
	}
	b.WriteString("\t}\n")
}

func writeChain(b *strings.Builder, c Chain) {
	fmt.Fprintf(b, "\tchain %s {\n", c.Name)
	if c.Hook != "" {
		fmt.Fprintf(b, "\t\ttype %s hook %s priority %s; policy %s;\n", c.Type, c.Hook, priorityText(c), c.Policy)
	}
	for _, r := range c.Rules {
		b.WriteString("\t\t" + r.String() + "\n")
	}
	b.WriteString("\t}\n")
}

// String renders the rule as nft text.
func (r Rule) String() string {
	parts := make([]string, 0, len(r.Exprs)+1)
	for _, e := range r.Exprs {
		parts = append(parts, e.nft())
	}
	if r.Comment != "" {
		parts = append(parts, "comment "+strconv.Quote(r.Comment))
	}
	return strings.Join(parts, " ")
}

// ProtoName returns "tcp", "udp" or "sctp" for the protocol number, or the
// number itself.
func ProtoName(p uint8) string { return netspec.ProtoName(p) }
