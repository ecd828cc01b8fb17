package nat

import (
	"reflect"
	"strconv"
	"strings"
)

// SetPatch is the change of one named set or map's elements: Delete the
// elements in Delete, then add those in Add. A map entry whose key stays but
// whose value changes is in both.
type SetPatch struct {
	Set    Set // the definition; Set.Elements is not used
	Delete []Element
	Add    []Element
}

// Diff returns the element changes that turn the table of old into the
// table of new, for sets whose elements differ. ok is false when anything
// else differs (the chains and their rules, which sets exist and their
// types, the elements of interval sets, the flowtables and their devices):
// then the table must be rebuilt.
// Adding an endpoint or publishing a port only changes elements of plain
// sets and maps, so the change costs what changed, not the whole table.
// old and new are Build's results: elements sorted by key, keys unique.
func Diff(old, new *Ruleset) (patches []SetPatch, ok bool) {
	if old == nil || new == nil || old.Family != new.Family || old.Name != new.Name ||
		len(new.Chains) == 0 || !reflect.DeepEqual(old.Chains, new.Chains) || len(old.Sets) != len(new.Sets) ||
		!reflect.DeepEqual(old.Flowtables, new.Flowtables) {
		return nil, false
	}
	for i, o := range old.Sets {
		n := new.Sets[i]
		if o.Name != n.Name || o.Interval != n.Interval || o.Comment != n.Comment ||
			!reflect.DeepEqual(o.Key, n.Key) || !reflect.DeepEqual(o.Data, n.Data) {
			return nil, false
		}
		if o.Interval && len(o.Key) == 1 {
			// Prefix elements are stored as pairs of boundaries; nets
			// rarely change, a rebuild is simpler than merging intervals.
			// Concatenated interval sets (ports) hold whole elements and
			// are patched like plain sets.
			if !reflect.DeepEqual(o.Elements, n.Elements) {
				return nil, false
			}
			continue
		}
		p := diffElements(o, n)
		if len(p.Delete)+len(p.Add) > 0 {
			patches = append(patches, p)
		}
	}
	return patches, true
}

// diffElements walks both element lists at once: Build sorts them by key
// and drops repeated keys, so one pass finds what went and what came.
func diffElements(o, n Set) SetPatch {
	p := SetPatch{Set: Set{Name: n.Name, Key: n.Key, Data: n.Data, Interval: n.Interval, Comment: n.Comment}}
	i, j := 0, 0
	for i < len(o.Elements) || j < len(n.Elements) {
		var c int
		switch {
		case i == len(o.Elements):
			c = 1
		case j == len(n.Elements):
			c = -1
		default:
			c = compareValues(o.Elements[i].Key, n.Elements[j].Key)
		}
		switch {
		case c < 0:
			p.Delete = append(p.Delete, o.Elements[i])
			i++
		case c > 0:
			p.Add = append(p.Add, n.Elements[j])
			j++
		default:
			if compareValues(o.Elements[i].Data, n.Elements[j].Data) != 0 {
				p.Delete = append(p.Delete, o.Elements[i])
				p.Add = append(p.Add, n.Elements[j])
			}
			i++
			j++
		}
	}
	return p
}

// valuesKey is a map key identifying a list of values.
func valuesKey(vs []Value) string {
	var b strings.Builder
	for _, v := range vs {
		b.WriteString(v.Name)
		b.WriteByte(0)
		b.WriteString(v.Addr.String())
		b.WriteByte(0)
		b.WriteString(v.Prefix.String())
		b.WriteByte(0)
		b.WriteString(strconv.Itoa(int(v.Num)))
		b.WriteByte(1)
	}
	return b.String()
}

// ApplyPatches returns the sets of r with the patches applied, sorted as
// Build sorts them: what the kernel holds after a patch. Used by tests to
// prove a patch equals a rebuild.
func ApplyPatches(r *Ruleset, patches []SetPatch) *Ruleset {
	out := &Ruleset{Family: r.Family, Name: r.Name, Flowtables: r.Flowtables, Chains: r.Chains}
	byName := map[string]SetPatch{}
	for _, p := range patches {
		byName[p.Set.Name] = p
	}
	for _, s := range r.Sets {
		p, ok := byName[s.Name]
		if !ok {
			out.Sets = append(out.Sets, s)
			continue
		}
		del := map[string]bool{}
		for _, e := range p.Delete {
			del[valuesKey(e.Key)+"\x02"+valuesKey(e.Data)] = true
		}
		var es []Element
		for _, e := range s.Elements {
			if !del[valuesKey(e.Key)+"\x02"+valuesKey(e.Data)] {
				es = append(es, e)
			}
		}
		es = append(es, p.Add...)
		s.Elements = sortElements(es)
		out.Sets = append(out.Sets, s)
	}
	return out
}
