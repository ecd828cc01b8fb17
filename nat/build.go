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
	SetIntra     = "intra"      // ifname . ifname: (bridge, bridge), traffic within one network
	SetInternal  = "internal"   // ifname: bridges of internal networks
	SetGateways  = "gateways"   // ifname . ipv6_addr: internal bridge and its gateway address
	SetPing      = "ping"       // ifname: public/routed bridges answering echo requests from outside
	SetPublished = "published"  // ipv6_addr . inet_proto . inet_service: container ports behind a DNAT
	SetOpen      = "open"       // ipv6_addr . inet_proto . inet_service: container ports open directly (public/routed)
	SetAllow     = "allow"      // ifname . inet_proto . inet_service: ports open on every endpoint of a bridge
	SetSubnets   = "subnets"    // ipv6_addr interval: every network's subnet (hairpin sources)
	SetMasq      = "masq"       // ipv6_addr interval: nat subnets masqueraded outbound
	MapSNAT      = "snat"       // ipv6_addr interval : ipv6_addr: nat subnets SNATed to a chosen address
	MapDNAT      = "dnat"       // host address . proto . host port : container address . container port
	ChainPre     = "prerouting" // nat prerouting: DNAT of published ports
	ChainOut     = "output"     // nat output: DNAT of published ports for the host itself
	ChainPost    = "postrouting"
	ChainInput   = "input"
	ChainInInt   = "input_internal"
	ChainForward = "forward"
	ChainFwdIn   = "forward_in"  // traffic entering one of our bridges
	ChainFwdOut  = "forward_out" // traffic leaving one of our bridges for a foreign interface
)

// Build validates the State and turns it into the ruleset of the v6bridge
// table. A State without networks yields an empty table.
//
// Per mode:
//   - nat: outbound is masqueraded (or SNATed to Network.SNAT) when it leaves
//     through an interface that is not one of our bridges; inbound only to
//     published ports through DNAT of a host address.
//   - public, routed: no NAT; inbound is dropped except published container
//     ports (open directly on the container address, and through DNAT where
//     a host port is given), Allow ports and, with AllowPing, echo requests.
//   - internal: forward drops both directions; input from the bridge only
//     reaches the gateway address (plus NDP/MLD); published ports ignored.
//
// In every mode replies to connections the container opened pass, traffic
// between two of our bridges is dropped unless it was DNATed to a published
// port (hairpin: it is then masqueraded so replies come back through the
// host), and ICMPv6 errors (destination unreachable, packet too big, time
// exceeded, parameter problem) pass. Traffic within one network is bridged;
// should br_netfilter show it to the forward hook, it is accepted here (ICC
// off is enforced by bridge port isolation, not by this table).
// Traffic not touching our bridges is left alone: base chains have policy
// accept and match our bridges explicitly.
func Build(s State) (*Ruleset, error) {
	if err := Validate(s); err != nil {
		return nil, err
	}
	r := &Ruleset{Family: TableFamily, Name: TableName}
	if len(s.Networks) == 0 {
		return r, nil
	}
	r.Sets = buildSets(s)
	r.Chains = buildChains()
	if s.FastPath {
		addFastPath(r, s)
	}
	return r, nil
}

func name(n string) Value             { return Value{Name: n} }
func addr(a netip.Addr) Value         { return Value{Addr: a} }
func prefix(p netip.Prefix) Value     { return Value{Prefix: p} }
func num[T uint8 | uint16](n T) Value { return Value{Num: uint16(n)} }

func buildSets(s State) []Set {
	bridges := Set{Name: SetBridges, Key: []DataType{TypeIfname}}
	intra := Set{Name: SetIntra, Key: []DataType{TypeIfname, TypeIfname}}
	internal := Set{Name: SetInternal, Key: []DataType{TypeIfname}}
	gateways := Set{Name: SetGateways, Key: []DataType{TypeIfname, TypeIP6Addr}}
	ping := Set{Name: SetPing, Key: []DataType{TypeIfname}}
	portKey := []DataType{TypeIP6Addr, TypeInetProto, TypeInetService}
	published := Set{Name: SetPublished, Key: portKey}
	open := Set{Name: SetOpen, Key: portKey}
	allow := Set{Name: SetAllow, Key: []DataType{TypeIfname, TypeInetProto, TypeInetService}}
	subnets := Set{Name: SetSubnets, Key: []DataType{TypeIP6Addr}, Interval: true}
	masq := Set{Name: SetMasq, Key: []DataType{TypeIP6Addr}, Interval: true}
	snat := Set{Name: MapSNAT, Key: []DataType{TypeIP6Addr}, Data: []DataType{TypeIP6Addr}, Interval: true}
	dnat := Set{Name: MapDNAT, Key: portKey, Data: []DataType{TypeIP6Addr, TypeInetService}}

	add := func(set *Set, key ...Value) { set.Elements = append(set.Elements, Element{Key: key}) }
	for _, n := range s.Networks {
		br := name(n.Bridge)
		add(&bridges, br)
		add(&intra, br, br)
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
			for _, p := range n.Allow {
				for port := int(p.First); port <= int(p.Last); port++ {
					add(&allow, br, num(p.Proto), num(uint16(port)))
				}
			}
		}
		for _, e := range n.Endpoints {
			endpointElements(s.HostAddrs, public, e, &published.Elements, &open.Elements, &dnat.Elements)
		}
	}
	sets := []Set{bridges, intra, internal, gateways, ping, published, open, allow, subnets, masq, snat, dnat}
	for i := range sets {
		sets[i].Elements = sortElements(sets[i].Elements)
	}
	return sets
}

