package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// A matrix cell: one way users get a container onto v6bridge networks,
// with the checks that apply. The semantics (issue 9, docs/firewall.md):
// a published container port is open on every public/routed address of the
// container, whichever endpoint got the port map and whatever the join
// order; the host port leads to exactly one of its addresses, preferring
// nat, then public, then routed, ties by network id; -p on a loopback or
// link-local host address never opens the public address.
type matrixCell struct {
	name string
	run  func(c *cell)
}

var matrix = []matrixCell{
	{"compose", composeCell},
	{"run-public", func(c *cell) {
		c.network(pubNet)
		c.web("run", "web", pubNet, pubNet.addr, []string{"-p", "8081:80"})
		c.published("web", []netSpec{pubNet}, 8081)
		c.check("the provider's router resolves the public address to the VPS (NDP proxy)", c.g.routerNeighIsHost(pubNet.addr))
	}},
	{"run-nat", func(c *cell) {
		c.network(natNet)
		c.web("run", "web", natNet, natNet.addr, []string{"-p", "8081:80"})
		c.published("web", []netSpec{natNet}, 8081)
	}},
	{"create-public-connect-internal", func(c *cell) { createConnectCell(c, pubNet, natNet) }},
	{"create-internal-connect-public", func(c *cell) { createConnectCell(c, natNet, pubNet) }},
	{"connect-running-internal", func(c *cell) { connectRunningCell(c, pubNet, natNet) }},
	{"connect-running-public", func(c *cell) { connectRunningCell(c, natNet, pubNet) }},
	{"disconnect-public", func(c *cell) { disconnectCell(c, pubNet, natNet) }},
	{"disconnect-internal", func(c *cell) { disconnectCell(c, natNet, pubNet) }},
	{"plugin-restart", func(c *cell) {
		c.network(natNet)
		c.network(pubNet)
		c.web("create", "web", pubNet, pubNet.addr, []string{"-p", "8081:80"})
		c.connect(natNet, "web")
		c.must("start", "web")
		c.published("web", []netSpec{pubNet, natNet}, 8081)
		pid, err := c.g.pluginPID()
		if err != nil {
			c.t.Fatal(err)
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			c.t.Fatalf("kill -9 the plugin (pid %d): %v", pid, err)
		}
		c.check("the engine restarts the killed plugin", eventually(30*time.Second, func() error {
			n, err := c.g.pluginPID()
			if err == nil && n == pid {
				return fmt.Errorf("plugin pid %d still running", pid)
			}
			return err
		}))
		c.t.Log("# after the plugin restart: the same publishing")
		c.published("web", []netSpec{pubNet, natNet}, 8081)
	}},
	{"two-public", func(c *cell) {
		c.network(pubNet)
		c.network(pub2Net)
		c.web("create", "web", pubNet, pubNet.addr, []string{"-p", "8081:80"})
		c.connect(pub2Net, "web")
		c.must("start", "web")
		c.published("web", []netSpec{pubNet, pub2Net}, 8081)
	}},
	{"loopback-host-address", func(c *cell) {
		c.network(pubNet)
		c.web("run", "web", pubNet, pubNet.addr, []string{"-p", "[::1]:5432:80", "-p", "[fe80::1]:5433:8000"})
		for _, port := range []int{80, 8000} {
			c.check(fmt.Sprintf("the container serves port %d on its public address itself", port),
				c.execFetch("web", "http://"+hp(pubNet.addr, port)+"/local", pubNet.addr))
		}
		c.check("-p [::1]:5432:80: the host reaches the container at [::1]:5432 (forwarded in userspace)",
			fetchWant(c.g.vps, "http://[::1]:5432/local", pubNet.addr, openWait))
		c.check("-p [::1]:5432:80 leaves the public address closed on port 80",
			closedTCP(c.g.inet, hp(pubNet.addr, 80), closedWait))
		c.check("-p [fe80::1]:5433:8000 leaves the public address closed on port 8000",
			closedTCP(c.g.inet, hp(pubNet.addr, 8000), closedWait))
		c.check("-p [::1]:5432:80 publishes nothing on the host's public address",
			closedTCP(c.g.inet, hp(hostAddr, 5432), closedWait))
		c.check("-p [fe80::1]:5433:8000 publishes nothing on the host's public address",
			closedTCP(c.g.inet, hp(hostAddr, 5433), closedWait))
	}},
	{"one-host-address", func(c *cell) {
		if _, err := ip("-n", c.g.prefix+"-vps", "addr", "add", extraAdr+"/64", "dev", "eth0", "nodad"); err != nil {
			c.t.Fatal(err)
		}
		c.extra = true
		c.network(pubNet)
		c.web("run", "web", pubNet, pubNet.addr, []string{"-p", "[" + hostAddr + "]:8082:80"})
		other := "2001:db8:1234:a1:1::ab54"
		c.web("run", "web2", pubNet, other, []string{"-p", "8083:80"})
		c.check(fmt.Sprintf("-p [%s]:8082:80: the internet reaches [%s]:8082", hostAddr, hostAddr),
			fetchWant(c.g.inet, "http://"+hp(hostAddr, 8082)+"/local", pubNet.addr, openWait))
		c.check(fmt.Sprintf("control: -p 8083:80 is reached on the second host address [%s]:8083", extraAdr),
			fetchWant(c.g.inet, "http://"+hp(extraAdr, 8083)+"/local", other, openWait))
		c.check(fmt.Sprintf("-p [%s]:8082:80 publishes nothing on [%s]:8082", hostAddr, extraAdr),
			closedTCP(c.g.inet, hp(extraAdr, 8082), closedWait))
		c.check("the published container port is open on the container's public address",
			fetchWant(c.g.inet, "http://"+hp(pubNet.addr, 80)+"/", inetAddr, openWait))
		c.check("an unpublished listening port is closed on the container's public address",
			closedTCP(c.g.inet, hp(pubNet.addr, 8000), closedWait))
	}},
	{"udp-range", func(c *cell) {
		c.network(pubNet)
		c.web("run", "web", pubNet, pubNet.addr, []string{"-p", "10000-10010:10000-10010/udp"},
			"-udp", "[::]:10000,[::]:10005,[::]:10010,[::]:10011")
		for _, port := range []int{10000, 10005, 10010} {
			c.check(fmt.Sprintf("udp direct: [%s]:%d answers the internet with the client's address", pubNet.addr, port),
				udpWant(c.g.inet, hp(pubNet.addr, port), inetAddr, openWait))
			c.check(fmt.Sprintf("udp via the host: [%s]:%d answers the internet with the client's address", hostAddr, port),
				udpWant(c.g.inet, hp(hostAddr, port), inetAddr, openWait))
		}
		c.check(fmt.Sprintf("udp: the unpublished listening port [%s]:10011 gets no answer", pubNet.addr),
			c.g.udpClosed(hp(pubNet.addr, 10011)))
	}},
}

