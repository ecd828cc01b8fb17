package migrate

import (
	"bytes"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/v6bridge/v6bridge/ipam"
)

// composeDoc is a parsed compose file.
type composeDoc struct {
	path    string
	doc     yaml.Node
	root    *yaml.Node
	project string
	nets    []*composeNet
}

// composeNet is one top-level network of a compose file.
type composeNet struct {
	name     string
	val      *yaml.Node // the network's mapping (replaced when translated)
	driver   string     // "" means bridge
	external bool
	internal bool
	subnets  []netip.Prefix // IPv6 subnets of ipam.config
}

// mapGet returns the value of key in mapping m, or nil.
func mapGet(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// mapDel removes key from mapping m.
func mapDel(m *yaml.Node, key string) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content = append(m.Content[:i], m.Content[i+2:]...)
			return
		}
	}
}

func scalar(v string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Value: v} }

func boolNode(b bool) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: fmt.Sprint(b)}
}

func mapping(kv ...*yaml.Node) *yaml.Node { return &yaml.Node{Kind: yaml.MappingNode, Content: kv} }

func isTrue(n *yaml.Node) bool {
	return n != nil && n.Kind == yaml.ScalarNode && strings.EqualFold(n.Value, "true")
}

func (s *state) parseCompose() []*composeDoc {
	var out []*composeDoc
	for _, f := range s.in.Compose {
		c := &composeDoc{path: f.Path}
		if err := yaml.Unmarshal(f.Data, &c.doc); err != nil {
			s.r.refuse("%s: not a compose file (YAML): %v", f.Path, err)
			continue
		}
		if len(c.doc.Content) == 0 || c.doc.Content[0].Kind != yaml.MappingNode {
			s.r.refuse("%s: not a compose file: want a mapping with services: and networks:", f.Path)
			continue
		}
		c.root = c.doc.Content[0]
		c.project = filepath.Base(filepath.Dir(f.Path))
		if n := mapGet(c.root, "name"); n != nil && n.Value != "" {
			c.project = n.Value
		}
		nets := mapGet(c.root, "networks")
		if nets != nil && nets.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(nets.Content); i += 2 {
				n := &composeNet{name: nets.Content[i].Value, val: nets.Content[i+1]}
				if n.val.Kind != yaml.MappingNode { // "internal:" with no body
					n.val = mapping()
					nets.Content[i+1] = n.val
				}
				if d := mapGet(n.val, "driver"); d != nil {
					n.driver = d.Value
				}
				n.external = isTrue(mapGet(n.val, "external")) || mapGet(n.val, "external") != nil && mapGet(n.val, "external").Kind == yaml.MappingNode
				n.internal = isTrue(mapGet(n.val, "internal"))
				if cfg := mapGet(mapGet(n.val, "ipam"), "config"); cfg != nil && cfg.Kind == yaml.SequenceNode {
					for _, e := range cfg.Content {
						if sn := mapGet(e, "subnet"); sn != nil {
							if p, err := netip.ParsePrefix(sn.Value); err == nil && p.Addr().Is6() {
								n.subnets = append(n.subnets, p.Masked())
								s.explicit = append(s.explicit, p.Masked())
							}
						}
					}
				}
				c.nets = append(c.nets, n)
			}
		}
		out = append(out, c)
	}
	return out
}

// bridgeOpts maps the built-in bridge's driver options to v6bridge's; ""
// drops the option, and options not listed are refused.
var bridgeOpts = map[string]string{
	"com.docker.network.bridge.name":              "v6bridge.bridge_name",
	"com.docker.network.driver.mtu":               "com.docker.network.driver.mtu",
	"com.docker.network.bridge.enable_icc":        "v6bridge.icc",
	"com.docker.network.bridge.host_binding_ipv4": "",
	"com.docker.network.bridge.inhibit_ipv4":      "",
	"com.docker.network.enable_ipv6":              "",
	"com.docker.network.bridge.gateway_mode_ipv4": "",
}

