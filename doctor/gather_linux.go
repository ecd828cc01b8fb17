package doctor

import (
	"context"

	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"runtime"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/v6bridge/v6bridge/internal/nlretry"
	"github.com/v6bridge/v6bridge/link"
	"github.com/v6bridge/v6bridge/nat"
	"github.com/v6bridge/v6bridge/netspec"
)

// Config says where Gather looks.
type Config struct {
	// ProcSys is the sysctl tree, "/proc/sys" if empty.
	ProcSys string
	// Proc is the proc root scanned for processes, "/proc" if empty.
	Proc string
	// Uplink is the outside interface; "" means the interface of the
	// IPv6 default route with the lowest metric.
	Uplink string
	// DockerHost is the engine to ask (DOCKER_HOST form); "" means
	// DefaultDockerHost.
	DockerHost string
	// Socket is the plugin's socket; "" means the first that answers
	// under PluginsDir (the host service's, then managed plugins').
	Socket string
	// PluginsDir is where sockets are looked for; "" means PluginsDir.
	PluginsDir string
	// ResolvConf names the resolver asked for ipv4only.arpa;
	// "" means DefaultResolvConf.
	ResolvConf string
	// NAT64Probe is an IPv4 host:port to connect to through the NAT64
	// prefix; "" probes only the route.
	NAT64Probe string
	// FastPathOff skips the flowtable check (FASTPATH=false).
	FastPathOff bool
}

// conflicting are the process names that fight v6bridge.
var conflicting = []string{"ndppd", "docker-ipv6nat"}

// Gather reads the facts of the network namespace of the calling thread
// (run it inside nettest.Do to look at another one). It only reads.
func Gather(ctx context.Context, cfg Config) Facts {
	if cfg.ProcSys == "" {
		cfg.ProcSys = "/proc/sys"
	}
	if cfg.Proc == "" {
		cfg.Proc = "/proc"
	}
	var f Facts
	sysctl := func(key ...string) string {
		b, err := os.ReadFile(filepath.Join(append([]string{cfg.ProcSys, "net", "ipv6", "conf"}, key...)...))
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(b))
	}
	f.DisableIPv6 = sysctl("all", "disable_ipv6")
	f.Forwarding = sysctl("all", "forwarding")
	gatherUplink(&f, cfg.Uplink)
	if f.Uplink != "" {
		f.AcceptRA = sysctl(f.Uplink, "accept_ra")
	}
	gatherNFTables(&f)
	f.FastPathOff = cfg.FastPathOff
	if !f.FastPathOff {
		f.FastPathErr = probeFastPath()
	}
	procs, firewalld := scanProcs(cfg.Proc)
	f.Conflicting = procs
	f.Firewalld = f.Firewalld || firewalld
	f.Engine = AskEngine(ctx, cfg.DockerHost)
	f.Plugin = AskPlugin(ctx, cfg.Socket, cfg.PluginsDir)
	f.StateDir = gatherStateDir(ctx, cfg.DockerHost, f.Plugin)
	if cfg.ResolvConf == "" {
		cfg.ResolvConf = DefaultResolvConf
	}
	f.DNS64 = AskDNS64(ctx, cfg.ResolvConf, cfg.NAT64Probe)
	return f
}

// gatherUplink finds the default route, its uplink and the uplink's
// global addresses.
func gatherUplink(f *Facts, uplink string) {
	h, err := netlink.NewHandle()
	if err != nil {
		f.UplinkErr = err.Error()
		return
	}
	defer h.Close()
	routes, err := nlretry.Dump(func() ([]netlink.Route, error) {
		return h.RouteListFiltered(netlink.FAMILY_V6, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		f.UplinkErr = err.Error()
		return
	}
	var best *netlink.Route
	for i, r := range routes {
		if r.Dst != nil && (!r.Dst.IP.IsUnspecified() || r.Dst.Mask != nil && net0(r.Dst.Mask) != 0) {
			continue
		}
		if r.Type != unix.RTN_UNICAST || r.LinkIndex == 0 {
			continue
		}
		if uplink != "" {
			if l, err := h.LinkByIndex(r.LinkIndex); err != nil || l.Attrs().Name != uplink {
				continue
			}
		}
		if best == nil || r.Priority < best.Priority {
			best = &routes[i]
		}
	}
	if best == nil {
		f.UplinkErr = "no IPv6 default route"
		if uplink != "" {
			f.UplinkErr += " through " + uplink
		}
		return
	}
	l, err := h.LinkByIndex(best.LinkIndex)
	if err != nil {
		f.UplinkErr = err.Error()
		return
	}
	f.Uplink = l.Attrs().Name
	f.RADefaultRoute = best.Protocol == unix.RTPROT_RA
	if a, ok := netip.AddrFromSlice(best.Gw); ok {
		f.Gateway = a.Unmap()
	}
	addrs, err := nlretry.Dump(func() ([]netlink.Addr, error) { return h.AddrList(l, netlink.FAMILY_V6) })
	if err != nil {
		return
	}
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok || a.Scope != unix.RT_SCOPE_UNIVERSE || !netspec.IsPublic(ip) {
			continue
		}
		f.UplinkGlobal = append(f.UplinkGlobal, ip)
		ones, _ := a.Mask.Size()
		f.UplinkPrefixes = append(f.UplinkPrefixes, netip.PrefixFrom(ip, ones))
	}
}

// probeFastPath asks the kernel for a flowtable (nat.ProbeFastPath) in a
// throwaway network namespace, so nothing changes where v6bridge runs; if
// no namespace can be made, in this one (the probe's table is created and
// deleted in one batch). It returns why there is none, "" when there is.
func probeFastPath() string {
	var err error
	ns, nserr := throwawayNS()
	if nserr == nil {
		err = nat.ProbeFastPath(int(ns))
		ns.Close()
	} else {
		err = nat.ProbeFastPath(0)
	}
	if err != nil {
		return err.Error()
	}
	return ""
}

// throwawayNS creates an anonymous network namespace without entering it.
func throwawayNS() (netns.NsHandle, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return netns.None(), err
	}
	defer orig.Close()
	ns, err := netns.New()
	if serr := netns.Set(orig); serr != nil {
		// The thread is in another namespace: keep it locked so the
		// runtime retires it.
		runtime.LockOSThread()
		if err == nil {
			ns.Close()
		}
		return netns.None(), serr
	}
	return ns, err
}

