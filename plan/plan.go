// Package plan is v6bridge's address plan: the host's public prefix with a
// /112 per public network, a ULA /48 unique to the host, this host's ULA /64
// inside it with a /112 per nat or internal network — the plan the seed
// writes by hand — and the rendering of that plan as a table, a compose
// networks: block and plugin settings, with warnings about the mistakes the
// seed warns about.
//
// The package is pure: the caller gathers the host's addresses. ipam uses
// its carving (Carve) and ULA generation (NewULA) for automatic subnets, so
// the plan printed is the plan the plugin follows.
package plan

import (
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"text/tabwriter"

	"github.com/v6bridge/v6bridge/netspec"
)

// Input is what a plan is built from.
type Input struct {
	// Public is PUBLIC_PREFIX: where public networks are carved from,
	// normally the uplink's /64. Zero: the plan has no public part.
	Public netip.Prefix
	// ULA is ULA_PREFIX, normally a random /48 of fd00::/8.
	ULA netip.Prefix
	// ULASource says where ULA came from, for the table: "given",
	// "persisted" (the plugin's state) or "generated" (new, random).
	ULASource string
	// HostID picks this host's /64 inside ULA (0: the first, which is
	// what the plugin carves from).
	HostID uint64
	// PublicLen and ULALen are the lengths of carved subnets; 0 means
	// DefaultSubnetLen.
	PublicLen, ULALen int
	// Uplink names the outside interface, for descriptions; may be "".
	Uplink string
	// HostAddrs are the host's own global and ULA addresses.
	HostAddrs []netip.Addr
	// UplinkPrefixes are the on-link prefixes of the uplink's addresses.
	UplinkPrefixes []netip.Prefix
	// Gateways are the uplink's default gateways; a carved subnet never
	// contains one.
	Gateways []netip.Addr
	// Driver is the driver name for compose and docker plugin set;
	// "" means v6bridge:latest.
	Driver string
}

// Row is one line of the plan table, as in the seed.
type Row struct {
	Plan        string       `json:"plan"`
	Range       netip.Prefix `json:"range"`
	Description string       `json:"description"`
}

// Network is a network of the compose block.
type Network struct {
	Name   string       `json:"name"`
	Mode   string       `json:"mode"`
	Subnet netip.Prefix `json:"subnet"`
}

// Setting is one plugin setting (docker plugin set KEY=VALUE, or the
// environment of `v6bridge serve`).
type Setting struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Plan is a built address plan.
type Plan struct {
	Rows     []Row     `json:"rows"`
	Networks []Network `json:"networks"`
	Settings []Setting `json:"settings"`
	Warnings []string  `json:"warnings"`
	Driver   string    `json:"driver"`
}

// exampleULA is the seed's example ULA, copied into many set-ups.
var exampleULA = netip.MustParsePrefix("fd12:3456:789a::/48")

// Build computes the plan for in. It never fails: what is wrong with the
// input becomes a warning and the part it concerns is left out.
func Build(in Input) Plan {
	p := Plan{Driver: in.Driver, Networks: []Network{}, Warnings: []string{}}
	if p.Driver == "" {
		p.Driver = "v6bridge:latest"
	}
	pubLen, ulaLen := orDefault(in.PublicLen), orDefault(in.ULALen)
	avoid := Avoid{Addrs: append(append([]netip.Addr(nil), in.HostAddrs...), in.Gateways...)}
	on := ""
	if in.Uplink != "" {
		on = " on " + in.Uplink
	}

	switch {
	case in.Public.IsValid() && in.Public.Bits() > MaxPublicBits:
		p.buildFew(in, on)
	case in.Public.IsValid():
		p.buildPublic(in, pubLen, avoid, on)
	default:
		p.warn("no public prefix: the uplink has no global /64 and --public was not given; public networks need the provider's prefix, e.g. --public 2001:db8:1234:a1::/64 (PUBLIC_PREFIX)")
	}
	if in.ULA.IsValid() {
		p.buildULA(in, ulaLen, avoid)
	}
	return p
}

// MaxPublicBits is the longest public prefix public networks can be carved
// from: a /120, the longest subnet v6bridge accepts. Providers that hand
// out less (a /124 at DigitalOcean, a /128 at OVH) get nat networks only.
const MaxPublicBits = 120

// buildFew plans a host with a handful of public addresses (a /124, a
// /128): no public networks, which would need a /120 at least, but nat
// networks, and the addresses as they are for published ports.
func (p *Plan) buildFew(in Input, on string) {
	pub := in.Public.Masked()
	n := uint64(1) << (128 - pub.Bits())
	for _, a := range in.HostAddrs {
		if pub.Contains(a) && !netspec.IsULA(a) {
			p.Rows = append(p.Rows, Row{Plan: "host", Range: netip.PrefixFrom(a, 128),
				Description: "public address of the host" + on + "; publish ports on it: -p [" + a.String() + "]:443:443, or SNAT a nat network to it (-o v6bridge.host_ipv6=" + a.String() + ")"})
		}
	}
	desc := fmt.Sprintf("%d public addresses from the provider: too few for public networks (a /%d at least), so nat networks only; add the unused ones to the uplink%s to publish ports on them", n, MaxPublicBits, on)
	if n == 1 {
		desc = fmt.Sprintf("the one public address from the provider: no public networks (a /%d at least), so nat networks only, with ports published on it", MaxPublicBits)
	}
	p.Rows = append(p.Rows, Row{Plan: "public prefix", Range: pub, Description: desc})
}

