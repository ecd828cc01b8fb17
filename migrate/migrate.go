// Package migrate translates what people run before v6bridge — ndppd,
// docker-ipv6nat, the engine's own IPv6 (daemon.json) and compose networks
// on the built-in bridge — into the v6bridge equivalent: plugin settings,
// `docker network create` lines, rewritten compose files, and the steps to
// switch over without losing reachability (ndppd stops only after v6bridge
// answers). What it cannot translate it refuses, saying why.
//
// The package is pure: the caller reads the files and scans the running
// processes; Build returns text.
package migrate

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/v6bridge/v6bridge/ipam"
	"github.com/v6bridge/v6bridge/netspec"
	"github.com/v6bridge/v6bridge/plan"
)

// Process is a running process migrate cares about (ndppd, docker-ipv6nat).
type Process struct {
	PID  int
	Name string
}

// ComposeFile is a compose file as read.
type ComposeFile struct {
	Path string
	Data []byte
}

// Input is what Build translates; every part is optional.
type Input struct {
	Ndppd      *Ndppd
	NdppdPath  string
	Daemon     *Daemon
	DaemonPath string
	Compose    []ComposeFile
	// Running are the ndppd and docker-ipv6nat processes of the host.
	Running []Process
	// Driver is the driver name written everywhere; "" means
	// v6bridge:latest (the managed plugin; "v6bridge" for the host service).
	Driver string
}

// Network is one v6bridge network of the result.
type Network struct {
	Name   string
	Mode   string       // nat, public, routed or internal
	Subnet netip.Prefix // zero: the plugin carves one
	From   string       // where it comes from: a file and what in it
	Create string       // the docker network create line; "" for compose networks
}

// ComposeOut is a rewritten compose file.
type ComposeOut struct {
	Path     string // the original
	OutPath  string // where --write puts the rewritten file, next to it
	Project  string // the compose project name
	Networks string // the rewritten top-level networks: block
	Text     string // the whole rewritten file
}

// Result is the translation.
type Result struct {
	Driver   string
	Settings []plan.Setting
	Networks []Network
	Compose  []ComposeOut
	Steps    []string
	Notes    []string
	// Refusals are what cannot be translated; with any, nothing is
	// written.
	Refusals []string
	// Wrote are files written (by the caller, with --write).
	Wrote []string
}

func (r *Result) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

func (r *Result) refuse(format string, args ...any) {
	r.Refusals = append(r.Refusals, fmt.Sprintf(format, args...))
}

// state is what Build learns on the way.
type state struct {
	in       Input
	r        Result
	public   netip.Prefix   // PUBLIC_PREFIX
	ruleNets []netip.Prefix // ndppd rules of network size (/65 to /120)
	ruleUsed map[netip.Prefix]bool
	singles  []Rule
	allNDP   []netip.Prefix // every global ndppd rule
	explicit []netip.Prefix // every subnet given somewhere, for carving
	ula      netip.Prefix   // ULA_PREFIX, zero when none is known
	ulaLen   int
}

// Build translates in. It never fails: what it cannot translate is in
// Result.Refusals.
func Build(in Input) Result {
	s := &state{in: in, r: Result{Driver: in.Driver}, ruleUsed: map[netip.Prefix]bool{}, ulaLen: plan.DefaultSubnetLen}
	if s.r.Driver == "" {
		s.r.Driver = "v6bridge:latest"
	}
	s.fromNdppd()
	s.fromDaemon()
	composes := s.parseCompose()
	s.pickULA(composes)
	for _, c := range composes {
		s.rewriteCompose(c)
	}
	s.leftoverRules()
	s.defaultBridge()
	s.settings()
	s.steps()
	return s.r
}

