package doctor

import (
	"fmt"
	"net/netip"
	"strings"
)

// Shape is one way providers hand out IPv6, and what it means for
// v6bridge. Shapes is what doctor knows; the README's table "Which
// provider shape do I have?" is generated from it (ShapesMarkdown).
type Shape struct {
	ID string `json:"id"`
	// Name is the shape in a few words; Examples are providers known to
	// use it.
	Name, Examples string
	// Tell is how the host shows it.
	Tell string
	// NDP is whether the provider's router asks for each address, so
	// v6bridge must answer NDP for public containers.
	NDP string
	// Modes are the network modes that work, and how.
	Modes string
}

// The shapes, in the order of the table.
var Shapes = []Shape{
	{ID: "onlink64", Name: "on-link /64", Examples: "Hetzner Cloud, Vultr, netcup, Linode, Mythic Beasts",
		Tell:  "the uplink's address is a /64 (or shorter); the router resolves every address of it with NDP",
		NDP:   "needed: v6bridge answers for public containers (NDP_PROXY=native, the default)",
		Modes: "public networks (a /112 of the /64 each) and nat networks"},
	{ID: "routed64", Name: "/64 routed to the host's link-local", Examples: "Hetzner dedicated (via fe80::1), Scaleway",
		Tell:  "same configuration as on-link; v6bridge status shows no solicitations for public containers that the internet still reaches",
		NDP:   "not needed: NDP_PROXY=off, and v6bridge.mode=routed for networks of the /64 (never bridge containers onto the uplink: unknown MACs get the server blocked)",
		Modes: "routed networks from the /64 and nat networks"},
	{ID: "prefix124", Name: "a /124 (16 addresses)", Examples: "DigitalOcean",
		Tell:  "the uplink's address is a /65 to /124",
		NDP:   "the router asks for each address: only for addresses on the uplink itself",
		Modes: "nat networks only (a public network needs a /120 at least); publish ports on the extra addresses (-p [addr]:443:443) or SNAT a nat network to one (v6bridge.host_ipv6)"},
	{ID: "single128", Name: "a single /128", Examples: "OVH VPS, Exoscale",
		Tell:  "the uplink's global address is a /125 to /128",
		NDP:   "not needed: no address to give a container",
		Modes: "nat networks only; published ports on the host's address"},
}

// ShapeByID returns the shape with that id.
func ShapeByID(id string) (Shape, bool) {
	for _, s := range Shapes {
		if s.ID == id {
			return s, true
		}
	}
	return Shape{}, false
}

// ClassifyShape tells the provider's shape from the uplink's global
// prefixes and the running plugin's NDP counters. The widest prefix
// decides. An on-link and a routed /64 are configured alike; the plugin's
// counters tell them apart once a public container exists: solicitations
// for it mean on-link. ok is false without a global address.
func ClassifyShape(f Facts) (shape Shape, why string, ok bool) {
	var widest netip.Prefix
	for _, p := range f.UplinkPrefixes {
		if !widest.IsValid() || p.Bits() < widest.Bits() {
			widest = p
		}
	}
	if !widest.IsValid() {
		return Shape{}, "", false
	}
	id := "single128"
	switch b := widest.Bits(); {
	case b <= 64:
		id = "onlink64"
		switch n := f.Plugin; {
		case n.NDPAddrs > 0 && n.NDPAnswered > 0:
			why = fmt.Sprintf("%s on %s; the router asked v6bridge for public containers (%d answers): on-link", widest.Masked(), f.Uplink, n.NDPAnswered)
		default:
			// No solicitation yet says little: the router may not have
			// needed one since the plugin started (its cache, unsolicited
			// advertisements).
			why = fmt.Sprintf("%s on %s: on-link, or routed to this host (configured alike; once the router asks v6bridge for a public container, it is on-link)", widest.Masked(), f.Uplink)
		}
	case b <= 124:
		id = "prefix124"
		why = fmt.Sprintf("%s on %s: %d addresses", widest.Masked(), f.Uplink, 1<<(128-b))
	default:
		why = fmt.Sprintf("%s on %s", widest, f.Uplink)
	}
	s, _ := ShapeByID(id)
	return s, why, true
}

func (f Facts) evaluateShape(add func(check string, s Status, summary, meaning, fix string)) {
	s, why, ok := ClassifyShape(f)
	if !ok {
		return
	}
	add("provider", OK, fmt.Sprintf("%s (like %s): %s", s.Name, s.Examples, why),
		"NDP "+s.NDP+"; works: "+s.Modes, "")
}

// ShapesMarkdown renders Shapes as the README's table.
func ShapesMarkdown() string {
	var b strings.Builder
	b.WriteString("| shape | providers | how the host shows it | NDP | networks |\n|---|---|---|---|---|\n")
	for _, s := range Shapes {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", s.Name, s.Examples, s.Tell, s.NDP, s.Modes)
	}
	return b.String()
}