func (p *Plan) buildPublic(in Input, bits int, avoid Avoid, on string) {
	pub := in.Public.Masked()
	first := true
	for _, a := range in.HostAddrs {
		if pub.Contains(a) && !netspec.IsULA(a) {
			desc := "public address of the host" + on
			if first {
				desc = "main public address of the host" + on + "; published ports listen on it"
				first = false
			}
			p.Rows = append(p.Rows, Row{Plan: "host", Range: netip.PrefixFrom(a, 128), Description: desc})
		}
	}
	p.Rows = append(p.Rows, Row{Plan: "public prefix", Range: pub,
		Description: fmt.Sprintf("public prefix of the host (PUBLIC_PREFIX); public networks are carved from it, a /%d each", bits)})
	if err := CheckPublic("PUBLIC_PREFIX", pub); err != nil {
		p.warn("public prefix %s is not a global unicast prefix (ULA goes in --ula): %v", pub, err)
		return
	}
	if bits < pub.Bits() {
		p.warn("public subnets of /%d do not fit in the public prefix %s: accepted are /%d to /120", bits, pub, pub.Bits())
		return
	}
	idx := uint64(1)
	if bits == pub.Bits() {
		idx = 0
	}
	naive, _ := Subnet(pub, bits, idx)
	for _, a := range in.HostAddrs {
		if idx == 0 && naive.Contains(a) { // with more subnets Carve skips it
			p.warn("public range %s contains %s, an address of the host: a bridge with it takes that address off the uplink (v6bridge refuses it); carve a /112 from the /64 instead, e.g. --public %s --public-len 112",
				naive, a, widest(in.UplinkPrefixes, pub))
			break
		}
	}
	for _, u := range in.UplinkPrefixes {
		if u.Overlaps(naive) && naive.Bits() <= u.Bits() {
			p.warn("public range %s is a /%d while the uplink uses %s: the bridge's route competes with the uplink's and the host loses its own /64; give bridges a /112 of it (PUBLIC_SUBNET_LEN=112)",
				naive, naive.Bits(), u)
			break
		}
	}
	p.addFirst(Network{Name: "public", Mode: "public"}, pub, bits, avoid,
		"first public network (mode public): containers with public addresses; v6bridge answers NDP for them"+on,
		"no /%d of %s is free of the host's addresses and gateway: public networks need a longer PUBLIC_SUBNET_LEN, e.g. 112",
		Setting{"PUBLIC_PREFIX", pub.String()}, Setting{"PUBLIC_SUBNET_LEN", fmt.Sprint(bits)})
}

// addFirst carves n, the first network of its kind, a /bits of space
// free of avoid, and adds it with its row (desc) and the settings that
// make the plugin carve the same: only settings that work are printed.
// When no /bits is free it warns noRoom, a format of bits and space.
func (p *Plan) addFirst(n Network, space netip.Prefix, bits int, avoid Avoid, desc, noRoom string, settings ...Setting) {
	var err error
	if n.Subnet, err = Carve(space, bits, avoid); err != nil {
		p.warn(noRoom, bits, space)
		return
	}
	p.Settings = append(p.Settings, settings...)
	p.Rows = append(p.Rows, Row{Plan: n.Name, Range: n.Subnet, Description: desc})
	p.Networks = append(p.Networks, n)
}