// translateNet returns the v6bridge mapping for n, or why it cannot.
func (s *state) translateNet(c *composeDoc, n *composeNet) (*yaml.Node, Network, []string) {
	var why []string
	where := fmt.Sprintf("%s: network %s", c.path, n.name)
	mode := ""
	var opts []*yaml.Node
	if do := mapGet(n.val, "driver_opts"); do != nil && do.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(do.Content); i += 2 {
			k, v, vn := do.Content[i].Value, do.Content[i+1].Value, do.Content[i+1]
			switch {
			case k == "com.docker.network.bridge.gateway_mode_ipv6" && (v == "nat" || v == "routed"):
				mode = v
			case k == "com.docker.network.bridge.enable_ip_masquerade" && v == "true":
			case k == "com.docker.network.bridge.enable_ip_masquerade":
				why = append(why, fmt.Sprintf("%s: driver_opts %s=%s (no NAT): v6bridge's nat networks always masquerade; use a routed subnet the provider routes, or --internal", where, k, v))
			default:
				to, ok := bridgeOpts[k]
				switch {
				case !ok:
					why = append(why, fmt.Sprintf("%s: driver_opts %s=%s has no v6bridge equivalent: remove it, or keep this network on the built-in bridge", where, k, v))
				case to != "":
					// compose wants strings: keep the value as written, quoted.
					q := *vn
					q.Tag, q.Style = "!!str", yaml.DoubleQuotedStyle
					opts = append(opts, scalar(to), &q)
				}
			}
		}
	}
	var sub, gw netip.Prefix
	v4 := false
	if cfg := mapGet(mapGet(n.val, "ipam"), "config"); cfg != nil && cfg.Kind == yaml.SequenceNode {
		for _, e := range cfg.Content {
			sn := mapGet(e, "subnet")
			if sn == nil {
				why = append(why, fmt.Sprintf("%s: an ipam config entry without subnet", where))
				continue
			}
			p, err := netip.ParsePrefix(sn.Value)
			if err != nil {
				why = append(why, fmt.Sprintf("%s: subnet %q is not a prefix", where, sn.Value))
				continue
			}
			if p.Addr().Is4() {
				v4 = true
				if mapGet(e, "ip_range") != nil || mapGet(e, "aux_addresses") != nil || mapGet(e, "gateway") != nil {
					s.r.note("%s: IPv4 subnet %s and its settings dropped: v6bridge networks carry no routable IPv4", where, p)
				}
				continue
			}
			switch {
			case sub.IsValid():
				why = append(why, fmt.Sprintf("%s: a second IPv6 subnet %s: a v6bridge network has one IPv6 subnet; split it into two networks", where, p))
			case p.Bits() < ipam.MinPrefixLen || p.Bits() > ipam.MaxPrefixLen:
				why = append(why, fmt.Sprintf("%s: subnet %s is a /%d: v6bridge accepts /%d to /%d", where, p, p.Bits(), ipam.MinPrefixLen, ipam.MaxPrefixLen))
			case p != p.Masked():
				why = append(why, fmt.Sprintf("%s: subnet %s has host bits set: did you mean %s?", where, p, p.Masked()))
			default:
				sub = p
			}
			if mapGet(e, "ip_range") != nil || mapGet(e, "aux_addresses") != nil {
				why = append(why, fmt.Sprintf("%s: ip_range and aux_addresses have no v6bridge equivalent: give containers ipv6_address instead", where))
			}
			if g := mapGet(e, "gateway"); g != nil {
				a, err := netip.ParseAddr(g.Value)
				if err != nil || !p.Contains(a) {
					why = append(why, fmt.Sprintf("%s: gateway %q is not an address of %s", where, g.Value, p))
				} else {
					gw = netip.PrefixFrom(a, 128)
				}
			}
		}
	}
	if v4 {
		s.r.note("%s: IPv4 subnets dropped: on engines >= 28 the network has no IPv4 (enable_ipv4: false); older ones get a non-routed placeholder", where)
	}
	switch {
	case n.internal:
		mode = "internal"
	case mode == "routed":
	case sub.IsValid():
		mode = s.modeOf(sub)
		if mode == "routed" {
			s.r.note("%s: %s is global but neither in PUBLIC_PREFIX nor answered by ndppd: mode routed, so the provider must route it to the host", where, sub)
		}
		for _, r := range s.ruleNets {
			if r == sub || r.Overlaps(sub) {
				s.ruleUsed[r] = true
			}
		}
	default:
		mode = "nat"
	}
	if len(why) > 0 {
		return nil, Network{}, why
	}
	if !sub.IsValid() {
		sub = s.carve(mode)
		if !sub.IsValid() {
			s.r.note("%s: no IPv6 subnet and no ULA_PREFIX known: v6bridge carves the next free subnet of its plan when compose creates it", where)
		}
	}
	d := s.r.Driver
	var kv []*yaml.Node
	if nm := mapGet(n.val, "name"); nm != nil {
		kv = append(kv, scalar("name"), nm)
	}
	kv = append(kv, scalar("driver"), scalar(d))
	if mode != "internal" {
		opts = append([]*yaml.Node{scalar("v6bridge.mode"), scalar(mode)}, opts...)
	}
	if len(opts) > 0 {
		kv = append(kv, scalar("driver_opts"), mapping(opts...))
	}
	kv = append(kv, scalar("enable_ipv6"), boolNode(true))
	v4n := boolNode(false)
	v4n.LineComment = "# engines >= 28; leave out on older ones"
	kv = append(kv, scalar("enable_ipv4"), v4n)
	if n.internal {
		kv = append(kv, scalar("internal"), boolNode(true))
	}
	ipamN := mapping(scalar("driver"), scalar(d))
	if sub.IsValid() {
		entry := mapping(scalar("subnet"), scalar(sub.String()))
		if gw.IsValid() {
			entry.Content = append(entry.Content, scalar("gateway"), scalar(gw.Addr().String()))
		}
		ipamN.Content = append(ipamN.Content, scalar("config"), &yaml.Node{Kind: yaml.SequenceNode, Content: []*yaml.Node{entry}})
	}
	kv = append(kv, scalar("ipam"), ipamN)
	for _, k := range []string{"labels", "attachable"} {
		if v := mapGet(n.val, k); v != nil {
			kv = append(kv, scalar(k), v)
		}
	}
	return mapping(kv...), Network{Name: c.project + "_" + n.name, Mode: mode, Subnet: sub, From: c.path + ": network " + n.name}, nil
}