func (s *state) fromNdppd() {
	n := s.in.Ndppd
	if n == nil {
		return
	}
	file := s.in.NdppdPath
	static := false
	for _, px := range n.Proxies {
		if px.Promiscuous {
			s.r.note("%s line %d: proxy %s is promiscuous; v6bridge listens for the solicitations addressed to its containers' solicited-node groups, which is what the provider's router sends", file, px.Line, px.Iface)
		}
		for _, rl := range px.Rules {
			p := rl.Prefix.Masked()
			where := fmt.Sprintf("%s line %d: rule %s", file, rl.Line, rl.Prefix)
			switch {
			case p.Addr().IsLinkLocalUnicast() || p.Addr().IsMulticast() || !p.Addr().IsGlobalUnicast():
				s.r.refuse("%s: not a global unicast prefix; v6bridge answers NDP for global container addresses only", where)
				continue
			case netspec.IsULA(p.Addr()):
				s.r.note("%s: a ULA prefix; nothing on the provider's link asks for it, v6bridge's nat networks need no NDP: dropped", where)
				continue
			case p.Bits() < ipam.MinPrefixLen:
				s.r.refuse("%s: a /%d; accepted are /%d to /128: give the provider's /64 (PUBLIC_PREFIX) or the /112s of your public networks", where, p.Bits(), ipam.MinPrefixLen)
				continue
			}
			if rl.Method == MethodStatic {
				static = true
			}
			if rl.Method == MethodIface {
				s.r.note("%s: iface %s: v6bridge answers for the addresses its own public networks use, as this rule did for %s", where, rl.Iface, rl.Iface)
			}
			s.allNDP = append(s.allNDP, p)
			switch {
			case p.Bits() <= 64:
				if !s.public.IsValid() {
					s.public = p
				} else if p != s.public {
					s.r.note("%s: a second public prefix; PUBLIC_PREFIX is %s, give networks in %s an explicit --subnet", where, s.public, p)
				}
			case p.Bits() <= ipam.MaxPrefixLen:
				s.ruleNets = append(s.ruleNets, p)
				s.explicit = append(s.explicit, p)
			default:
				s.singles = append(s.singles, rl)
			}
		}
	}
	if !s.public.IsValid() && len(s.ruleNets) > 0 {
		s.public = netip.PrefixFrom(s.ruleNets[0].Addr(), 64).Masked()
		s.r.note("PUBLIC_PREFIX %s is the /64 around %s (ndppd has no rule for the whole /64); if the provider's prefix differs, set it", s.public, s.ruleNets[0])
	}
	if static {
		s.r.note("%s: static rules answered for whole ranges; NDP_RANGE=true makes v6bridge answer for the whole subnet of each public network (not for addresses outside its networks)", file)
	}
	if s.public.IsValid() {
		if err := plan.CheckPublic("PUBLIC_PREFIX", s.public); err != nil {
			s.r.refuse("%s: %v", file, err)
			s.public = netip.Prefix{}
		}
	}
}

func (s *state) fromDaemon() {
	d := s.in.Daemon
	if d == nil {
		return
	}
	file := s.in.DaemonPath
	if d.fixed.IsValid() {
		s.explicit = append(s.explicit, d.fixed)
	}
	for _, p := range d.Pools {
		if p.base.Addr().Is4() {
			s.r.note("%s: default-address-pools %s: IPv4, not needed by v6bridge networks (engines >= 28 create them without IPv4)", file, p.Base)
			continue
		}
		if !netspec.IsULA(p.base.Addr()) {
			s.r.note("%s: default-address-pools %s (size %d): global; v6bridge carves public networks from PUBLIC_PREFIX, a /%d each; give routed networks their --subnet", file, p.Base, p.Size, plan.DefaultSubnetLen)
			continue
		}
		if p.Size > 64 && p.Size <= ipam.MaxPrefixLen {
			s.ulaLen = p.Size
		} else {
			s.r.note("%s: default-address-pools %s size %d: v6bridge carves nat networks from one /64 of ULA_PREFIX, so a /%d each cannot be kept: ULA_SUBNET_LEN stays %d", file, p.Base, p.Size, p.Size, s.ulaLen)
		}
	}
	if d.UserlandProxy != nil && !*d.UserlandProxy {
		s.r.note("%s: userland-proxy false: v6bridge publishes ports in nftables and keeps the client's address whatever this says", file)
	}
	if d.IP6Tables != nil && !*d.IP6Tables {
		s.r.note("%s: ip6tables false: the engine leaves IPv6 NAT to docker-ipv6nat; v6bridge does NAT66 for its own networks, so this can stay", file)
	}
}

