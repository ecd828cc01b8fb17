package e2e

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
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

// skipCell says why a cell does not run on an engine ("" when it does).
var skipCell = map[string]func(g *engine) string{
	// The demo area runs the same compose file on the current engine.
	"compose": func(g *engine) string {
		if g.v.name == "current" {
			return "the demo (TestE2E/current/demo) runs the seed's compose file on this engine"
		}
		return ""
	},
}

var matrix = []matrixCell{
	{"compose", composeCell},
	{"run-public", func(c *cell) {
		c.network(pubNet)
		c.web("run", "web", pubNet, pubNet.addr, []string{"-p", "8081:80"})
		c.published("web", []netSpec{pubNet}, 8081)
		c.check("the provider's router resolves the public address to the VPS (NDP proxy)", c.g.routerNeighIsHost(pubNet.addr))
		c.check("outbound: a public container goes out with its own address",
			c.outboundSeen(pubNet.name, c.inetServer(), "2001:db8:1234:a1:1::99", "--ip6", "2001:db8:1234:a1:1::99"))
	}},
	{"run-nat", func(c *cell) {
		c.network(natNet)
		c.check("one bridge per network in the VPS", c.g.bridges(1))
		c.web("run", "web", natNet, natNet.addr, []string{"-p", "8081:80"})
		c.published("web", []netSpec{natNet}, 8081)
		c.check("the host reaches the container's address through the bridge",
			c.fromHost("http://"+hp(natNet.addr, 80)+"/local", natNet.addr))
		c.check("the container's IPv6 default route is via the gateway fd12:3456:789a:8101:1::1",
			c.defaultVia("web", natNet, "fd12:3456:789a:8101:1::1"))
		c.check("the container has no routable IPv4 (no default route, no global address but a placeholder)", c.noRoutableV4("web"))
		c.check("nat: a container on a ULA network reaches the internet as the host's address",
			c.outboundSeen(natNet.name, c.inetServer(), hostAddr))
		out, err := c.g.docker("run", "-d", "--name", "dup8081", "--network", natNet.name, "-p", "8081:80", "busybox", "sleep", "60")
		c.ctrs = append(c.ctrs, "dup8081")
		c.check("a second container asking for host port 8081 is refused", expectFail(out, err, "8081"))
	}},
	{"isolation", isolationCell},
	{"create-public-connect-internal", func(c *cell) { createConnectCell(c, pubNet, natNet) }},
	{"create-internal-connect-public", func(c *cell) { createConnectCell(c, natNet, pubNet) }},
	{"connect-running-internal", func(c *cell) { connectRunningCell(c, pubNet, natNet) }},
	{"connect-running-public", func(c *cell) { connectRunningCell(c, natNet, pubNet) }},
	{"disconnect-public", func(c *cell) { disconnectCell(c, pubNet, natNet) }},
	{"disconnect-internal", func(c *cell) { disconnectCell(c, natNet, pubNet) }},
	{"two-public", func(c *cell) {
		c.network(pubNet)
		c.network(pub2Net)
		startConnected(c, pubNet, pub2Net)
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
	{"public-link-local-gateway", linkLocalCell},
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

// seedCompose makes the seed the cell's compose project (project demo of
// examples/seed/compose.yml, with compose.legacy.yml below API 1.48)
// holding natNet.addr and pubNet.addr, and returns the docker compose
// arguments that name it.
func (c *cell) seedCompose() []string {
	files := []string{"compose", "-f", filepath.Join(c.g.env.repo, "examples/seed/compose.yml")}
	if !c.g.modern {
		files = append(files, "-f", filepath.Join(c.g.env.repo, "examples/seed/compose.legacy.yml"))
	}
	files = append(files, "-p", "demo")
	c.compose = files
	c.addrs = append(c.addrs, natNet.addr, pubNet.addr)
	return files
}

// composeCell is the seed as users run it: compose up of
// examples/seed/compose.yml, the busybox httpd on internal + public with
// ports 8081:80.
func composeCell(c *cell) {
	g := c.g
	files := c.seedCompose()
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

// linkLocalCell: a public network with -o v6bridge.gateway=link-local.
// Engines >= 28 reserve no gateway address of the subnet (GwAllocCheck):
// the bridge holds fe80::1 and no address of the subnet, containers route
// via fe80::1, and the subnet's first address is a container's. Engines
// before 28 get a refusal naming the version.
func linkLocalCell(c *cell) {
	g := c.g
	if !g.modern {
		out, err := g.docker("network", "create", "-d", pluginID, "--ipam-driver", pluginID, "--ipv6", "--subnet", llNet.subnet,
			"-o", "v6bridge.gateway=link-local", llNet.name)
		if err == nil {
			c.nets = append(c.nets, llNet.name)
			err = fmt.Errorf("created: %s", out)
		} else if !strings.Contains(out, "needs Docker >= 28") {
			err = fmt.Errorf("refused, but the message does not name the version: %s", out)
		} else {
			err = nil
		}
		c.check("engine "+g.version+": -o v6bridge.gateway=link-local is refused with \"needs Docker >= 28\"", err)
		return
	}
	c.network(llNet)
	gw, err := g.docker("network", "inspect", "-f", "{{range .IPAM.Config}}{{.Gateway}}{{end}}", llNet.name)
	if err == nil && gw != "" {
		err = fmt.Errorf("the engine reserved gateway %s", gw)
	}
	c.check("the engine reserved no gateway address of "+llNet.subnet, err)
	c.check("the VPS holds no address of "+llNet.subnet+" and routes it to a bridge with fe80::1", g.linkLocalBridge(llNet.subnet, "fe80::1"))
	c.web("run", "web", llNet, llNet.addr, []string{"-p", "8081:80"})
	got, err := g.docker("inspect", "-f", fmt.Sprintf("{{(index .NetworkSettings.Networks %q).IPv6Gateway}}", llNet.name), "web")
	if err == nil && got != "fe80::1" {
		err = fmt.Errorf("inspect shows IPv6Gateway %q", got)
	}
	c.check("docker inspect shows IPv6Gateway fe80::1", err)
	c.check("the container's default route is via fe80::1 dev eth0", c.defaultVia("web", llNet, "fe80::1"))
	c.published("web", []netSpec{llNet}, 8081)
	c.check("the provider's router resolves the subnet's first address to the VPS (NDP proxy)", g.routerNeighIsHost(llNet.addr))
	url := c.inetServer()
	c.check(fmt.Sprintf("outbound: the container at %s reaches the internet with its own address", llNet.addr),
		c.execFetch("web", url, llNet.addr))
	seen, err := g.docker("run", "--rm", "--network", llNet.name, "busybox", "sh", "-c", `timeout 10 wget -q -O - "$0"; exit $?`, url)
	if err == nil {
		if a, perr := netip.ParseAddr(seen); perr != nil || !netip.MustParsePrefix(llNet.subnet).Contains(a) {
			err = fmt.Errorf("the internet saw %q, want an address of %s", seen, llNet.subnet)
		}
	}
	c.check("outbound: a container without --ip6 gets an address of the subnet and reaches the internet with it", err)

	// A container on a nat network and two link-local ones, the first
	// with a higher gateway priority: the default route goes through the
	// interface on llNet in every join order (the engine finds the
	// gateway's interface by a route lookup, so each network's gateway is
	// its own: fe80::1 and fe80::2). "multi" is created and connected
	// before the start (the engine joins in an order of its own), "late"
	// runs and is connected to ll2Net first, then to llNet: the order in
	// which a shared fe80::1 routed through ll2Net.
	c.network(natNet)
	c.network(ll2Net)
	c.check("the second link-local network's bridge holds fe80::2, its own gateway", g.linkLocalBridge(ll2Net.subnet, "fe80::2"))
	c.web("create", "multi", natNet, "fd12:3456:789a:8101:1::ab54", nil)
	c.must("network", "connect", "--gw-priority", "10", llNet.name, "multi")
	c.must("network", "connect", ll2Net.name, "multi")
	c.must("start", "multi")
	c.web("run", "late", natNet, "fd12:3456:789a:8101:1::ab55", nil)
	c.must("network", "connect", ll2Net.name, "late")
	c.must("network", "connect", "--gw-priority", "10", llNet.name, "late")
	for _, ctr := range []string{"multi", "late"} {
		c.check(fmt.Sprintf("%s: on nat + two link-local networks (gw-priority on %s): default via fe80::1 through its interface there", ctr, llNet.name),
			c.defaultVia(ctr, llNet, "fe80::1"))
		seen, err := g.docker("exec", ctr, "sh", "-c", `timeout 10 wget -q -O - "$0"; exit $?`, url)
		if err == nil {
			if a, perr := netip.ParseAddr(seen); perr != nil || !netip.MustParsePrefix(llNet.subnet).Contains(a) {
				err = fmt.Errorf("the internet saw %q, want an address of %s", seen, llNet.subnet)
			}
		}
		c.check("... and reaches the internet with its address on "+llNet.name, err)
	}
}

// defaultVia checks that ctr's IPv6 default route is via gw through its
// interface on n (the engine names the interfaces in an order of its own).
func (c *cell) defaultVia(ctr string, n netSpec, gw string) error {
	ifname, err := c.g.docker("exec", ctr, "sh", "-c", `ip -6 -o addr show | awk -v p="$0" 'index($4, p) == 1 {print $2}'`,
		strings.TrimSuffix(n.subnet, ":/112"))
	if err != nil {
		return err
	}
	route, err := c.g.docker("exec", ctr, "ip", "-6", "route", "show", "default")
	if err == nil && (ifname == "" || !strings.Contains(route, "via "+gw+" dev "+ifname+" ")) {
		err = fmt.Errorf("default route %q, want one via %s dev %q (the interface on %s)", route, gw, ifname, n.name)
	}
	return err
}

// linkLocalBridge checks the VPS's side of a link-local gateway network:
// subnet routed to a v6b bridge that holds gw, no address of subnet on the
// host.
func (g *engine) linkLocalBridge(subnet, gw string) error {
	vps := g.prefix + "-vps"
	if out, err := ip("-n", vps, "-6", "addr", "show", "to", subnet); err != nil || strings.TrimSpace(out) != "" {
		return fmt.Errorf("host addresses in %s: %q %v", subnet, out, err)
	}
	route, err := ip("-n", vps, "-6", "route", "show", subnet)
	if err != nil {
		return err
	}
	br := fieldAfter(route, "dev")
	if !strings.HasPrefix(br, "v6b-") {
		return fmt.Errorf("route to %s: %q, want one to a v6b- bridge", subnet, route)
	}
	addrs, err := ip("-n", vps, "-6", "addr", "show", "dev", br)
	if err != nil {
		return err
	}
	if !strings.Contains(addrs, "inet6 "+gw+"/64 ") {
		return fmt.Errorf("bridge %s has no %s/64:\n%s", br, gw, addrs)
	}
	if strings.Contains(addrs, "scope global") {
		return fmt.Errorf("bridge %s has a global address:\n%s", br, addrs)
	}
	return nil
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
	startConnected(c, first, second)
}

// startConnected creates web on first with -p 8081:80, connects it to
// second before the start, starts it and checks its publishing.
func startConnected(c *cell, first, second netSpec) {
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
	createConnectCell(c, pubNet, natNet)
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
