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
	// group: areas of one variant in different groups run at the same
	// time, each group on an engine (and VPS) of its own; the areas of a
	// group run one after the other on a shared engine.
	group string
	run   func(t *testing.T, g *engine)
}

var (
	allVariants   = []string{"legacy", "current", "current-nft"}
	lifeVariants  = []string{"legacy", "current"}
	onceOnCurrent = []string{"current"}
)

// areas in the order they run on each variant and group. The demo is the
// current engine's first; the host service is its group's last (it
// removes the managed plugin, and puts it back when done).
var areas = []area{
	{name: "demo", variants: onceOnCurrent, run: demoArea},
	{name: "publish", variants: allVariants, run: cells(matrix)},
	{name: "hostile", variants: onceOnCurrent, group: "b", run: cells(hostileCells)},
	{name: "options", variants: onceOnCurrent, group: "b", run: optionsArea},
	{name: "security", variants: onceOnCurrent, group: "b", run: securityArea},
	{name: "fastpath", variants: onceOnCurrent, group: "b", run: fastpathArea},
	{name: "tools", variants: onceOnCurrent, group: "b", run: toolsArea},
	{name: "hostservice", variants: onceOnCurrent, group: "b", run: hostServiceArea},
	{name: "lifecycle", variants: lifeVariants, group: "c", run: lifecycleArea},
	{name: "upgrade", variants: onceOnCurrent, group: "c", run: upgradeArea},
	{name: "hostile", variants: []string{"current-nft"}, run: cells(hostileCells)},
	{name: "hostchange", variants: lifeVariants, group: "c", run: cells(hostChanges)},
	{name: "uplink", variants: lifeVariants, group: "c", run: cells(uplinkCells)},

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
	r := &tally{times: map[string]time.Duration{}}
	begin := time.Now()
	t.Cleanup(func() {
		if after := rootNetns(); after != before {
			t.Errorf("the root network namespace changed (links, routes, nftables, forwarding):\nbefore:\n%s\nafter:\n%s", before, after)
		}
		r.print(time.Since(begin))
	})
	// Variants and groups run in goroutines of their own, not as parallel
	// subtests: go test runs at most GOMAXPROCS (here 2) of those at once.
	serial := os.Getenv("V6B_E2E_SERIAL") == "1"
	var wg sync.WaitGroup
	for _, v := range selectedVariants(t) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Run(v.name, func(t *testing.T) { runVariant(t, e, v, slow, serial, r) })
		}()
		if serial {
			wg.Wait()
		}
	}
	wg.Wait()
}

// wants reports whether a runs on variant v. make demo (V6B_E2E_DEMO=1)
// plays the demo on whichever engine V6B_DEMO_ENGINE names.
func (a area) wants(v string) bool {
	return containsStr(a.variants, v) || (a.name == "demo" && os.Getenv("V6B_E2E_DEMO") == "1")
}

// runVariant runs the areas of variant v, each group on an engine of its
// own, the groups at the same time.
func runVariant(t *testing.T, e *env, v variant, slow, serial bool, r *tally) {
	groups := map[string][]area{}
	var order []string
	for _, a := range areas {
		if a.slow != slow || !a.wants(v.name) {
			continue
		}
		if _, ok := groups[a.group]; !ok {
			order = append(order, a.group)
		}
		groups[a.group] = append(groups[a.group], a)
	}
	var wg sync.WaitGroup
	for _, grp := range order {
		gv := v
		gv.letter += grp
		g := newEngine(e, gv)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer g.stop(t)
			for _, a := range groups[grp] {
				t.Run(a.name, func(t *testing.T) {
					start := time.Now()
					t.Cleanup(func() { r.add(v.name+"/"+a.name, time.Since(start), t.Failed(), t.Skipped()) })
					a.run(t, g)
				})
			}
		}()
		if serial {
			wg.Wait()
		}
	}
	wg.Wait()
}

// tally counts the areas and their wall times.
type tally struct {
	mu             sync.Mutex
	passed, failed int
	times          map[string]time.Duration
}

func (r *tally) add(name string, d time.Duration, failed, skipped bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.times[name] += d
	switch {
	case failed:
		r.failed++
	case !skipped:
		r.passed++
	}
}

func (r *tally) print(total time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var names []string
	for n := range r.times {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Printf("e2e area %-24s %s\n", n, r.times[n].Round(time.Second))
	}
	fmt.Printf("e2e: %d areas passed, %d failed, total %s\n", r.passed, r.failed, total.Round(time.Second))
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

// cells returns an area that runs each cell as a subtest from a fresh
// state (skipCell may skip one on an engine that cannot play it).
func cells(cs []matrixCell) func(t *testing.T, g *engine) {
	return func(t *testing.T, g *engine) {
		for _, m := range cs {
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
