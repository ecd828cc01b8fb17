// Package doctor checks a host for what v6bridge needs, as the seed's
// "Troubleshooting" and the trackers of docker-ipv6nat, ndppd and the
// engine suggest: IPv6 on, forwarding, accept_ra with an RA default route,
// the uplink and its global address, nftables, firewalls that drop routed
// traffic, NDP proxies and NAT66 containers that would fight v6bridge, and
// the engine version.
//
// Gathering (Gather, kernel and files) is apart from judging (Evaluate,
// pure): Facts in, Findings out, so every verdict is unit-tested without
// root.
package doctor

import (
	"fmt"
	"io"
	"net/netip"
	"strings"
	"text/tabwriter"
)

// Status is the verdict of one check.
type Status string

// Verdicts, from good to bad.
const (
	OK   Status = "ok"
	Warn Status = "warn"
	Fail Status = "fail"
)

// Finding is the result of one check: what was found, what it means for
// v6bridge, and how to fix it (empty when OK).
type Finding struct {
	Check   string `json:"check"`
	Status  Status `json:"status"`
	Summary string `json:"summary"`
	Meaning string `json:"meaning,omitempty"`
	Fix     string `json:"fix,omitempty"`
}

// Process is a running process of interest.
type Process struct {
	PID  int    `json:"pid"`
	Name string `json:"name"`
}

// Engine is what the Docker engine said about itself.
type Engine struct {
	Host       string `json:"host"`
	Version    string `json:"version,omitempty"`
	APIVersion string `json:"api_version,omitempty"`
	// MinAPIVersion is the oldest API the engine accepts from clients
	// (1.44 on engines >= 29: older docker CLIs and compose fail).
	MinAPIVersion string `json:"min_api_version,omitempty"`
	// Negotiated is the API version /_ping named and the version was
	// asked at; "" when the engine did not name one.
	Negotiated string `json:"negotiated,omitempty"`
	Err        string `json:"error,omitempty"` // why it could not be asked
}

// Facts is what Gather found on the host. Strings are sysctl values as
// read ("" when unreadable); *Err fields say why something is unknown.
type Facts struct {
	DisableIPv6 string // net.ipv6.conf.all.disable_ipv6; "" means IPv6 is not in the kernel
	Forwarding  string // net.ipv6.conf.all.forwarding

	Uplink         string         // interface of the IPv6 default route (or the one configured)
	UplinkErr      string         // why there is none
	AcceptRA       string         // net.ipv6.conf.<uplink>.accept_ra
	RADefaultRoute bool           // the default route was learned from a router advertisement
	Gateway        netip.Addr     // of the default route
	UplinkGlobal   []netip.Addr   // global, non-ULA addresses of the uplink
	UplinkPrefixes []netip.Prefix // the same with their prefix lengths (address/len)

	NFTablesErr         string   // listing tables failed
	Tables              []string // "family name"
	FilterForwardPolicy string   // "drop" or "accept" of ip6 filter FORWARD (iptables-nft); "" without one
	DockerUser          bool     // ip6 filter has a DOCKER-USER chain
	UFW                 bool     // ufw's chains (ufw6-*) are present
	Firewalld           bool     // firewalld's table or process is present

	FastPathOff bool   // FASTPATH=false: not checked
	FastPathErr string // why the kernel has no flowtables for the fast path; "" when it has

	Conflicting []Process // ndppd, docker-ipv6nat in this network namespace
	Engine      Engine
	Plugin      Plugin // the running v6bridge, if one answers
	StateDir    StateDir
	DNS64       DNS64 // the resolver's DNS64 and the NAT64 behind it
}

// minAPIIPv4False is the first engine API (Docker 28) that creates a
// network without IPv4 (--ipv4=false).
const minAPIIPv4False = "1.48"

