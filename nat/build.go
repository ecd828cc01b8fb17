package nat

import (
	"cmp"
	"net/netip"
	"slices"
)

// Names of the sets and maps of the table. The rules are the same for every
// State with at least one network; only these sets' elements change.
const (
	SetBridges   = "bridges"    // ifname: every v6bridge bridge
	SetUplinks   = "uplinks"    // ifname: the host's outside interfaces (State.Uplinks)
	SetIntra     = "intra"      // ifname . ifname: (bridge, bridge) of networks with ICC: traffic within one network
	SetInternal  = "internal"   // ifname: bridges of internal networks
	SetGateways  = "gateways"   // ifname . ipv6_addr: internal bridge and its gateway address
	SetPing      = "ping"       // ifname: public/routed bridges answering echo requests from outside
	SetPublished = "published"  // ipv6_addr . inet_proto . inet_service ranges: container ports behind a DNAT
	SetOpen      = "open"       // ipv6_addr . inet_proto . inet_service ranges: container ports open directly (public/routed)
	SetAllow     = "allow"      // ifname . inet_proto . inet_service ranges: ports open on every endpoint of a bridge
	SetSubnets   = "subnets"    // ipv6_addr interval: every network's subnet (hairpin sources)
	SetSources   = "sources"    // ifname . ipv6_addr interval: the sources each bridge may send from
	SetMasq      = "masq"       // ipv6_addr interval: nat subnets masqueraded outbound
	MapSNAT      = "snat"       // ipv6_addr interval : ipv6_addr: nat subnets SNATed to a chosen address
	MapDNAT      = "dnat"       // host address . proto . host port : container address . container port
	MapDNATRange = "dnat_range" // host address . proto . host port range : container address (port kept)
	ChainPre     = "prerouting" // nat prerouting: DNAT of published ports
	ChainOut     = "output"     // nat output: DNAT of published ports for the host itself
	ChainPost    = "postrouting"
	ChainInput   = "input"
	ChainInInt   = "input_internal"
	ChainForward = "forward"
	ChainFwdIn   = "forward_in"  // traffic entering one of our bridges
	ChainFwdOut  = "forward_out" // traffic leaving one of our bridges for a foreign interface
	ChainSource  = "from_bridge" // source validation of traffic entering the host from one of our bridges
)

// GuardTableName is the table v6bridge keeps beside its own (family
// TableFamily): it drops traffic of our bridges that our chains did not
// mark (MarkJudged), so deleting table v6bridge closes the bridges instead
// of opening them. See BuildGuard.
const GuardTableName = "v6bridge-guard"

// Build validates the State and turns it into the ruleset of the v6bridge
// table. A State without networks yields an empty table.
//
// Per mode:
//   - nat: outbound is masqueraded (or SNATed to Network.SNAT) when it leaves
//     through an interface that is not one of our bridges; inbound only to
//     published ports through DNAT of a host address.
//   - public, routed: no NAT; inbound is dropped except the endpoint's Open
//     container ports (directly on the container address), its Ports
//     (through DNAT of a host address), Allow ports and, with AllowPing,
//     echo requests.
//   - internal: forward drops both directions; input from the bridge only
//     reaches the gateway address (plus NDP/MLD); published ports ignored.
//
// In every mode replies to connections the container opened pass, with the
// ICMPv6 errors about them (ct state related; an error about no connection
// is dropped), traffic between two of our bridges is dropped unless it was
// DNATed to a published port (hairpin: it is then masqueraded so replies
// come back through the host). Traffic within one network is bridged; when
// it is routed through the gateway instead (or br_netfilter shows it to the
// forward hook), it is accepted only on networks with ICC: with ICC off
// bridge port isolation stops the bridged path and this table the routed
// one.
//
// Whatever enters the host from a bridge (forwarded or for the host) must
// come from an address of that bridge: its subnet, link-local (fe80::/10),
// an address its containers hold on another network (Endpoint.Also), or ::
// for duplicate address detection and MLD. A spoofed source is dropped
// before it reaches the uplink, NAT or the host, whatever its conntrack
// state: the check comes before every shortcut for established
// connections, so a packet forged on one bridge with the tuple of another
// bridge's connection goes nowhere. It costs one lookup per packet in the
// set "sources" (bridge . source prefix), not a rule per network.
//
// Every packet of our bridges the input and forward chains accept gets the
// MarkJudged bit, which the guard table (BuildGuard) looks for; what the
// forward chains accept into our bridges or from them to an uplink also
// gets MarkPass, which the engine's DOCKER-USER rule looks for (see
// MarkPass).
// Traffic not touching our bridges is left alone: base chains have policy
// accept and match our bridges explicitly.
func Build(s State) (*Ruleset, error) {
	if err := Validate(s); err != nil {
		return nil, err
	}
	return build(s), nil
}

