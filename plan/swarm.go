package plan

import (
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/v6bridge/v6bridge/netspec"
)

// SwarmHost is one Docker host of a swarm plan, as the user names it.
type SwarmHost struct {
	// Name is the host's name in the plan (its hostname, for people).
	Name string
	// Public is the host's public prefix, normally its provider's /64.
	Public netip.Prefix
	// ID picks the host's /64 inside the site ULA; IDSet says it was
	// given (else BuildSwarm numbers hosts 1, 2, ... in order).
	ID    uint64
	IDSet bool
}

// SwarmInput is what a swarm plan is built from.
type SwarmInput struct {
	// Site is the ULA of the whole swarm, normally a random /48: each
	// host's ULA /64 is taken from it by host id.
	Site netip.Prefix
	// Hosts are the swarm's Docker hosts, at least one.
	Hosts []SwarmHost
	// PublicLen and ULALen are the lengths of the networks; 0 means
	// DefaultSubnetLen.
	PublicLen, ULALen int
	// Driver is the plugin's name; "" means v6bridge:latest.
	Driver string
}

// SwarmNode is one host's part of a swarm plan.
type SwarmNode struct {
	Name          string       `json:"name"`
	HostID        uint64       `json:"host_id"`
	Public        netip.Prefix `json:"public_prefix"`
	PublicNetwork netip.Prefix `json:"public_network"`
	ULA           netip.Prefix `json:"ula_prefix"`
	NatNetwork    netip.Prefix `json:"nat_network"`
	// Settings are the plugin settings of this host.
	Settings []Setting `json:"settings"`
	// Commands are what to run on this host: the plugin settings, then
	// the config-only networks.
	Commands []string `json:"commands"`
}

// SwarmPlan is a built swarm plan.
type SwarmPlan struct {
	Site   netip.Prefix `json:"site"`
	Driver string       `json:"driver"`
	Hosts  []SwarmNode  `json:"hosts"`
	// Manager are the commands to run once, on a manager, after the
	// config-only networks exist on every host.
	Manager  []string `json:"manager"`
	Warnings []string `json:"warnings"`
}

// Names of the swarm plan's networks: the config-only network of each
// host and the swarm-scoped network made from them.
const (
	SwarmPublicConfig = "public-cfg"
	SwarmPublic       = "public"
	SwarmNatConfig    = "internal-cfg"
	SwarmNat          = "internal"
)

var hostNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// BuildSwarm computes the plan of a swarm of hosts sharing one site ULA.
// Unlike Build it refuses what would break the swarm: two hosts whose
// public prefixes or ULA /64s overlap, a host id outside the site, a site
// that is not a ULA, a public prefix that is not global.
func BuildSwarm(in SwarmInput) (SwarmPlan, error) {
	p := SwarmPlan{Site: in.Site, Driver: in.Driver, Hosts: []SwarmNode{}, Manager: []string{}, Warnings: []string{}}
	if p.Driver == "" {
		p.Driver = "v6bridge:latest"
	}
	pubLen, ulaLen := orDefault(in.PublicLen), orDefault(in.ULALen)
	if pubLen < 64 || pubLen > 120 || ulaLen < 64 || ulaLen > 120 {
		return p, fmt.Errorf("network lengths /%d (public) and /%d (nat): accepted are /64 to /120", pubLen, ulaLen)
	}
	if len(in.Hosts) == 0 {
		return p, fmt.Errorf("no hosts: give each Docker host as --host NAME=PUBLIC_PREFIX[,id=N], e.g. --host vps1=2001:db8:1234:a1::/64")
	}
	if err := CheckULA("--site", in.Site); err != nil {
		return p, err
	}
	if in.Site.Bits() <= ULABits && copiedULA(in.Site) {
		p.Warnings = append(p.Warnings, fmt.Sprintf("site %s has a copied or empty global ID, not 40 random bits: two sites with it collide once connected (VPN, peering); take a random one from `v6bridge plan`", in.Site))
	}
	for i, h := range in.Hosts {
		n, err := swarmNode(in.Site, h, i, pubLen, ulaLen, p.Driver)
		if err != nil {
			return p, err
		}
		for _, o := range p.Hosts {
			switch {
			case o.Name == n.Name:
				return p, fmt.Errorf("host %q is given twice: each host needs its own name", n.Name)
			case o.Public.Overlaps(n.Public):
				return p, fmt.Errorf("hosts %q (%s) and %q (%s) have overlapping public prefixes: each host needs its own /64 from its provider, or tasks on one are unreachable from the other", o.Name, o.Public, n.Name, n.Public)
			case o.ULA == n.ULA:
				return p, fmt.Errorf("hosts %q and %q both have host id %d (ULA %s): give each host its own id, e.g. --host %s=%s,id=%d", o.Name, n.Name, n.HostID, n.ULA, n.Name, n.Public, maxID(p.Hosts)+1)
			}
		}
		p.Hosts = append(p.Hosts, n)
	}
	for _, net := range []struct{ cfg, name string }{{SwarmPublicConfig, SwarmPublic}, {SwarmNatConfig, SwarmNat}} {
		p.Manager = append(p.Manager, fmt.Sprintf("docker network create -d %s --scope swarm --config-from %s --attachable %s", p.Driver, net.cfg, net.name))
	}
	return p, nil
}