func (s *state) rewriteCompose(c *composeDoc) {
	translated := map[string]bool{}
	nets := mapGet(c.root, "networks")
	for _, n := range c.nets {
		switch {
		case n.external:
			s.r.note("%s: network %s is external: not translated here; migrate the file that creates it", c.path, n.name)
			continue
		case n.driver != "" && n.driver != "bridge":
			s.r.note("%s: network %s uses driver %s, not the built-in bridge: left as it is", c.path, n.name, n.driver)
			continue
		}
		node, nw, why := s.translateNet(c, n)
		if len(why) > 0 {
			s.r.Refusals = append(s.r.Refusals, why...)
			continue
		}
		*n.val = *node
		translated[n.name] = true
		s.r.Networks = append(s.r.Networks, nw)
	}

	services := mapGet(c.root, "services")
	needDefault := false
	var dropped []string
	if services != nil && services.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(services.Content); {
			name, svc := services.Content[i].Value, services.Content[i+1]
			if img := mapGet(svc, "image"); img != nil && strings.Contains(img.Value, "ipv6nat") {
				s.r.note("%s: service %s (%s) dropped: v6bridge does NAT66 for its networks", c.path, name, img.Value)
				dropped = append(dropped, name)
				services.Content = append(services.Content[:i], services.Content[i+2:]...)
				continue
			}
			i += 2
			if mapGet(svc, "network_mode") != nil {
				continue
			}
			sn := mapGet(svc, "networks")
			if sn == nil {
				needDefault = true
				continue
			}
			if sn.Kind != yaml.MappingNode {
				continue
			}
			for j := 0; j+1 < len(sn.Content); j += 2 {
				if translated[sn.Content[j].Value] && mapGet(sn.Content[j+1], "ipv4_address") != nil {
					s.r.refuse("%s: service %s: ipv4_address on network %s: v6bridge networks carry no routable IPv4; remove it", c.path, name, sn.Content[j].Value)
				}
			}
		}
		for i := 0; i+1 < len(services.Content); i += 2 {
			dropDependency(services.Content[i+1], dropped)
		}
	}
	if needDefault && mapGet(nets, "default") == nil {
		n := &composeNet{name: "default", val: mapping()}
		if node, nw, why := s.translateNet(c, n); len(why) == 0 {
			if nets == nil {
				nets = mapping()
				c.root.Content = append(c.root.Content, scalar("networks"), nets)
			}
			nets.Content = append(nets.Content, scalar("default"), node)
			s.r.Networks = append(s.r.Networks, nw)
			s.r.note("%s: services without networks: use the project's default network; it is a v6bridge nat network now", c.path)
		}
	}

	out := ComposeOut{Path: c.path, Project: c.project, OutPath: outPath(c.path)}
	c.doc.HeadComment = strings.TrimSpace("# Written by v6bridge migrate from " + filepath.Base(c.path) + ": networks on v6bridge (driver " + s.r.Driver + ").\n" + c.doc.HeadComment)
	out.Text = encode(&c.doc)
	if nets != nil {
		out.Networks = encode(mapping(scalar("networks"), nets))
	}
	s.r.Compose = append(s.r.Compose, out)
}

// dropDependency removes the dropped services from svc's depends_on.
func dropDependency(svc *yaml.Node, dropped []string) {
	dep := mapGet(svc, "depends_on")
	if dep == nil || len(dropped) == 0 {
		return
	}
	for _, name := range dropped {
		switch dep.Kind {
		case yaml.SequenceNode:
			for i, n := range dep.Content {
				if n.Value == name {
					dep.Content = append(dep.Content[:i], dep.Content[i+1:]...)
					break
				}
			}
		case yaml.MappingNode:
			mapDel(dep, name)
		}
	}
	if len(dep.Content) == 0 {
		mapDel(svc, "depends_on")
	}
}

func encode(n *yaml.Node) string {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(n); err != nil {
		return fmt.Sprintf("# encode: %v\n", err)
	}
	enc.Close()
	return b.String()
}

// outPath is where --write puts the rewritten compose file: next to the
// original, compose.yml -> compose.v6bridge.yml.
func outPath(p string) string {
	ext := filepath.Ext(p)
	return strings.TrimSuffix(p, ext) + ".v6bridge" + ext
}
