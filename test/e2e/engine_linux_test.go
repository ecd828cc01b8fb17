package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// The simulated provider's plan (lib.sh).
const (
	hostAddr = "2001:db8:1234:a1::1" // the VPS's address on its uplink
	inetAddr = "2001:db8:ffff::10"   // "the internet" client
	pluginID = "v6bridge:latest"     // the managed plugin's name
	ulaRange = "fd12:3456:789a::/48" // routed to the VPS by the router, so only the firewall keeps the internet out
	extraAdr = "2001:db8:1234:a1::2" // a second host address some cells add
)

// variant is an engine generation and firewall backend.
type variant struct {
	name   string // in test names: legacy, current, current-nft
	kind   string // lib.sh engine_up kind
	letter string // appended to the VPS prefix
	flags  []string
}

var variants = []variant{
	{name: "legacy", kind: "legacy", letter: "l"},
	{name: "current", kind: "current", letter: "c"},
	// The engine's nftables firewall without its userland proxy: v6bridge
	// must need neither.
	{name: "current-nft", kind: "current", letter: "n", flags: []string{"--firewall-backend=nftables", "--userland-proxy=false"}},
}

// env is what every engine of a run shares: the repository, the binaries
// built for this run and the docker CLI.
type env struct {
	repo   string // repository root
	bin    string // v6bridge binary
	echo   string // echoserver binary (bind-mounted into containers)
	prom   string // promcheck binary
	cli    string // docker CLI
	prefix string // VPS prefix base; a variant appends its letter
	keep   bool   // V6B_E2E_KEEP=1: leave the VPSes running
}

// engine is one simulated VPS with an engine of one variant and the
// managed plugin, shared by that variant's areas and cells and started by
// the first that runs.
type engine struct {
	env    *env
	v      variant
	prefix string
	state  string // the plugin's state directory on the host
	rig    *vps
	hs     *hostService // the host service, while an area runs one instead of the managed plugin

	once     sync.Once
	startErr error
	modern   bool // API >= 1.48: --ipv4=false, compose enable_ipv4
	api      string
	version  string
	inet     netns.NsHandle
	vps      netns.NsHandle
	started  bool
}

func newEngine(e *env, v variant) *engine {
	p := e.prefix + v.letter
	return &engine{env: e, v: v, prefix: p, state: filepath.Join(libRoot, p, "v6bridge-state"),
		rig: newVPS(p, e.cli), inet: netns.None(), vps: netns.None()}
}

// need starts the engine once; every cell calls it, and fails when the
// engine could not start.
func (g *engine) need(t *testing.T) {
	t.Helper()
	g.once.Do(func() {
		start := time.Now()
		g.started = true
		if g.startErr = g.boot(); g.startErr != nil {
			g.startErr = fmt.Errorf("start VPS %s with a %s engine: %w", g.prefix, g.v.name, g.startErr)
			return
		}
		t.Logf("engine %s %s (API %s) up with %s in VPS %s in %s", g.v.name, g.version, g.api, pluginID, g.prefix,
			time.Since(start).Round(100*time.Millisecond))
	})
	if g.startErr != nil {
		t.Fatal(g.startErr)
	}
}

func (g *engine) boot() error {
	r := g.rig
	if err := r.up(); err != nil {
		return err
	}
	if err := r.engineUp(g.v.kind, g.v.flags...); err != nil {
		return err
	}
	if err := r.imageImport(); err != nil {
		return err
	}
	if err := g.installPlugin(); err != nil {
		return err
	}
	// a route to the ULA range on the provider's router: the firewall, not
	// the lack of a route, must keep the internet out of nat networks
	if _, err := ip("-n", g.prefix+"-router", "-6", "route", "replace", ulaRange, "via", hostAddr, "dev", "vps0"); err != nil {
		return err
	}
	var err error
	if g.api, err = g.docker("version", "--format", "{{.Server.APIVersion}}"); err != nil {
		return err
	}
	g.version, _ = g.docker("version", "--format", "{{.Server.Version}}")
	g.modern = versionAtLeast(g.api, "1.48")
	return g.openNS()
}

func (g *engine) openNS() error {
	var err error
	for _, h := range []struct {
		name string
		h    *netns.NsHandle
	}{{g.prefix + "-inet", &g.inet}, {g.prefix + "-vps", &g.vps}} {
		h.h.Close()
		if *h.h, err = netns.GetFromName(h.name); err != nil {
			return fmt.Errorf("open netns %s: %w", h.name, err)
		}
	}
	return nil
}

// installPlugin builds the managed plugin (plugin/create.sh, as make
// plugin does) with the state in g.state, debug logs and metrics on
// [::1]:9430, and enables it.
func (g *engine) installPlugin() error {
	if err := os.MkdirAll(g.state, 0o755); err != nil {
		return err
	}
	if out, err := g.env.cmdPluginCreate(g).CombinedOutput(); err != nil {
		return fmt.Errorf("plugin/create.sh: %w: %s", err, out)
	}
	if _, err := g.docker("plugin", "set", pluginID, "LOG_LEVEL=debug", "METRICS=[::1]:9430"); err != nil {
		return err
	}
	if _, err := g.docker("plugin", "enable", pluginID); err != nil {
		return err
	}
	return g.pluginEnabled()
}