// net0 is the prefix length of a mask.
func net0(m []byte) int {
	n := 0
	for _, b := range m {
		for ; b != 0; b <<= 1 {
			n++
		}
	}
	return n
}

// gatherNFTables lists the tables and reads the iptables-nft ip6 filter
// FORWARD policy and the chains of ufw.
func gatherNFTables(f *Facts) {
	c, err := nftables.New()
	if err != nil {
		f.NFTablesErr = err.Error()
		return
	}
	defer c.CloseLasting()
	tables, err := c.ListTables()
	if err != nil {
		f.NFTablesErr = err.Error()
		return
	}
	for _, t := range tables {
		f.Tables = append(f.Tables, family(t.Family)+" "+t.Name)
		if t.Name == "firewalld" {
			f.Firewalld = true
		}
	}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyIPv6)
	if err != nil {
		f.NFTablesErr = err.Error()
		return
	}
	for _, ch := range chains {
		if ch.Table == nil || ch.Table.Name != "filter" {
			continue
		}
		switch {
		case ch.Name == "FORWARD" && ch.Policy != nil:
			f.FilterForwardPolicy = "accept"
			if *ch.Policy == nftables.ChainPolicyDrop {
				f.FilterForwardPolicy = "drop"
			}
		case ch.Name == "DOCKER-USER":
			f.DockerUser = true
		case strings.HasPrefix(ch.Name, "ufw6-"):
			f.UFW = true
		}
	}
}

func family(f nftables.TableFamily) string {
	switch f {
	case nftables.TableFamilyIPv4:
		return "ip"
	case nftables.TableFamilyIPv6:
		return "ip6"
	case nftables.TableFamilyINet:
		return "inet"
	case nftables.TableFamilyBridge:
		return "bridge"
	case nftables.TableFamilyARP:
		return "arp"
	case nftables.TableFamilyNetdev:
		return "netdev"
	}
	return strconv.Itoa(int(f))
}

// scanProcs finds the conflicting processes, and firewalld, among those in
// the calling thread's network namespace: an ndppd of another namespace
// (another VPS, a container) answers on other links.
func scanProcs(proc string) (found []Process, firewalld bool) {
	self, err := os.Readlink(filepath.Join(proc, "thread-self", "ns", "net"))
	if err != nil {
		self, _ = os.Readlink(filepath.Join(proc, "self", "ns", "net"))
	}
	ents, err := os.ReadDir(proc)
	if err != nil {
		return nil, false
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(filepath.Join(proc, e.Name(), "comm"))
		if err != nil {
			continue
		}
		name := strings.TrimSpace(string(comm))
		match := ""
		if name != "firewalld" {
			base := cmdBase(filepath.Join(proc, e.Name(), "cmdline"))
			for _, c := range conflicting {
				if name == c || base == c {
					match = c
				}
			}
			if match == "" {
				continue
			}
		}
		if ns, err := os.Readlink(filepath.Join(proc, e.Name(), "ns", "net")); self != "" && (err != nil || ns != self) {
			continue
		}
		if match == "" {
			firewalld = true
			continue
		}
		found = append(found, Process{PID: pid, Name: match})
	}
	return found, firewalld
}

// cmdBase is the base name of argv[0] of a /proc/PID/cmdline file.
func cmdBase(path string) string {
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		return ""
	}
	arg0, _, _ := strings.Cut(string(b), "\x00")
	return filepath.Base(arg0)
}

// ConflictingProcs returns the ndppd and docker-ipv6nat processes in the
// calling thread's network namespace, scanning the proc root ("/proc" if
// empty).
func ConflictingProcs(proc string) []Process {
	if proc == "" {
		proc = "/proc"
	}
	found, _ := scanProcs(proc)
	return found
}

// gatherStateDir lists v6bridge's marked bridges and finds the plugin's
// state directory: from the plugin itself, else from a managed plugin's
// state.source (the engine's setting) and the instance.json there.
func gatherStateDir(ctx context.Context, dockerHost string, p Plugin) StateDir {
	var s StateDir
	if k, err := link.New(link.Config{}); err != nil {
		s.LinksErr = err.Error()
	} else {
		owned, err := k.OwnedLinks()
		k.Close()
		if err != nil {
			s.LinksErr = err.Error()
		}
		for _, l := range owned {
			if l.Bridge && l.Instance != "" {
				s.Bridges = append(s.Bridges, l)
			}
		}
	}
	if p.Instance != "" {
		s.ID, s.Dir, s.From = p.Instance, p.StateDir, "plugin"
		return s
	}
	name, src, err := ManagedStateSource(ctx, dockerHost)
	if err != nil {
		s.Err = "no plugin answered with its state directory, and " + err.Error()
		return s
	}
	id, err := ReadStateID(src)
	if err != nil {
		s.Err = err.Error()
		return s
	}
	s.ID, s.Dir, s.From = id, src, "engine's settings of "+name
	return s
}