// pickULA derives ULA_PREFIX from the ULA subnets in use: the /64 they
// share, else the /48; the plugin carves new nat networks from its first
// /64, next to the subnets that exist.
func (s *state) pickULA(cs []*composeDoc) {
	var ulas []netip.Prefix
	for _, c := range cs {
		for _, n := range c.nets {
			for _, p := range n.subnets {
				if netspec.IsULA(p.Addr()) {
					ulas = append(ulas, p)
				}
			}
		}
	}
	if d := s.in.Daemon; d != nil {
		if netspec.IsULA(d.fixed.Addr()) {
			ulas = append(ulas, d.fixed)
		}
		for _, p := range d.Pools {
			if netspec.IsULA(p.base.Addr()) {
				ulas = append(ulas, p.base)
			}
		}
	}
	if len(ulas) == 0 {
		return
	}
	for _, bits := range []int{64, 48} {
		common := netip.PrefixFrom(ulas[0].Addr(), bits).Masked()
		ok := true
		for _, p := range ulas {
			if p.Bits() < bits || !common.Contains(p.Addr()) {
				ok = false
			}
		}
		if !ok {
			continue
		}
		if err := plan.CheckULA("ULA_PREFIX", common); err != nil {
			s.r.note("the ULA subnets in use (%s) are in %s, which the plugin refuses as ULA_PREFIX (%v): new nat networks get subnets of a generated ULA, the existing ones keep theirs", joinPrefixes(ulas), common, err)
			return
		}
		s.ula = common
		if b := common.Addr().As16(); common.Overlaps(netip.MustParsePrefix("fd12:3456:789a::/48")) || b[1]|b[2]|b[3]|b[4]|b[5] == 0 {
			s.r.note("ULA_PREFIX %s comes from an example or has an empty global ID: it is kept so addresses do not change, but two sites with it collide once connected (VPN, peering)", common)
		}
		return
	}
	s.r.note("the ULA subnets in use (%s) share no /48: new nat networks get subnets of the ULA the plugin generates, the existing ones keep theirs", joinPrefixes(ulas))
}

// carve returns the next free subnet for a network of mode, or the zero
// prefix when the plugin must carve it (no ULA_PREFIX known).
func (s *state) carve(mode string) netip.Prefix {
	space, bits := s.public, plan.DefaultSubnetLen
	if mode != "public" {
		if !s.ula.IsValid() {
			return netip.Prefix{}
		}
		space, _ = plan.HostULA(s.ula, 0)
		bits = s.ulaLen
	}
	if !space.IsValid() {
		return netip.Prefix{}
	}
	p, err := plan.Carve(space, bits, plan.Avoid{Prefixes: s.explicit})
	if err != nil {
		return netip.Prefix{}
	}
	s.explicit = append(s.explicit, p)
	return p
}

// modeOf is the mode of a network with a global subnet: public when ndppd
// answered for it or it lies in PUBLIC_PREFIX, else routed.
func (s *state) modeOf(p netip.Prefix) string {
	if netspec.IsULA(p.Addr()) {
		return "nat"
	}
	if s.public.IsValid() && s.public.Contains(p.Addr()) && p.Bits() >= s.public.Bits() {
		return "public"
	}
	for _, r := range s.allNDP {
		if r.Contains(p.Addr()) && p.Bits() >= r.Bits() {
			return "public"
		}
	}
	return "routed"
}

func (s *state) leftoverRules() {
	i := 0
	for _, p := range s.ruleNets {
		if s.ruleUsed[p] {
			continue
		}
		i++
		name := "public"
		if i > 1 {
			name = fmt.Sprintf("public%d", i)
		}
		s.r.Networks = append(s.r.Networks, Network{Name: name, Mode: "public", Subnet: p, From: s.in.NdppdPath + ": rule " + p.String(),
			Create: s.createLine(name, "public", p, false)})
	}
	for _, rl := range s.singles {
		held := false
		for _, n := range s.r.Networks {
			if n.Mode == "public" && n.Subnet.IsValid() && n.Subnet.Contains(rl.Prefix.Addr()) {
				held = true
			}
		}
		if held {
			s.r.note("%s line %d: rule %s: inside a public network; v6bridge answers for it while a container uses it", s.in.NdppdPath, rl.Line, rl.Prefix)
			continue
		}
		s.r.refuse("%s line %d: rule %s is a /%d outside every translated network: v6bridge answers NDP only for containers of its public networks (/%d to /%d); put the container using it on a public network whose --subnet contains it",
			s.in.NdppdPath, rl.Line, rl.Prefix, rl.Prefix.Bits(), ipam.MinPrefixLen, ipam.MaxPrefixLen)
	}
}

func (s *state) defaultBridge() {
	d := s.in.Daemon
	if d == nil || d.IPv6 == nil || !*d.IPv6 {
		return
	}
	sub := s.carve("nat")
	s.r.Networks = append(s.r.Networks, Network{Name: "v6default", Mode: "nat", Subnet: sub, From: s.in.DaemonPath + ": ipv6 on the default bridge",
		Create: s.createLine("v6default", "nat", sub, false)})
	what := "the default bridge has IPv6"
	if d.fixed.IsValid() {
		what = "the default bridge has IPv6 from fixed-cidr-v6 " + d.fixed.String()
	}
	s.r.note("%s: %s; v6bridge does not replace docker0. Containers started without --network stay there; to move one, run it with --network v6default (under Networks outside compose files). Leave ipv6 and fixed-cidr-v6 in place until nothing uses docker0's IPv6", s.in.DaemonPath, what)
}