// Evaluate judges facts. It is pure.
func Evaluate(f Facts) []Finding {
	var out []Finding
	add := func(check string, s Status, summary, meaning, fix string) {
		out = append(out, Finding{check, s, summary, meaning, fix})
	}

	switch f.DisableIPv6 {
	case "":
		add("ipv6", Fail, "IPv6 is not available (no net.ipv6 sysctls)",
			"the kernel has no IPv6: v6bridge cannot work", "boot a kernel with IPv6 (remove ipv6.disable=1 from the kernel command line)")
	case "0":
		add("ipv6", OK, "IPv6 is enabled", "", "")
	default:
		add("ipv6", Fail, "net.ipv6.conf.all.disable_ipv6="+f.DisableIPv6,
			"IPv6 is switched off: no interface has an IPv6 address", "sysctl -w net.ipv6.conf.all.disable_ipv6=0, and remove the setting from /etc/sysctl.d")
	}

	switch f.Forwarding {
	case "1":
		add("forwarding", OK, "net.ipv6.conf.all.forwarding=1", "", "")
	default:
		add("forwarding", Warn, "net.ipv6.conf.all.forwarding="+orUnknown(f.Forwarding),
			"the host does not route IPv6: containers reach nothing beyond their bridge; v6bridge turns it on when it starts, so if it is off while v6bridge runs something turned it off",
			"sysctl -w net.ipv6.conf.all.forwarding=1 and look for a forwarding=0 in /etc/sysctl.conf and /etc/sysctl.d")
	}

	switch {
	case f.Uplink == "":
		add("accept_ra", Warn, "no uplink to check", "", "")
	case !f.RADefaultRoute:
		add("accept_ra", OK, fmt.Sprintf("default route is static; accept_ra=%s on %s does not matter", orUnknown(f.AcceptRA), f.Uplink), "", "")
	case f.AcceptRA == "2":
		add("accept_ra", OK, fmt.Sprintf("default route from router advertisements, accept_ra=2 on %s", f.Uplink), "", "")
	case f.AcceptRA == "1" && f.Forwarding != "1":
		add("accept_ra", Warn, fmt.Sprintf("default route from router advertisements, accept_ra=1 on %s", f.Uplink),
			"with forwarding on, accept_ra=1 ignores advertisements and the default route expires; v6bridge sets accept_ra=2 before it turns forwarding on",
			fmt.Sprintf("sysctl -w net.ipv6.conf.%s.accept_ra=2 (and in /etc/sysctl.d) if anything else turns forwarding on", f.Uplink))
	default:
		meaning := "forwarding is on, so the kernel ignores router advertisements: the default route expires and the host goes offline"
		if f.AcceptRA == "0" {
			meaning = "router advertisements are ignored: the default route learned from them expires and the host goes offline"
		}
		add("accept_ra", Fail, fmt.Sprintf("default route from router advertisements, but accept_ra=%s on %s", orUnknown(f.AcceptRA), f.Uplink),
			meaning, fmt.Sprintf("sysctl -w net.ipv6.conf.%s.accept_ra=2, and put it in /etc/sysctl.d", f.Uplink))
	}

	switch {
	case f.Uplink == "":
		add("uplink", Fail, "no IPv6 default route: "+orUnknown(f.UplinkErr),
			"v6bridge finds its uplink by the IPv6 default route; without one nothing leaves the host", "configure the provider's IPv6 (address and default route), or set UPLINK")
	case len(f.UplinkGlobal) == 0:
		add("uplink", Fail, f.Uplink+" has no global IPv6 address",
			"NAT66 and published ports need a global host address, and the default PUBLIC_PREFIX is the uplink's /64", "add the provider's address, e.g. ip -6 addr add 2001:db8:1234:a1::1/64 dev "+f.Uplink)
	default:
		via := ""
		if f.Gateway.IsValid() {
			via = " via " + f.Gateway.String()
		}
		add("uplink", OK, fmt.Sprintf("%s%s, global %s", f.Uplink, via, joinAddrs(f.UplinkGlobal)), "", "")
	}

	if f.NFTablesErr != "" {
		add("nftables", Fail, "nftables is not usable: "+f.NFTablesErr,
			"v6bridge's NAT66, published ports and firewall are one nftables table", "load nf_tables (modprobe nf_tables) and run v6bridge with CAP_NET_ADMIN")
	} else {
		add("nftables", OK, fmt.Sprintf("nftables usable, %d tables", len(f.Tables)), "", "")
	}

	switch {
	case f.FastPathOff:
		add("fastpath", OK, "FASTPATH=false: every packet takes the forward chain", "", "")
	case f.FastPathErr == "":
		add("fastpath", OK, "the kernel has nftables flowtables: established tcp/udp connections take the fast path", "", "")
	default:
		add("fastpath", Warn, "no fast path: "+f.FastPathErr,
			"v6bridge runs without it: every packet of every connection takes the forward chain, conntrack and routing; all works, at a higher CPU cost per packet",
			"a kernel with CONFIG_NF_FLOW_TABLE, CONFIG_NF_FLOW_TABLE_INET and CONFIG_NFT_FLOW_OFFLOAD (modprobe nf_flow_table_inet nft_flow_offload), or FASTPATH=false")
	}

	switch {
	case f.FilterForwardPolicy != "drop":
		add("ip6tables", OK, "no ip6tables FORWARD drop policy", "", "")
	case f.DockerUser:
		add("ip6tables", Warn, "ip6tables FORWARD policy is DROP (the engine's), with a DOCKER-USER chain",
			"every base chain sees a packet, so that policy drops what v6bridge's table accepts; v6bridge inserts into DOCKER-USER an accept for the packets its table accepted into its bridges or towards the uplink (mark 0x30000000), so without its table the policy still drops",
			"nothing while v6bridge runs; check with ip6tables -S DOCKER-USER")
	default:
		add("ip6tables", Fail, "ip6tables FORWARD policy is DROP and there is no DOCKER-USER chain",
			"routed traffic of v6bridge's bridges is dropped there, whatever v6bridge's own table accepts",
			"ip6tables -I FORWARD -m mark --mark 0x30000000/0x30000000 -j ACCEPT (what v6bridge's table accepted; see docs/security.md)")
	}
	if f.UFW {
		add("ufw", Warn, "ufw is active",
			"its forward policy (DEFAULT_FORWARD_POLICY=DROP) drops routed traffic of v6bridge's bridges",
			"ufw route allow in on v6b-+ and ufw route allow out on v6b-+, or trust the v6b-* interfaces in /etc/ufw/after6.rules")
	}
	if f.Firewalld {
		add("firewalld", Warn, "firewalld is active",
			"its forward chain rejects traffic of interfaces outside an accepting zone, v6bridge's bridges included",
			"firewall-cmd --permanent --zone=trusted --add-interface=<bridge> for each v6b-* bridge, then firewall-cmd --reload")
	}

	for _, name := range []string{"ndppd", "docker-ipv6nat"} {
		var pids []string
		for _, p := range f.Conflicting {
			if p.Name == name {
				pids = append(pids, fmt.Sprint(p.PID))
			}
		}
		switch {
		case len(pids) == 0:
			add(name, OK, name+" is not running", "", "")
		case name == "ndppd":
			add(name, Fail, "ndppd is running (pid "+strings.Join(pids, ", ")+")",
				"it answers neighbour solicitations for the same addresses as v6bridge's NDP proxy, and its proxy_ndp settings fight v6bridge's",
				"systemctl disable --now ndppd; v6bridge answers NDP for public containers itself")
		default:
			add(name, Fail, "docker-ipv6nat is running (pid "+strings.Join(pids, ", ")+")",
				"it rewrites ip6tables NAT rules for every Docker network, v6bridge's included, next to v6bridge's NAT66",
				"stop and remove the ipv6nat container (docker rm -f <it>); v6bridge does NAT66 itself")
		}
	}

	e := f.Engine
	bug, buggy, judged := KnownEngineBug(e.Version)
	switch {
	case e.Err != "":
		add("engine", Warn, "no Docker engine answers at "+e.Host+": "+e.Err,
			"the engine is stopped, or DOCKER_HOST points elsewhere", "start the engine (systemctl start docker) or set DOCKER_HOST")
	case buggy:
		add("engine", Fail, bug.Summary, bug.Meaning, bug.Fix)
	case !apiAtLeast(e.APIVersion, minAPIIPv4False):
		add("engine", Warn, fmt.Sprintf("engine %s (API %s) has no --ipv4=false", e.Version, e.APIVersion),
			"engines before 28 always want IPv4: v6bridge hands out a non-routed placeholder from 169.254.0.0/16 (docs/engines.md)",
			"upgrade to Docker >= 28 for networks without IPv4")
	default:
		min := ""
		if e.MinAPIVersion != "" {
			min = ", clients need API >= " + e.MinAPIVersion
		}
		if !judged {
			min += "; its version is not a Docker release's, so not checked for known engine bugs"
		}
		add("engine", OK, fmt.Sprintf("engine %s (API %s%s) supports --ipv4=false", e.Version, e.APIVersion, min), "", "")
	}

	f.evaluateShape(add)
	f.evaluateStateDir(add)
	f.evaluateDNS64(add)

	switch p := f.Plugin; {
	case p.Err != "":
		add("plugin", Warn, "no v6bridge plugin answers: "+p.Err,
			"v6bridge is not installed, not enabled, or not running in this network namespace; nothing else is wrong for that",
			"make install (managed plugin) or systemctl start v6bridge (host service); status and doctor find its socket under "+PluginsDir)
	case p.Socket != "":
		add("plugin", OK, fmt.Sprintf("v6bridge answers at %s (%d networks)", p.Socket, p.Networks), "", "")
	}
	if ps := f.Plugin.ForwardProblems; len(ps) > 0 {
		add("forwards", Warn, fmt.Sprintf("%d ports published on the host's loopback address are not forwarded: %s", len(ps), strings.Join(ps, "; ")),
			"another program holds them: connections to them reach that program, not the container; v6bridge binds each one by itself once it is free",
			"stop the program named, or publish another host port for the container (docker run -p [::1]:OTHER:PORT)")
	}
	return out
}

// Failed reports whether any finding is a Fail.
func Failed(fs []Finding) bool {
	for _, f := range fs {
		if f.Status == Fail {
			return true
		}
	}
	return false
}

// WriteText writes findings for people: one line each, with what it means
// and the fix under anything not OK.
func WriteText(w io.Writer, fs []Finding) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, f := range fs {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", f.Status, f.Check, f.Summary)
		if f.Meaning != "" {
			fmt.Fprintf(tw, "\t\t  means: %s\n", f.Meaning)
		}
		if f.Fix != "" {
			fmt.Fprintf(tw, "\t\t  fix:   %s\n", f.Fix)
		}
	}
	return tw.Flush()
}

// apiAtLeast compares API versions "1.48" numerically; unparsable is old.
func apiAtLeast(v, min string) bool {
	var a, b, c, d int
	if _, err := fmt.Sscanf(v, "%d.%d", &a, &b); err != nil {
		return false
	}
	fmt.Sscanf(min, "%d.%d", &c, &d)
	return a > c || a == c && b >= d
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func joinAddrs(as []netip.Addr) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}
