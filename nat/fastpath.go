package nat

import (
	"reflect"
	"slices"
)

// FlowtableName is the name of the table's flowtable (State.FastPath).
const FlowtableName = "ft"

// fastPathProtos are the protocols the kernel offloads to a flowtable.
var fastPathProtos = []uint8{ProtoTCP, ProtoUDP}

// addFastPath adds the flowtable and the rule that fills it to a ruleset
// Build made. The rule sits right before forward_in's accept of
// established connections and accepts the same packets: a connection is
// offloaded only once the rules accepted its first packet (the forward
// chain saw it as new) and the other side answered. Traffic within one
// network is left alone: it is bridged, and br_netfilter shows it to the
// forward hook on a path the flowtable never sees.
//
// The devices are the uplinks and the bridges of every network that
// forwards traffic (not internal ones): the kernel hooks their ingress. A
// packet a container sends enters the stack on its bridge (the bridge
// device, not the container's veth port), a reply on an uplink.
func addFastPath(r *Ruleset, s State) {
	established := CtState{States: []string{CtEstablished, CtRelated}}
	c, at := (*Chain)(nil), -1
	for i := range r.Chains {
		if r.Chains[i].Name == ChainFwdIn {
			c = &r.Chains[i]
			at = slices.IndexFunc(c.Rules, func(r Rule) bool {
				return len(r.Exprs) > 0 && reflect.DeepEqual(r.Exprs[0], established)
			})
		}
	}
	if at < 0 {
		return // no accept of established connections: nothing to offload (TestBuildFastPath)
	}
	devs := slices.Clone(s.Uplinks)
	for _, n := range s.Networks {
		if n.Mode != ModeInternal {
			devs = append(devs, n.Bridge)
		}
	}
	slices.Sort(devs)
	devs = slices.Compact(devs)
	r.Flowtables = append(r.Flowtables, Flowtable{Name: FlowtableName, Priority: PriorityFilter, Devices: devs, Counter: true})
	// The same statements as that accept (the judged mark, the verdict),
	// after the offload.
	exprs := []Expr{
		L4Proto{Protos: fastPathProtos},
		CtState{States: []string{CtEstablished}},
		notIn(SetIntra, FieldIIFName, FieldOIFName),
		FlowOffload{Flowtable: FlowtableName},
	}
	exprs = append(exprs, c.Rules[at].Exprs[1:]...)
	c.Rules = slices.Insert(c.Rules, at, rule("fast path", exprs...))
}