// build is Build of a State Validate accepted.
func build(s State) *Ruleset {
	r := &Ruleset{Family: TableFamily, Name: TableName}
	if len(s.Networks) == 0 {
		return r
	}
	r.Sets = buildSets(s)
	r.Chains = buildChains()
	if s.FastPath {
		addFastPath(r, s)
	}
	return r
}

func name(n string) Value             { return Value{Name: n} }
func addr(a netip.Addr) Value         { return Value{Addr: a} }
func prefix(p netip.Prefix) Value     { return Value{Prefix: p} }
func num[T uint8 | uint16](n T) Value { return Value{Num: uint16(n)} }

// portKey is the key of the published, open and dnat sets: a container
// (or host) address, a protocol and a port.
var portKey = []DataType{TypeIP6Addr, TypeInetProto, TypeInetService}

// Indexes of the endpoint sets in an endpointSets array, in table order.
const (
	esPublished = iota
	esOpen
	esDNAT
	esDNATRange
	esSources
	numEndpointSets
)

// endpointSetDefs are the definitions of the sets endpoints fill, by
// endpointSets index.
func endpointSetDefs() [numEndpointSets]Set {
	return [numEndpointSets]Set{
		{Name: SetPublished, Key: portKey, Interval: true},
		{Name: SetOpen, Key: portKey, Interval: true},
		{Name: MapDNAT, Key: portKey, Data: []DataType{TypeIP6Addr, TypeInetService}},
		{Name: MapDNATRange, Key: portKey, Data: []DataType{TypeIP6Addr}, Interval: true},
		{Name: SetSources, Key: []DataType{TypeIfname, TypeIP6Addr}, Interval: true},
	}
}

// linkLocal is the link-local prefix: a source every bridge may send from
// (router and neighbour discovery, MLD); the kernel never forwards it.
var linkLocal = netip.MustParsePrefix("fe80::/10")

// endpointSets holds the elements one or more endpoints contribute, by
// endpointSets index.
type endpointSets [numEndpointSets][]Element

func buildSets(s State) []Set {
	bridges := Set{Name: SetBridges, Key: []DataType{TypeIfname}}
	uplinks := Set{Name: SetUplinks, Key: []DataType{TypeIfname}}
	intra := Set{Name: SetIntra, Key: []DataType{TypeIfname, TypeIfname}}
	internal := Set{Name: SetInternal, Key: []DataType{TypeIfname}}
	gateways := Set{Name: SetGateways, Key: []DataType{TypeIfname, TypeIP6Addr}}
	ping := Set{Name: SetPing, Key: []DataType{TypeIfname}}
	defs := endpointSetDefs()
	allow := Set{Name: SetAllow, Key: []DataType{TypeIfname, TypeInetProto, TypeInetService}, Interval: true}
	subnets := Set{Name: SetSubnets, Key: []DataType{TypeIP6Addr}, Interval: true}
	masq := Set{Name: SetMasq, Key: []DataType{TypeIP6Addr}, Interval: true}
	snat := Set{Name: MapSNAT, Key: []DataType{TypeIP6Addr}, Data: []DataType{TypeIP6Addr}, Interval: true}

	add := func(set *Set, key ...Value) { set.Elements = append(set.Elements, Element{Key: key}) }
	var eps endpointSets
	for _, u := range s.Uplinks {
		add(&uplinks, name(u))
	}
	for _, n := range s.Networks {
		br := name(n.Bridge)
		add(&bridges, br)
		eps[esSources] = append(eps[esSources], Element{Key: []Value{br, prefix(n.Subnet)}}, Element{Key: []Value{br, prefix(linkLocal)}})
		if n.ICC {
			add(&intra, br, br)
		}
		add(&subnets, prefix(n.Subnet))
		if n.Mode == ModeInternal {
			add(&internal, br)
			add(&gateways, br, addr(n.Gateway))
			continue
		}
		public := n.Mode == ModePublic || n.Mode == ModeRouted
		if n.Mode == ModeNAT {
			if n.SNAT.IsValid() {
				snat.Elements = append(snat.Elements, Element{Key: []Value{prefix(n.Subnet)}, Data: []Value{addr(n.SNAT)}})
			} else {
				add(&masq, prefix(n.Subnet))
			}
		}
		if public && n.AllowPing {
			add(&ping, br)
		}
		if public {
			var es []Element
			for _, p := range n.Allow {
				es = append(es, Element{Key: []Value{br, num(p.Proto), portRange(p.First, p.Last)}})
			}
			allow.Elements = append(allow.Elements, mergeRanges(es)...)
		}
		for _, e := range n.Endpoints {
			endpointElements(s.HostAddrs, n, e, &eps)
		}
	}
	for i := range defs {
		defs[i].Elements = eps[i]
	}
	sets := []Set{bridges, uplinks, intra, internal, gateways, ping, defs[esPublished], defs[esOpen], allow, subnets, defs[esSources], masq, snat, defs[esDNAT], defs[esDNATRange]}
	for i := range sets {
		sets[i].Elements = sortElements(sets[i].Elements)
	}
	return sets
}

