package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
	cli    string // docker CLI
	prefix string // VPS prefix base; a variant appends its letter
	keep   bool   // V6B_E2E_KEEP=1: leave the VPSes running
}

// shell runs script in bash with lib.sh and checks.sh sourced and vars
// exported, and returns its combined output.
func (e *env) shell(vars map[string]string, script string, args ...string) (string, error) {
	full := `set -euo pipefail
source "$repo/test/e2e/lib.sh"
source "$repo/test/e2e/checks.sh"
` + script
	cmd := exec.Command("bash", append([]string{"-c", full, "e2e"}, args...)...)
	cmd.Env = append(os.Environ(), "repo="+e.repo, "V6B_DOCKER_CLI="+e.cli)
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// engine is one simulated VPS with an engine of one variant and the
// managed plugin, shared by that variant's cells and started by the first
// cell that runs.
type engine struct {
	env    *env
	v      variant
	prefix string
	state  string // the plugin's state directory on the host

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
	return &engine{env: e, v: v, prefix: p, state: filepath.Join("/var/lib/v6b-e2e", p, "v6bridge-state"),
		inet: netns.None(), vps: netns.None()}
}

func (g *engine) vars() map[string]string {
	return map[string]string{"P": g.prefix, "KIND": g.v.kind, "BIN": g.env.bin, "PLUGIN": pluginID,
		"STATE": g.state, "V6B_ECHOSERVER": g.env.echo}
}

// need starts the engine once; every cell calls it, and fails when the
// engine could not start.
func (g *engine) need(t *testing.T) {
	t.Helper()
	g.once.Do(func() {
		start := time.Now()
		g.started = true
		out, err := g.env.shell(g.vars(), `
vps_down "$P"
vps_up "$P"
engine_up "$P" "$KIND" "$@"
image_import "$P"
install_managed_plugin >/dev/null
plugin_listed_enabled
# a route to the ULA range on the provider's router: the firewall, not the
# lack of a route, must keep the internet out of nat networks
ip -n "$P-router" -6 route replace `+ulaRange+` via `+hostAddr+` dev vps0
`, g.v.flags...)
		if err != nil {
			g.startErr = fmt.Errorf("start VPS %s with a %s engine: %w\n%s", g.prefix, g.v.name, err, out)
			return
		}
		if g.api, err = g.docker("version", "--format", "{{.Server.APIVersion}}"); err != nil {
			g.startErr = err
			return
		}
		g.version, _ = g.docker("version", "--format", "{{.Server.Version}}")
		g.modern = versionAtLeast(g.api, "1.48")
		for _, h := range []struct {
			name string
			h    *netns.NsHandle
		}{{g.prefix + "-inet", &g.inet}, {g.prefix + "-vps", &g.vps}} {
			if *h.h, err = netns.GetFromName(h.name); err != nil {
				g.startErr = fmt.Errorf("open netns %s: %w", h.name, err)
				return
			}
		}
		t.Logf("engine %s %s (API %s) up with %s in VPS %s in %s", g.v.name, g.version, g.api, pluginID, g.prefix,
			time.Since(start).Round(100*time.Millisecond))
	})
	if g.startErr != nil {
		t.Fatal(g.startErr)
	}
}

// stop removes the VPS unless V6B_E2E_KEEP=1.
func (g *engine) stop(t *testing.T) {
	if !g.started {
		return
	}
	g.inet.Close()
	g.vps.Close()
	if g.env.keep {
		t.Logf("left VPS %s running (V6B_E2E_KEEP=1): DOCKER_HOST=unix:///run/v6b-e2e/%s/docker.sock; remove with: bash -c 'source test/e2e/lib.sh; vps_down %s'",
			g.prefix, g.prefix, g.prefix)
		return
	}
	if out, err := g.env.shell(g.vars(), `vps_down "$P"`); err != nil {
		t.Errorf("vps_down %s: %v\n%s", g.prefix, err, out)
	}
}

// docker runs the docker CLI against this engine and returns its trimmed
// output; the error carries the output.
func (g *engine) docker(args ...string) (string, error) {
	return g.dockerEnv(nil, args...)
}

func (g *engine) dockerEnv(extra []string, args ...string) (string, error) {
	cmd := exec.Command(g.env.cli, args...)
	cmd.Env = append(append(os.Environ(), "DOCKER_HOST=unix:///run/v6b-e2e/"+g.prefix+"/docker.sock"), extra...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	s := strings.TrimSpace(out.String())
	if err != nil {
		return s, fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, s)
	}
	return s, nil
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
	b, err := os.ReadFile(filepath.Join("/var/lib/v6b-e2e", g.prefix, "logs", "dockerd.log"))
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
