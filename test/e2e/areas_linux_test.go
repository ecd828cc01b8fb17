package e2e

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// An area is a group of checks on the engine variants it declares, run as
// TestE2E/<variant>/<area>. It starts from a state it creates itself (its
// cells remove what an earlier failure left and check that v6bridge owns
// nothing), so one failure never cascades into the next area.
type area struct {
	name     string
	variants []string // engine variants it needs
	slow     bool     // only in make test-slow (TestE2ESlow)
	run      func(t *testing.T, g *engine)
}

var (
	allVariants   = []string{"legacy", "current", "current-nft"}
	lifeVariants  = []string{"legacy", "current"}
	onceOnCurrent = []string{"current"}
)

// areas in the order they run on each variant. The demo is the current
// engine's first; the host service is last (it removes the managed
// plugin, and puts it back when done).
var areas = []area{
	{name: "demo", variants: onceOnCurrent, run: demoArea},
	{name: "publish", variants: allVariants, run: publishArea},
	{name: "options", variants: onceOnCurrent, run: optionsArea},
	{name: "security", variants: onceOnCurrent, run: securityArea},
	{name: "fastpath", variants: onceOnCurrent, run: fastpathArea},
	{name: "tools", variants: onceOnCurrent, run: toolsArea},
	{name: "lifecycle", variants: lifeVariants, run: lifecycleArea},
	{name: "upgrade", variants: onceOnCurrent, run: upgradeArea},
	{name: "hostservice", variants: onceOnCurrent, run: hostServiceArea},

	{name: "upgrade", variants: []string{"legacy"}, slow: true, run: upgradeArea},
	{name: "soak", variants: onceOnCurrent, slow: true, run: soakArea},
}

// TestE2E runs the areas of make test on every engine variant
// (V6B_E2E_VARIANTS limits them), one engine per variant shared by its
// areas; the variants run in parallel, each in its own VPS.
func TestE2E(t *testing.T) { runAreas(t, false) }

// TestE2ESlow runs what make test-slow adds: the upgrade through the
// registry on the legacy engine with the full pause, the long NDP soak and
// the swarm (TestE2ESwarm).
func TestE2ESlow(t *testing.T) { runAreas(t, true) }

func runAreas(t *testing.T, slow bool) {
	if slow && os.Getenv("V6B_E2E_SLOW") != "1" {
		t.Skip("slow end-to-end tests: set V6B_E2E_SLOW=1 (make test-slow)")
	}
	e := setup(t)
	before := rootNetns()
	var mu sync.Mutex
	counts := map[string]int{}
	times := map[string]time.Duration{}
	begin := time.Now()
	for _, v := range selectedVariants(t) {
		t.Run(v.name, func(t *testing.T) {
			if os.Getenv("V6B_E2E_SERIAL") != "1" {
				t.Parallel()
			}
			g := newEngine(e, v)
			t.Cleanup(func() { g.stop(t) })
			for _, a := range areas {
				if a.slow != slow || !containsStr(a.variants, v.name) {
					continue
				}
				t.Run(a.name, func(t *testing.T) {
					start := time.Now()
					t.Cleanup(func() {
						mu.Lock()
						defer mu.Unlock()
						times[v.name+"/"+a.name] += time.Since(start)
						if t.Failed() {
							counts["failed"]++
						} else if !t.Skipped() {
							counts["passed"]++
						}
					})
					a.run(t, g)
				})
			}
		})
	}
	t.Cleanup(func() {
		if after := rootNetns(); after != before {
			t.Errorf("the root network namespace changed (links, routes, nftables, forwarding):\nbefore:\n%s\nafter:\n%s", before, after)
		}
		var names []string
		for n := range times {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Printf("e2e area %-24s %s\n", n, times[n].Round(time.Second))
		}
		fmt.Printf("e2e: %d areas passed, %d failed, total %s\n", counts["passed"], counts["failed"], time.Since(begin).Round(time.Second))
	})
}

// rootNetns is what the rig must never change in the root network
// namespace: links, routes, the nftables ruleset, forwarding.
func rootNetns() string {
	var b strings.Builder
	for _, c := range [][]string{{"ip", "-o", "link"}, {"ip", "-4", "route"}, {"ip", "-6", "route"},
		{"nft", "list", "ruleset"}, {"sysctl", "-n", "net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"}} {
		out, _ := run(c[0], c[1:]...)
		if c[0] == "ip" && c[1] == "-o" {
			// link counters and states of other tenants' veths move; keep names
			var names []string
			for _, l := range strings.Split(out, "\n") {
				if f := strings.Fields(l); len(f) > 1 && !strings.HasPrefix(f[1], "veth") {
					names = append(names, f[1])
				}
			}
			out = strings.Join(names, " ")
		}
		b.WriteString(out + "\n")
	}
	return b.String()
}

func containsStr(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// publishArea is the publishing matrix: every way users get a container
// onto v6bridge networks, each cell from a fresh state.
func publishArea(t *testing.T, g *engine) {
	for _, m := range matrix {
		t.Run(m.name, func(t *testing.T) {
			if skip := skipCell[m.name]; skip != nil {
				if why := skip(g); why != "" {
					t.Skip(why)
				}
			}
			m.run(g.cell(t))
		})
	}
}

func selectedVariants(t *testing.T) []variant {
	want := strings.Fields(strings.ReplaceAll(getenv("V6B_E2E_VARIANTS", ""), ",", " "))
	if len(want) == 0 {
		return variants
	}
	var out []variant
	for _, w := range want {
		found := false
		for _, v := range variants {
			if v.name == w {
				out, found = append(out, v), true
			}
		}
		if !found {
			t.Fatalf("V6B_E2E_VARIANTS: unknown variant %q: accepted are legacy, current, current-nft", w)
		}
	}
	return out
}