// portRange is a port value covering first to last.
func portRange(first, last uint16) Value {
	if last > first {
		return Value{Num: first, End: last}
	}
	return Value{Num: first}
}

// endpointElements appends the elements endpoint e of network n (nat,
// public or routed) contributes: its published container ports (what DNAT
// may reach), its open ports (public and routed networks: reachable
// directly), its host ports in dnat (single ports and ranges that shift
// the port) or dnat_range (ranges that keep the port: one element for the
// whole range), and its container's other addresses as sources of n's
// bridge. Model uses it too, so an incremental update adds exactly what
// Build would.
func endpointElements(hostAddrs []netip.Addr, n Network, e Endpoint, out *endpointSets) {
	public := n.Mode == ModePublic || n.Mode == ModeRouted
	for _, o := range e.Also {
		out[esSources] = append(out[esSources], Element{Key: []Value{name(n.Bridge), addr(o)}})
	}
	a := addr(e.Addr)
	var published, open []Element
	for _, m := range e.Ports {
		n := m.HostLast - m.HostFirst
		published = append(published, Element{Key: []Value{a, num(m.Proto), portRange(m.ContainerFirst, m.ContainerFirst+n)}})
		for _, h := range m.Hosts(hostAddrs) {
			switch {
			case n > 0 && m.HostFirst == m.ContainerFirst:
				out[esDNATRange] = append(out[esDNATRange], Element{
					Key:  []Value{addr(h), num(m.Proto), portRange(m.HostFirst, m.HostLast)},
					Data: []Value{a},
				})
			default:
				for i := 0; i <= int(n); i++ {
					out[esDNAT] = append(out[esDNAT], Element{
						Key:  []Value{addr(h), num(m.Proto), num(m.HostFirst + uint16(i))},
						Data: []Value{a, num(m.ContainerFirst + uint16(i))},
					})
				}
			}
		}
	}
	if public {
		for _, p := range e.Open {
			open = append(open, Element{Key: []Value{a, num(p.Proto), portRange(p.First, p.Last)}})
		}
	}
	out[esPublished] = append(out[esPublished], mergeRanges(published)...)
	out[esOpen] = append(out[esOpen], mergeRanges(open)...)
}

// mergeRanges sorts elements whose last key component is a port range and
// merges those that agree on every other component and whose ranges
// overlap or touch: an interval set refuses overlapping elements, and one
// element per run is what the kernel needs to hold.
func mergeRanges(es []Element) []Element {
	if len(es) < 2 {
		return es
	}
	slices.SortFunc(es, func(a, b Element) int { return compareValues(a.Key, b.Key) })
	out := es[:1]
	for _, e := range es[1:] {
		last := &out[len(out)-1]
		k := len(e.Key) - 1
		if compareValues(last.Key[:k], e.Key[:k]) == 0 && int(e.Key[k].Num) <= int(last.Key[k].last())+1 {
			if end := e.Key[k].last(); end > last.Key[k].last() {
				last.Key = slices.Clone(last.Key)
				last.Key[k] = portRange(last.Key[k].Num, end)
			}
			continue
		}
		out = append(out, e)
	}
	return out
}