// endpointElements appends the elements endpoint e of a nat, public or
// routed network contributes to the published, open and dnat sets. Model
// uses it too, so an incremental update adds exactly what Build would.
func endpointElements(hostAddrs []netip.Addr, public bool, e Endpoint, published, open, dnat *[]Element) {
	for _, m := range e.Ports {
		hosts := []netip.Addr{m.HostAddr}
		if !m.HostAddr.IsValid() {
			hosts = hostAddrs
		}
		for i := 0; i <= int(m.HostLast-m.HostFirst); i++ {
			cport := m.ContainerFirst + uint16(i)
			*published = append(*published, Element{Key: []Value{addr(e.Addr), num(m.Proto), num(cport)}})
			if public {
				*open = append(*open, Element{Key: []Value{addr(e.Addr), num(m.Proto), num(cport)}})
			}
			for _, h := range hosts {
				*dnat = append(*dnat, Element{
					Key:  []Value{addr(h), num(m.Proto), num(m.HostFirst + uint16(i))},
					Data: []Value{addr(e.Addr), num(cport)},
				})
			}
		}
	}
}

func compareValue(a, b Value) int {
	return cmp.Or(
		cmp.Compare(a.Name, b.Name),
		a.Addr.Compare(b.Addr),
		a.Prefix.Addr().Compare(b.Prefix.Addr()),
		cmp.Compare(a.Prefix.Bits(), b.Prefix.Bits()),
		cmp.Compare(a.Num, b.Num),
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
	established := CtState{States: []string{CtEstablished, CtRelated}}
	// A connection conntrack no longer knows (deleted when the state
	// revoked it) must not come back from its middle: conntrack would pick
	// up any packet of it as new, a container's ACK as a new outbound
	// connection.
	notSyn := rule("a tcp connection starts with a syn", CtState{States: []string{CtNew}}, TCPNotSyn{}, drop)
	return []Chain{
		{Name: ChainPre, Type: "nat", Hook: "prerouting", Priority: PriorityDNAT, Policy: VerdictAccept, Rules: []Rule{
			rule("published ports", dnat),
		}},
		{Name: ChainOut, Type: "nat", Hook: "output", Priority: PriorityDNAT, Policy: VerdictAccept, Rules: []Rule{
			rule("published ports, from the host itself", dnat),
		}},
		{Name: ChainPost, Type: "nat", Hook: "postrouting", Priority: PrioritySNAT, Policy: VerdictAccept, Rules: []Rule{
			rule("hairpin", in(SetBridges, FieldOIFName), CtStatusDNAT{}, in(SetSubnets, FieldSaddr), Masquerade{}),
			rule("nat66", in(SetMasq, FieldSaddr), notIn(SetBridges, FieldOIFName), Masquerade{}),
			rule("nat66 to a chosen address", notIn(SetBridges, FieldOIFName), NATMap{Kind: NATSource, Fields: []Field{FieldSaddr}, Map: MapSNAT}),
		}},
		{Name: ChainInput, Type: "filter", Hook: "input", Priority: PriorityFilter, Policy: VerdictAccept, Rules: []Rule{
			rule("", in(SetInternal, FieldIIFName), jump(ChainInInt)),
		}},
		{Name: ChainInInt, Rules: []Rule{
			rule("", established, accept),
			rule("ndp, mld", ICMPv6Type{Types: []uint8{ICMPv6MLDQuery, ICMPv6MLDReport, ICMPv6MLDDone, ICMPv6RouterSolicit, ICMPv6NeighborSolicit, ICMPv6NeighborAdvert, ICMPv6MLD2Report}}, accept),
			rule("gateway address", in(SetGateways, FieldIIFName, FieldDaddr), accept),
			rule("", drop),
		}},
		{Name: ChainForward, Type: "filter", Hook: "forward", Priority: PriorityFilter, Policy: VerdictAccept, Rules: []Rule{
			rule("", in(SetBridges, FieldOIFName), jump(ChainFwdIn)),
			rule("", in(SetBridges, FieldIIFName), jump(ChainFwdOut)),
		}},
		{Name: ChainFwdIn, Rules: []Rule{
			rule("", established, accept),
			rule("", CtState{States: []string{CtInvalid}}, drop),
			notSyn,
			rule("within one network", in(SetIntra, FieldIIFName, FieldOIFName), accept),
			rule("", in(SetInternal, FieldOIFName), drop),
			rule("published ports, hairpin too", CtStatusDNAT{}, in(SetPublished, portKeyD...), accept),
			rule("isolation between networks", in(SetBridges, FieldIIFName), drop),
			rule("published ports on public addresses", in(SetOpen, portKeyD...), accept),
			rule("", in(SetAllow, FieldOIFName, FieldL4Proto, FieldDport), accept),
			rule("", ICMPv6Type{Types: []uint8{ICMPv6DestUnreach, ICMPv6PacketTooBig, ICMPv6TimeExceeded, ICMPv6ParamProblem}}, accept),
			rule("", ICMPv6Type{Types: []uint8{ICMPv6EchoRequest}}, in(SetPing, FieldOIFName), accept),
			rule("unpublished", drop),
		}},
		{Name: ChainFwdOut, Rules: []Rule{
			notSyn,
			rule("", in(SetInternal, FieldIIFName), drop),
			rule("", accept),
		}},
	}
}