func (p *Plan) buildULA(in Input, bits int, avoid Avoid) {
	ula := in.ULA.Masked()
	desc := "ULA network (ULA_PREFIX), unique to this host; never routed on the internet"
	switch in.ULASource {
	case "generated":
		desc += "; generated now: pin it with ULA_PREFIX, or the plugin generates its own"
	case "persisted":
		desc += "; generated by the plugin on this host"
	}
	p.Rows = append(p.Rows, Row{Plan: "ula", Range: ula, Description: desc})
	switch {
	case !netspec.IsLocalULA(ula):
		// CheckULA below says why.
	case ula.Bits() <= 48 && copiedULA(ula):
		p.warn("ULA %s has a copied or empty global ID, not 40 random bits: two hosts or sites with it collide once connected (VPN, peering); use --ula auto", ula)
	}
	host, err := HostULA(ula, in.HostID)
	if err != nil {
		p.warn("%v", err)
		return
	}
	setting := ula
	if in.HostID != 0 {
		setting = host // the plugin carves from the first /64 of ULA_PREFIX
	}
	p.Rows = append(p.Rows, Row{Plan: "ula host", Range: host,
		Description: fmt.Sprintf("ULA subnet of this Docker host (host id %d); nat and internal networks are carved from it, a /%d each", in.HostID, bits)})
	if err := CheckULA("ULA_PREFIX", setting); err != nil {
		p.warn("the plugin refuses this ULA, so no ULA settings are printed: %v", err)
		return
	}
	if bits < host.Bits() {
		p.warn("ULA subnets of /%d do not fit in this host's ULA %s: accepted are /%d to /120", bits, host, host.Bits())
		return
	}
	p.addFirst(Network{Name: "internal", Mode: "nat"}, host, bits, avoid,
		"first internal network (mode nat): container addresses for internal traffic; NAT66 for outgoing connections, published ports on the host's address",
		"no /%d of %s is free of the host's addresses: use a longer ULA_SUBNET_LEN, e.g. 112",
		Setting{"ULA_PREFIX", setting.String()}, Setting{"ULA_SUBNET_LEN", fmt.Sprint(bits)})
}

// copiedULA reports whether ula is the seed's example or has an empty
// global ID: not the 40 random bits RFC 4193 asks for.
func copiedULA(ula netip.Prefix) bool {
	b := ula.Addr().As16()
	return ula.Overlaps(exampleULA) || b[1]|b[2]|b[3]|b[4]|b[5] == 0
}

// widest returns the shortest uplink prefix overlapping pub, else pub.
func widest(uplink []netip.Prefix, pub netip.Prefix) netip.Prefix {
	best := pub
	for _, u := range uplink {
		if u.Overlaps(pub) && u.Bits() < best.Bits() {
			best = u
		}
	}
	if best.Bits() > 64 {
		best = netip.PrefixFrom(best.Addr(), 64).Masked()
	}
	return best
}

func (p *Plan) warn(format string, args ...any) {
	p.Warnings = append(p.Warnings, fmt.Sprintf(format, args...))
}

func orDefault(bits int) int {
	if bits == 0 {
		return DefaultSubnetLen
	}
	return bits
}

// WriteJSON writes p as indented JSON.
func (p Plan) WriteJSON(w io.Writer) error { return writeJSON(w, "plan", p) }

// writeText writes the text in b to w, then the warnings, if any, as a
// list under their own heading.
func writeText(w io.Writer, b *strings.Builder, warnings []string) error {
	if len(warnings) > 0 {
		b.WriteString("\nWarnings\n\n")
		for _, m := range warnings {
			fmt.Fprintf(b, "- %s\n", m)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeJSON writes v as indented JSON; what names it in the error.
func writeJSON(w io.Writer, what string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", what, err)
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// WriteText writes p for people: the plan table, the compose networks:
// block, the plugin settings and the warnings.
func (p Plan) WriteText(w io.Writer) error {
	var b strings.Builder
	b.WriteString("Address plan\n\n")
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PLAN\tRANGE\tDESCRIPTION")
	for _, r := range p.Rows {
		rng := r.Range.String()
		if r.Range.IsSingleIP() {
			rng = r.Range.Addr().String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Plan, rng, r.Description)
	}
	tw.Flush()

	if len(p.Networks) > 0 {
		b.WriteString("\nCompose networks (or leave out ipam.config: v6bridge carves the next free subnet itself)\n\n")
		b.WriteString(p.Compose())
	}
	if len(p.Settings) > 0 {
		b.WriteString("\nPlugin settings (managed plugin, while disabled)\n\n")
		fmt.Fprintf(&b, "docker plugin set %s", p.Driver)
		for _, s := range p.Settings {
			fmt.Fprintf(&b, " %s=%s", s.Key, s.Value)
		}
		b.WriteString("\n\nHost service (environment of v6bridge serve, e.g. in the systemd unit)\n\n")
		for _, s := range p.Settings {
			fmt.Fprintf(&b, "Environment=%s=%s\n", s.Key, s.Value)
		}
	}
	return writeText(w, &b, p.Warnings)
}

// Compose renders the networks as a compose networks: block.
func (p Plan) Compose() string {
	var b strings.Builder
	b.WriteString("networks:\n")
	for _, n := range p.Networks {
		fmt.Fprintf(&b, "  %s:\n", n.Name)
		fmt.Fprintf(&b, "    driver: %s\n", p.Driver)
		if n.Mode != "" {
			fmt.Fprintf(&b, "    driver_opts:\n      v6bridge.mode: %s\n", n.Mode)
		}
		b.WriteString("    enable_ipv6: true\n")
		b.WriteString("    enable_ipv4: false # engines >= 28; leave out on older ones\n")
		fmt.Fprintf(&b, "    ipam:\n      driver: %s\n      config:\n        - subnet: %s\n", p.Driver, n.Subnet)
	}
	return b.String()
}