func compareValue(a, b Value) int {
	return cmp.Or(
		cmp.Compare(a.Name, b.Name),
		a.Addr.Compare(b.Addr),
		a.Prefix.Addr().Compare(b.Prefix.Addr()),
		cmp.Compare(a.Prefix.Bits(), b.Prefix.Bits()),
		cmp.Compare(a.Num, b.Num),
		cmp.Compare(a.End, b.End),
	)
}

func compareValues(a, b []Value) int {
	for i := range min(len(a), len(b)) {
		if c := compareValue(a[i], b[i]); c != 0 {
			return c
		}
	}
	return cmp.Compare(len(a), len(b))
}

// sortElements orders elements by key and drops repeated keys (the same
// container port published on two host ports is one "published" element).
func sortElements(es []Element) []Element {
	slices.SortStableFunc(es, func(a, b Element) int { return compareValues(a.Key, b.Key) })
	return slices.CompactFunc(es, func(a, b Element) bool { return compareValues(a.Key, b.Key) == 0 })
}

func rule(comment string, exprs ...Expr) Rule { return Rule{Exprs: exprs, Comment: comment} }

func in(set string, fields ...Field) Lookup    { return Lookup{Fields: fields, Set: set} }
func notIn(set string, fields ...Field) Lookup { return Lookup{Fields: fields, Set: set, Invert: true} }

var (
	accept   = Verdict{Kind: VerdictAccept}
	drop     = Verdict{Kind: VerdictDrop}
	portKeyD = []Field{FieldDaddr, FieldL4Proto, FieldDport}
)

func jump(chain string) Verdict { return Verdict{Kind: VerdictJump, Chain: chain} }

func buildChains() []Chain {
	dnat := NATMap{Kind: NATDest, Fields: portKeyD, Map: MapDNAT}
	dnatRange := NATMap{Kind: NATDest, Fields: portKeyD, Map: MapDNATRange, AddrOnly: true}
	established := CtState{States: []string{CtEstablished, CtRelated}}
	mark := MarkSet{Bits: MarkJudged}
	pass := MarkSet{Bits: MarkJudged | MarkPass}
	// A connection conntrack no longer knows (deleted when the state
	// revoked it) must not come back from its middle: conntrack would pick
	// up any packet of it as new, a container's ACK as a new outbound
	// connection.
	notSyn := rule("a tcp connection starts with a syn", CtState{States: []string{CtNew}}, TCPNotSyn{}, drop)
	return []Chain{
		{Name: ChainPre, Type: "nat", Hook: "prerouting", Priority: PriorityDNAT, Policy: VerdictAccept, Rules: []Rule{
			rule("published ports", dnat),
			rule("published port ranges", dnatRange),
		}},
		{Name: ChainOut, Type: "nat", Hook: "output", Priority: PriorityDNAT, Policy: VerdictAccept, Rules: []Rule{
			rule("published ports, from the host itself", dnat),
			rule("published port ranges, from the host itself", dnatRange),
		}},
		{Name: ChainPost, Type: "nat", Hook: "postrouting", Priority: PrioritySNAT, Policy: VerdictAccept, Rules: []Rule{
			rule("hairpin", in(SetBridges, FieldOIFName), CtStatusDNAT{}, in(SetSubnets, FieldSaddr), Masquerade{}),
			rule("nat66", in(SetMasq, FieldSaddr), notIn(SetBridges, FieldOIFName), Masquerade{}),
			rule("nat66 to a chosen address", notIn(SetBridges, FieldOIFName), NATMap{Kind: NATSource, Fields: []Field{FieldSaddr}, Map: MapSNAT}),
		}},
		{Name: ChainInput, Type: "filter", Hook: "input", Priority: PriorityJudge, Policy: VerdictAccept, Rules: []Rule{
			rule("", in(SetBridges, FieldIIFName), jump(ChainSource)),
			rule("", in(SetInternal, FieldIIFName), jump(ChainInInt)),
			rule("", in(SetBridges, FieldIIFName), mark, accept),
		}},
		{Name: ChainInInt, Rules: []Rule{
			rule("", established, mark, accept),
			rule("ndp, mld", ICMPv6Type{Types: []uint8{ICMPv6MLDQuery, ICMPv6MLDReport, ICMPv6MLDDone, ICMPv6RouterSolicit, ICMPv6NeighborSolicit, ICMPv6NeighborAdvert, ICMPv6MLD2Report}}, mark, accept),
			rule("gateway address", in(SetGateways, FieldIIFName, FieldDaddr), mark, accept),
			rule("", drop),
		}},
		{Name: ChainSource, Rules: []Rule{
			// Before any conntrack shortcut: a forged packet matching
			// another bridge's connection is dropped here. A container
			// on two networks answers through its default route, which
			// may be the other network's bridge: its addresses there are
			// in the set too (Endpoint.Also).
			rule("source of this bridge", in(SetSources, FieldIIFName, FieldSaddr), Verdict{Kind: VerdictReturn}),
			rule("dad, mld before an address", AddrCmp{Field: FieldSaddr, Addr: netip.IPv6Unspecified()},
				ICMPv6Type{Types: []uint8{ICMPv6MLDReport, ICMPv6NeighborSolicit, ICMPv6MLD2Report}}, Verdict{Kind: VerdictReturn}),
			rule("source not of this bridge", drop),
		}},
		{Name: ChainForward, Type: "filter", Hook: "forward", Priority: PriorityJudge, Policy: VerdictAccept, Rules: []Rule{
			rule("", in(SetBridges, FieldIIFName), jump(ChainSource)),
			rule("", in(SetBridges, FieldOIFName), jump(ChainFwdIn)),
			rule("", in(SetBridges, FieldIIFName), jump(ChainFwdOut)),
		}},
		{Name: ChainFwdIn, Rules: []Rule{
			rule("", established, pass, accept),
			rule("", CtState{States: []string{CtInvalid}}, drop),
			notSyn,
			rule("within one network", in(SetIntra, FieldIIFName, FieldOIFName), pass, accept),
			rule("", in(SetInternal, FieldOIFName), drop),
			rule("published ports, hairpin too", CtStatusDNAT{}, in(SetPublished, portKeyD...), pass, accept),
			rule("isolation between networks", in(SetBridges, FieldIIFName), drop),
			rule("published ports on public addresses", in(SetOpen, portKeyD...), pass, accept),
			rule("", in(SetAllow, FieldOIFName, FieldL4Proto, FieldDport), pass, accept),
			rule("", ICMPv6Type{Types: []uint8{ICMPv6EchoRequest}}, in(SetPing, FieldOIFName), pass, accept),
			rule("unpublished", drop),
		}},
		{Name: ChainFwdOut, Rules: []Rule{
			notSyn,
			rule("", in(SetInternal, FieldIIFName), drop),
			rule("to the uplink", in(SetUplinks, FieldOIFName), pass, accept),
			// Another interface (the engine's bridges, a VPN): the
			// guard lets it by, the engine's DOCKER-USER does not accept
			// it, its own rules judge it.
			rule("elsewhere: for other firewalls to judge", mark, accept),
		}},
	}
}