func (s *state) createLine(name, mode string, sub netip.Prefix, internal bool) string {
	d := s.r.Driver
	b := fmt.Sprintf("docker network create -d %s --ipam-driver %s --ipv6 --ipv4=false", d, d)
	switch {
	case !sub.IsValid() && mode == "public":
		b += " --ipam-opt v6bridge.mode=public"
	case sub.IsValid():
		b += " --subnet " + sub.String()
	}
	if internal {
		b += " --internal"
	} else {
		b += " -o v6bridge.mode=" + mode
	}
	return b + " " + name
}

func (s *state) settings() {
	var set []plan.Setting
	if n := s.in.Ndppd; n != nil {
		var ups []string
		seen := map[string]bool{}
		for _, px := range n.Proxies {
			if !seen[px.Iface] && len(px.Rules) > 0 {
				seen[px.Iface] = true
				ups = append(ups, px.Iface)
			}
		}
		if len(ups) > 0 {
			set = append(set, plan.Setting{Key: "UPLINK", Value: strings.Join(ups, ",")})
		}
		for _, px := range n.Proxies {
			for _, rl := range px.Rules {
				if rl.Method == MethodStatic && !netspec.IsULA(rl.Prefix.Addr()) {
					set = append(set, plan.Setting{Key: "NDP_RANGE", Value: "true"})
					goto done
				}
			}
		}
	done:
	}
	if s.public.IsValid() {
		set = append(set, plan.Setting{Key: "PUBLIC_PREFIX", Value: s.public.String()})
	}
	if s.ula.IsValid() {
		set = append(set, plan.Setting{Key: "ULA_PREFIX", Value: s.ula.String()})
		if s.ulaLen != plan.DefaultSubnetLen {
			set = append(set, plan.Setting{Key: "ULA_SUBNET_LEN", Value: fmt.Sprint(s.ulaLen)})
		}
	}
	s.r.Settings = set
}

func (s *state) steps() {
	d := s.r.Driver
	add := func(format string, args ...any) { s.r.Steps = append(s.r.Steps, fmt.Sprintf(format, args...)) }
	running := map[string][]string{}
	for _, p := range s.in.Running {
		running[p.Name] = append(running[p.Name], fmt.Sprint(p.PID))
	}
	if len(s.r.Settings) > 0 {
		var kv []string
		for _, st := range s.r.Settings {
			kv = append(kv, st.Key+"="+st.Value)
		}
		add("Install v6bridge with these settings: make install; docker plugin disable %s; docker plugin set %s %s; docker plugin enable %s (host service: the Environment= lines above). ndppd and docker-ipv6nat keep running for now", d, d, strings.Join(kv, " "), d)
	} else {
		add("Install v6bridge: make install (or the host service). ndppd and docker-ipv6nat keep running for now")
	}
	add("v6bridge status: it answers (status finds the plugin's socket); v6bridge doctor: every check but ndppd/docker-ipv6nat is ok")
	for _, c := range s.r.Compose {
		add("docker compose -p %s -f %s down, then docker compose -p %s -f %s up -d: the project's containers restart on v6bridge networks (the only interruption, as long as that takes)", c.Project, c.Path, c.Project, c.OutPath)
	}
	for _, n := range s.r.Networks {
		if n.Create != "" {
			add("%s", n.Create)
		}
	}
	if len(s.ruleNets)+len(s.singles) > 0 || s.public.IsValid() {
		add("Wait until v6bridge answers for the public addresses: v6bridge status lists them under \"NDP answers for\", and ping6 from outside reaches them. While ndppd still runs both answer with the uplink's MAC, so nothing is lost")
	}
	ndppd := "ndppd"
	if pids := running["ndppd"]; len(pids) > 0 {
		ndppd = "ndppd (running, pid " + strings.Join(pids, ", ") + ")"
	}
	if s.in.Ndppd != nil || len(running["ndppd"]) > 0 {
		add("Only now stop %s: systemctl disable --now ndppd. Stopped earlier, the provider's router would lose the public addresses until v6bridge answered", ndppd)
	}
	if pids := running["docker-ipv6nat"]; len(pids) > 0 {
		add("Stop docker-ipv6nat (running, pid %s) if it outlived the compose down: docker rm -f <its container>; it rewrites NAT rules of every network", strings.Join(pids, ", "))
	}
	add("v6bridge doctor: all ok (ndppd and docker-ipv6nat not running)")
}

func joinPrefixes(ps []netip.Prefix) string {
	ss := make([]string, len(ps))
	for i, p := range ps {
		ss[i] = p.String()
	}
	sort.Strings(ss)
	return strings.Join(ss, ", ")
}