func swarmNode(site netip.Prefix, h SwarmHost, i, pubLen, ulaLen int, driver string) (SwarmNode, error) {
	n := SwarmNode{Name: h.Name, HostID: h.ID, Public: h.Public}
	if !h.IDSet {
		n.HostID = uint64(i) + 1
	}
	if !hostNameRE.MatchString(h.Name) {
		return n, fmt.Errorf("host name %q: accepted are letters, digits, '.', '_' and '-' (up to 63, starting with a letter or digit)", h.Name)
	}
	pub := h.Public
	if !pub.IsValid() || !netspec.IsPublic(pub.Addr()) || pub.Bits() < 32 || pub.Bits() > 64 {
		return n, fmt.Errorf("host %q: public prefix %s: accepted is the host's global IPv6 prefix from its provider, /32 to /64, such as 2001:db8:1234:a1::/64", h.Name, pub)
	}
	if pub != pub.Masked() {
		return n, fmt.Errorf("host %q: public prefix %s has host bits set: did you mean %s?", h.Name, pub, pub.Masked())
	}
	ula, err := HostULA(site, n.HostID)
	if err != nil {
		return n, fmt.Errorf("host %q: %w", h.Name, err)
	}
	n.ULA = ula
	// Carve skips the first subnet (with ::1, the host's customary
	// address), as the plugin does on each host.
	if n.PublicNetwork, err = Carve(pub, pubLen, Avoid{}); err != nil {
		return n, fmt.Errorf("host %q: public network of %s: %w", h.Name, pub, err)
	}
	if n.NatNetwork, err = Carve(ula, ulaLen, Avoid{}); err != nil {
		return n, fmt.Errorf("host %q: nat network of %s: %w", h.Name, ula, err)
	}
	n.Settings = []Setting{
		{"PUBLIC_PREFIX", pub.String()}, {"PUBLIC_SUBNET_LEN", fmt.Sprint(pubLen)},
		{"ULA_PREFIX", ula.String()}, {"ULA_SUBNET_LEN", fmt.Sprint(ulaLen)},
	}
	set := "docker plugin set " + driver
	for _, s := range n.Settings {
		set += " " + s.Key + "=" + s.Value
	}
	n.Commands = []string{
		set,
		configOnly(driver, n.PublicNetwork, "public", SwarmPublicConfig),
		configOnly(driver, n.NatNetwork, "nat", SwarmNatConfig),
	}
	return n, nil
}

// configOnly is the command that creates a host's config-only network.
// It has no --ipv4=false: a swarm-scoped network made from it refuses one
// with IPv4 disabled, so v6bridge hands out its non-routed IPv4
// placeholder instead.
func configOnly(driver string, subnet netip.Prefix, mode, name string) string {
	return fmt.Sprintf("docker network create --config-only --ipam-driver %s --ipv6 --subnet %s -o v6bridge.mode=%s %s", driver, subnet, mode, name)
}

func maxID(nodes []SwarmNode) uint64 {
	var m uint64
	for _, n := range nodes {
		m = max(m, n.HostID)
	}
	return m
}

// WriteJSON writes p as indented JSON.
func (p SwarmPlan) WriteJSON(w io.Writer) error { return writeJSON(w, "swarm plan", p) }

// WriteText writes p for people: a table of the hosts, the commands for
// each host, the commands for a manager, and the warnings.
func (p SwarmPlan) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Swarm plan: site %s, %d hosts\n\n", p.Site, len(p.Hosts))
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tID\tPUBLIC PREFIX\tPUBLIC NETWORK\tULA PREFIX\tNAT NETWORK")
	for _, n := range p.Hosts {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", n.Name, n.HostID, n.Public, n.PublicNetwork, n.ULA, n.NatNetwork)
	}
	tw.Flush()
	b.WriteString("\nNo two hosts' public prefixes or ULA prefixes overlap. Tasks on " + SwarmPublic + " reach each\n" +
		"other and the internet at their public addresses through the provider's router;\n" +
		"a host's ULA prefix is local to it: tasks on " + SwarmNat + " reach tasks of other hosts\n" +
		"at their public addresses only.\n")
	for _, n := range p.Hosts {
		fmt.Fprintf(&b, "\nOn %s (plugin settings while the plugin is disabled, then the config-only networks)\n\n", n.Name)
		for _, c := range n.Commands {
			b.WriteString(c + "\n")
		}
	}
	b.WriteString("\nOnce, on a manager, after every host has its config-only networks\n\n")
	for _, c := range p.Manager {
		b.WriteString(c + "\n")
	}
	b.WriteString("\nServices: --network " + SwarmPublic + " (or " + SwarmNat + ") and --publish mode=host,target=PORT,published=PORT\n")
	return writeText(w, &b, p.Warnings)
}

// ParseSwarmHost parses a --host value: NAME=PUBLIC_PREFIX[,id=N], the id
// decimal or 0x hex.
func ParseSwarmHost(s string) (SwarmHost, error) {
	bad := func(why string) (SwarmHost, error) {
		return SwarmHost{}, fmt.Errorf("--host %q: %s; accepted is NAME=PUBLIC_PREFIX[,id=N] such as vps1=2001:db8:1234:a1::/64,id=1", s, why)
	}
	name, rest, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return bad("no NAME=")
	}
	pub, opts, _ := strings.Cut(rest, ",")
	p, err := netip.ParsePrefix(pub)
	if err != nil {
		return bad(fmt.Sprintf("%q is not a prefix", pub))
	}
	h := SwarmHost{Name: name, Public: p}
	if opts != "" {
		v, ok := strings.CutPrefix(opts, "id=")
		if !ok {
			return bad(fmt.Sprintf("unknown option %q", opts))
		}
		id, err := strconv.ParseUint(v, 0, 64)
		if err != nil {
			return bad(fmt.Sprintf("id %q is not a number (decimal or 0x hex)", v))
		}
		h.ID = id
		h.IDSet = true
	}
	return h, nil
}