// BuildGuard returns the guard table for the ruleset r that Build made: a
// set of r's bridges and, on the input and forward hooks after our chains
// (PriorityGuard), a drop of every packet of those bridges without the
// MarkJudged bit. While table v6bridge is in place every such packet was
// either dropped there or accepted with the mark, so the guard changes
// nothing; once it is gone (a firewall reload, `nft delete table ip6
// v6bridge` while the plugin is stopped) the bridges are closed, not open.
// A ruleset without bridges yields an empty guard table.
func BuildGuard(r *Ruleset) *Ruleset {
	g := &Ruleset{Family: TableFamily, Name: GuardTableName}
	var bridges *Set
	for i := range r.Sets {
		if r.Sets[i].Name == SetBridges {
			bridges = &r.Sets[i]
		}
	}
	if bridges == nil || len(bridges.Elements) == 0 {
		return g
	}
	g.Sets = []Set{{Name: SetBridges, Key: []DataType{TypeIfname}, Elements: bridges.Elements}}
	unjudged := MarkMatch{Bits: MarkJudged, Invert: true}
	g.Chains = []Chain{
		{Name: ChainInput, Type: "filter", Hook: "input", Priority: PriorityGuard, Policy: VerdictAccept, Rules: []Rule{
			rule("not judged by table v6bridge", in(SetBridges, FieldIIFName), unjudged, drop),
		}},
		{Name: ChainForward, Type: "filter", Hook: "forward", Priority: PriorityGuard, Policy: VerdictAccept, Rules: []Rule{
			rule("not judged by table v6bridge", in(SetBridges, FieldIIFName), unjudged, drop),
			rule("not judged by table v6bridge", in(SetBridges, FieldOIFName), unjudged, drop),
		}},
	}
	return g
}