// cmdPluginCreate is plugin/create.sh for g's engine: the plugin's
// rootfs and config, created (not enabled) with g.state as state.source.
func (e *env) cmdPluginCreate(g *engine) *exec.Cmd {
	cmd := exec.Command("bash", filepath.Join(e.repo, "plugin/create.sh"), pluginID, e.bin,
		filepath.Join(g.rig.libDir(), "plugin-build"), g.state)
	cmd.Env = append(os.Environ(), "DOCKER_HOST=unix://"+g.rig.sock(), "DOCKER="+e.cli)
	return cmd
}

// pluginEnabled checks that docker plugin ls shows the plugin enabled.
func (g *engine) pluginEnabled() error {
	out, err := g.docker("plugin", "ls", "--format", "{{.Name}} {{.Enabled}}")
	if err == nil && !slices.Contains(strings.Split(out, "\n"), pluginID+" true") {
		err = fmt.Errorf("docker plugin ls: %q, want %s enabled", out, pluginID)
	}
	return err
}

// stop removes the VPS unless V6B_E2E_KEEP=1.
func (g *engine) stop(t *testing.T) {
	if !g.started {
		return
	}
	g.inet.Close()
	g.vps.Close()
	if g.env.keep {
		t.Logf("left VPS %s running (V6B_E2E_KEEP=1): DOCKER_HOST=unix://%s docker ...; remove with: bash -c 'source test/e2e/lib.sh; vps_down %s'",
			g.prefix, g.rig.sock(), g.prefix)
		return
	}
	g.rig.down()
}

// docker runs the docker CLI against this engine and returns its trimmed
// output; the error carries the output.
func (g *engine) docker(args ...string) (string, error) {
	return g.rig.dockerEnv(nil, args...)
}

func (g *engine) dockerEnv(extra []string, args ...string) (string, error) {
	return g.rig.dockerEnv(extra, args...)
}

// ip runs ip(8) with args and returns its output.
func ip(args ...string) (string, error) {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// nftTable is the plugin's ruleset as nft prints it in the VPS ("" when
// the table does not exist).
func (g *engine) nftTable() string {
	out, err := exec.Command("ip", "netns", "exec", g.prefix+"-vps", "nft", "list", "table", "ip6", "v6bridge").CombinedOutput()
	if err != nil {
		return ""
	}
	return string(out)
}

// owned lists what v6bridge owns in the VPS and on disk: its links (v6b-*
// bridges, v6h/v6c veths) and its network, endpoint, pool and address
// state files. After a cell's cleanup it must be empty.
func (g *engine) owned() ([]string, error) {
	var out []string
	links, err := ip("-n", g.prefix+"-vps", "-o", "link", "show")
	if err != nil {
		return nil, err
	}
	for _, l := range strings.Split(links, "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		if strings.HasPrefix(name, "v6b") || strings.HasPrefix(name, "v6h") || strings.HasPrefix(name, "v6c") {
			out = append(out, "link "+name)
		}
	}
	for _, dir := range []string{"driver", "ipam/pools", "ipam/addrs"} {
		err := filepath.Walk(filepath.Join(g.state, dir), func(p string, fi os.FileInfo, err error) error {
			if err != nil {
				if os.IsNotExist(err) {
					return nil
				}
				return err
			}
			if !fi.IsDir() && strings.HasSuffix(p, ".json") {
				rel, _ := filepath.Rel(g.state, p)
				out = append(out, "state "+rel)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read plugin state: %w", err)
		}
	}
	return out, nil
}

// pluginLog is the tail of the plugin's log lines in dockerd's log.
func (g *engine) pluginLog(n int) string {
	b, err := os.ReadFile(filepath.Join(g.rig.logDir(), "dockerd.log"))
	if err != nil {
		return err.Error()
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "plugin=") {
			if len(l) > 400 {
				l = l[:400]
			}
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// pluginPID finds the plugin's process ("v6bridge serve") among the
// processes of the VPS's network namespace.
func (g *engine) pluginPID() (int, error) {
	out, err := ip("netns", "pids", g.prefix+"-vps")
	if err != nil {
		return 0, err
	}
	for _, f := range strings.Fields(out) {
		b, err := os.ReadFile("/proc/" + f + "/cmdline")
		if err != nil {
			continue
		}
		if strings.Contains(strings.ReplaceAll(string(b), "\x00", " "), "v6bridge serve") {
			var pid int
			fmt.Sscan(f, &pid)
			return pid, nil
		}
	}
	return 0, fmt.Errorf("no v6bridge serve process in %s-vps", g.prefix)
}

// versionAtLeast compares dotted API versions ("1.41" < "1.48").
func versionAtLeast(have, want string) bool {
	h, w := strings.Split(have, "."), strings.Split(want, ".")
	for i := 0; i < len(w); i++ {
		var a, b int
		if i < len(h) {
			fmt.Sscan(h[i], &a)
		}
		fmt.Sscan(w[i], &b)
		if a != b {
			return a > b
		}
	}
	return true
}