// composeCell is the seed as users run it: compose up of
// examples/seed/compose.yml, the busybox httpd on internal + public with
// ports 8081:80.
func composeCell(c *cell) {
	g := c.g
	files := []string{"compose", "-f", filepath.Join(g.env.repo, "examples/seed/compose.yml")}
	if !g.modern {
		files = append(files, "-f", filepath.Join(g.env.repo, "examples/seed/compose.legacy.yml"))
	}
	files = append(files, "-p", "demo")
	c.compose = files
	c.addrs = append(c.addrs, natNet.addr, pubNet.addr)
	if out, err := g.dockerEnv([]string{"V6BRIDGE=" + pluginID}, append(files, "up", "-d")...); err != nil {
		c.t.Fatalf("compose up: %v\n%s", err, out)
	}
	const ctr = "demo-busybox-1"
	for _, n := range []netSpec{natNet, pubNet} {
		got, err := g.docker("inspect", "-f", fmt.Sprintf("{{(index .NetworkSettings.Networks %q).GlobalIPv6Address}}", "demo_"+n.name), ctr)
		if err == nil && got != n.addr {
			err = fmt.Errorf("inspect shows %q, want %s", got, n.addr)
		}
		c.check(fmt.Sprintf("busybox has %s on demo_%s", n.addr, n.name), err)
	}
	const hello = "Hello world!"
	c.check(fmt.Sprintf("inbound direct: the internet reaches http://[%s]/", pubNet.addr),
		fetchWant(g.inet, "http://"+hp(pubNet.addr, 80)+"/", hello, openWait))
	c.check(fmt.Sprintf("inbound via the host: the internet reaches http://[%s]:8081/", hostAddr),
		fetchWant(g.inet, "http://"+hp(hostAddr, 8081)+"/", hello, openWait))
	c.check(fmt.Sprintf("the internet cannot reach the nat address [%s]:80 directly, even with a route", natNet.addr),
		closedTCP(g.inet, hp(natNet.addr, 80), closedWait))
	c.check(fmt.Sprintf("hairpin: a container on demo_internal reaches http://[%s]:8081/", hostAddr),
		c.clientFetch("demo_internal", "http://"+hp(hostAddr, 8081)+"/", hello))
	c.check(fmt.Sprintf("hairpin: busybox reaches its own published port http://[%s]:8081/", hostAddr),
		c.execFetch(ctr, "http://"+hp(hostAddr, 8081)+"/", hello))
	c.check("the provider's router resolves the public address to the VPS (NDP proxy)", g.routerNeighIsHost(pubNet.addr))
	if _, err := g.docker("exec", ctr, "httpd", "-p", "8000", "-h", "/"); err != nil {
		c.t.Fatal(err)
	}
	c.check("busybox serves port 8000 on its public address itself",
		c.execFetch(ctr, "http://"+hp(pubNet.addr, 8000)+"/", hello))
	c.check(fmt.Sprintf("an unpublished listening port is closed: [%s]:8000 from the internet", pubNet.addr),
		closedTCP(g.inet, hp(pubNet.addr, 8000), closedWait))
}

// disconnectCell: a container on both networks, published with -p 8081:80
// (created on public, internal connected before start, as compose does on
// some engines), then leave is disconnected while it runs: the host port
// moves to what stays, and nothing is left open for the address that left.
// createConnectCell: docker create on first with -p, connect second
// before the start.
func createConnectCell(c *cell, first, second netSpec) {
	c.network(natNet)
	c.network(pubNet)
	c.web("create", "web", first, first.addr, []string{"-p", "8081:80"})
	c.connect(second, "web")
	c.must("start", "web")
	c.published("web", []netSpec{first, second}, 8081)
}

// connectRunningCell: docker run on first with -p, connect second while
// it runs.
func connectRunningCell(c *cell, first, second netSpec) {
	c.network(natNet)
	c.network(pubNet)
	c.web("run", "web", first, first.addr, []string{"-p", "8081:80"})
	c.check("before connect: the host port leads to the "+first.mode+" address",
		fetchWant(c.g.inet, "http://"+hp(hostAddr, 8081)+"/local", first.addr, openWait))
	c.connect(second, "web")
	c.published("web", []netSpec{first, second}, 8081)
}

func disconnectCell(c *cell, leave, stay netSpec) {
	c.network(natNet)
	c.network(pubNet)
	c.web("create", "web", pubNet, pubNet.addr, []string{"-p", "8081:80"})
	c.connect(natNet, "web")
	c.must("start", "web")
	c.published("web", []netSpec{pubNet, natNet}, 8081)
	c.must("network", "disconnect", leave.name, "web")
	c.t.Logf("# disconnected %s", leave.name)
	c.gone(leave.addr)
	c.check(fmt.Sprintf("the container keeps an IPv6 default route, via %s", stay.name), func() error {
		r, err := c.g.docker("exec", "web", "ip", "-6", "route", "show", "default")
		if err == nil && r == "" {
			err = fmt.Errorf("no IPv6 default route left: replies to the internet and the host cannot leave")
		}
		return err
	}())
	c.published("web", []netSpec{stay}, 8081)
}

// TestE2E runs the demo and the publishing matrix on every engine variant
// (V6B_E2E_VARIANTS limits them), one engine per variant shared by its
// cells, each cell from a fresh state.
func TestE2E(t *testing.T) {
	e := setup(t)
	var mu sync.Mutex
	counts := map[string]int{}
	count := func(t *testing.T) {
		t.Cleanup(func() {
			mu.Lock()
			defer mu.Unlock()
			if t.Failed() {
				counts["failed"]++
			} else {
				counts["passed"]++
			}
		})
	}
	t.Run("demo", func(t *testing.T) {
		count(t)
		runDemo(t, e)
	})
	t.Run("publish", func(t *testing.T) {
		for _, v := range selectedVariants(t) {
			t.Run(v.name, func(t *testing.T) {
				g := newEngine(e, v)
				t.Cleanup(func() { g.stop(t) })
				for _, m := range matrix {
					t.Run(m.name, func(t *testing.T) {
						count(t)
						m.run(g.cell(t))
					})
				}
			})
		}
	})
	// The line CI counts (the demo is one of them).
	fmt.Printf("e2e matrix: %d passed, %d failed\n", counts["passed"], counts["failed"])
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
