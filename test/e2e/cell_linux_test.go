package e2e

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

// netSpec is a v6bridge network a cell creates, and the address its web
// container gets on it.
type netSpec struct {
	name   string
	subnet string
	addr   string   // the web container's address (--ip6)
	mode   string   // nat or public
	opts   []string // extra docker network create flags
}

// The seed's networks (examples/seed/compose.yml) and a second public one.
var (
	natNet  = netSpec{name: "internal", subnet: "fd12:3456:789a:8101:1::/112", addr: "fd12:3456:789a:8101:1::ab53", mode: "nat"}
	pubNet  = netSpec{name: "public", subnet: "2001:db8:1234:a1:1::/112", addr: "2001:db8:1234:a1:1::ab53", mode: "public"}
	pub2Net = netSpec{name: "public2", subnet: "2001:db8:1234:a1:2::/112", addr: "2001:db8:1234:a1:2::ab53", mode: "public"}
	// A public network whose gateway is fe80::1 on the bridge (engines >=
	// 28): the web container takes the subnet's first address.
	llNet = netSpec{name: "publl", subnet: "2001:db8:1234:a1:3::/112", addr: "2001:db8:1234:a1:3::1", mode: "public",
		opts: []string{"-o", "v6bridge.gateway=link-local"}}
	ll2Net = netSpec{name: "publl2", subnet: "2001:db8:1234:a1:4::/112", addr: "2001:db8:1234:a1:4::1", mode: "public",
		opts: []string{"-o", "v6bridge.gateway=link-local"}}
)

// Timeouts: an open port answers within a few seconds (the router may
// first resolve the address by NDP); a closed one is a drop or a reset,
// and in these namespaces a reply takes microseconds.
const (
	openWait   = 5 * time.Second
	closedWait = 1500 * time.Millisecond
)

// cell is one case of the matrix on a shared engine, from a fresh state:
// what it creates is removed by t.Cleanup, which then checks that nothing
// v6bridge owns is left.
type cell struct {
	t       *testing.T
	g       *engine
	nets    []string // created networks, removed last
	ctrs    []string // created containers
	addrs   []string // container addresses: absent from the ruleset after cleanup
	compose []string // compose arguments when the cell ran compose up
	extra   bool     // the cell added extraAdr to the VPS
	last    time.Time
}

// cell starts the engine if needed, removes what an earlier failed cell
// left, and checks that the cell starts with nothing v6bridge owns.
func (g *engine) cell(t *testing.T) *cell {
	t.Helper()
	g.need(t)
	c := &cell{t: t, g: g, last: time.Now()}
	if ids, _ := g.docker("ps", "-aq"); ids != "" {
		t.Logf("removing containers left by an earlier cell: %s", strings.Join(strings.Fields(ids), " "))
		g.docker(append([]string{"rm", "-f"}, strings.Fields(ids)...)...)
	}
	if ids, _ := g.docker("network", "ls", "-q", "--filter", "driver="+pluginID); ids != "" {
		t.Logf("removing networks left by an earlier cell: %s", strings.Join(strings.Fields(ids), " "))
		g.docker(append([]string{"network", "rm"}, strings.Fields(ids)...)...)
	}
	ip("-n", g.prefix+"-vps", "addr", "del", extraAdr+"/64", "dev", "eth0")
	left, err := g.owned()
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Fatalf("the engine is not in a fresh state: v6bridge still owns %s", strings.Join(left, ", "))
	}
	t.Cleanup(c.cleanup)
	return c
}

func (c *cell) cleanup() {
	t, g := c.t, c.g
	if t.Failed() {
		t.Logf("plugin log (last 40 lines):\n%s", g.pluginLog(40))
		t.Logf("nft list table ip6 v6bridge:\n%s", g.nftTable())
		for _, ctr := range c.ctrs {
			out, _ := g.docker("exec", ctr, "sh", "-c", "ip -6 addr; ip -6 route")
			t.Logf("container %s: addresses and routes:\n%s", ctr, out)
		}
	}
	if len(c.ctrs) > 0 {
		ctrs := slices.Compact(slices.Sorted(slices.Values(c.ctrs)))
		if _, err := g.docker(append([]string{"rm", "-f"}, ctrs...)...); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	}
	// containers first: a network compose made may hold one of the cell's
	if c.compose != nil {
		if out, err := g.dockerEnv([]string{"V6BRIDGE=" + pluginID}, append(c.compose, "down")...); err != nil {
			t.Errorf("cleanup: compose down: %v\n%s", err, out)
		}
	}
	for _, n := range slices.Backward(c.nets) {
		if _, err := g.docker("network", "rm", n); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	}
	if c.extra {
		if _, err := ip("-n", g.prefix+"-vps", "addr", "del", extraAdr+"/64", "dev", "eth0"); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	}
	err := eventually(3*time.Second, func() error {
		left, err := g.owned()
		if err != nil {
			return err
		}
		if len(left) > 0 {
			return fmt.Errorf("v6bridge still owns %s", strings.Join(left, ", "))
		}
		return nil
	})
	if err != nil {
		t.Errorf("cleanup: after removing the cell's containers and networks: %v", err)
	}
	table := g.nftTable()
	for _, a := range c.addrs {
		if strings.Contains(table, a) {
			t.Errorf("cleanup: the v6bridge ruleset still names %s:\n%s", a, table)
		}
	}
}

// check reports one check: "ok - desc" in the log, or an error that lets
// the cell go on with its other checks. The time since the previous check
// (what the cell did in between, and this check) is printed, not asserted.
func (c *cell) check(desc string, err error) {
	c.t.Helper()
	now := time.Now()
	took := now.Sub(c.last).Round(100 * time.Millisecond)
	c.last = now
	if err != nil {
		c.t.Errorf("FAIL - %s (+%s): %v", desc, took, err)
		return
	}
	c.t.Logf("ok   - %s (+%s)", desc, took)
}

// must runs a docker command the cell cannot go on without.
func (c *cell) must(args ...string) string {
	c.t.Helper()
	out, err := c.g.docker(args...)
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

// network creates n with the plugin as driver and IPAM.
func (c *cell) network(n netSpec) {
	c.t.Helper()
	args := []string{"network", "create", "-d", pluginID, "--ipam-driver", pluginID, "--ipv6", "--subnet", n.subnet}
	if c.g.modern {
		args = append(args, "--ipv4=false")
	}
	if n.mode == "nat" {
		args = append(args, "-o", "v6bridge.mode=nat")
	}
	args = append(args, n.opts...)
	c.must(append(args, n.name)...)
	c.nets = append(c.nets, n.name)
}

// web creates (verb "create") or runs (verb "run") a container on n at
// addr that serves echoserver on ports 80 and 8000 (plus server, extra
// echoserver flags), with docker flags.
func (c *cell) web(verb, name string, n netSpec, addr string, flags []string, server ...string) {
	c.t.Helper()
	args := []string{verb}
	if verb == "run" {
		args = append(args, "-d")
	}
	args = append(args, "--name", name, "--network", n.name, "--ip6", addr, "-v", c.g.env.echo+":/echoserver:ro")
	args = append(append(args, flags...), "busybox", "/echoserver", "-listen", "[::]:80,[::]:8000")
	c.must(append(args, server...)...)
	c.ctrs = append(c.ctrs, name)
	c.addrs = append(c.addrs, addr)
}

// connect attaches container ctr to n at n.addr.
func (c *cell) connect(n netSpec, ctr string) {
	c.t.Helper()
	c.must("network", "connect", "--ip6", n.addr, n.name, ctr)
	c.addrs = append(c.addrs, n.addr)
}

// preferred is the address the host port must lead to, whatever the join
// order: the container's address on a nat network, else on a public one,
// else a routed one; between networks of the same mode, the one whose id
// sorts first.
func (c *cell) preferred(nets []netSpec) string {
	c.t.Helper()
	rank := map[string]int{"nat": 0, "public": 1, "routed": 2}
	type cand struct {
		rank int
		id   string
		addr string
	}
	var cs []cand
	for _, n := range nets {
		cs = append(cs, cand{rank[n.mode], c.must("network", "inspect", "-f", "{{.Id}}", n.name), n.addr})
	}
	slices.SortFunc(cs, func(a, b cand) int {
		if a.rank != b.rank {
			return a.rank - b.rank
		}
		return strings.Compare(a.id, b.id)
	})
	return cs[0].addr
}

func hp(addr string, port int) string { return net.JoinHostPort(addr, fmt.Sprint(port)) }

// published runs the seed's checks for container ctr, attached to nets
// (in any order) and published with -p hostPort:80, serving 80 and 8000.
func (c *cell) published(ctr string, nets []netSpec, hostPort int) {
	c.t.Helper()
	g := c.g
	for _, n := range nets {
		switch n.mode {
		case "public":
			c.check(fmt.Sprintf("inbound direct: the internet reaches [%s]:80 and the container sees the client's address", n.addr),
				fetchWant(g.inet, "http://"+hp(n.addr, 80)+"/", inetAddr, openWait))
		case "nat":
			c.check(fmt.Sprintf("the internet cannot reach the nat address [%s]:80 directly, even with a route", n.addr),
				closedTCP(g.inet, hp(n.addr, 80), closedWait))
		}
	}
	target := c.preferred(nets)
	host := "http://" + hp(hostAddr, hostPort)
	c.check(fmt.Sprintf("inbound via the host: the internet reaches %s, which leads to %s", host, target),
		fetchWant(g.inet, host+"/local", target, openWait))
	c.check(fmt.Sprintf("inbound via the host: the container sees the client's address at %s", host),
		fetchWant(g.inet, host+"/", inetAddr, openWait))
	c.check(fmt.Sprintf("the host itself reaches %s", host), fetchWant(g.vps, host+"/local", target, openWait))
	// The container itself: the hairpin that needs the most (its packet
	// comes back to the bridge it left), and an exec costs a fraction of
	// another container. The compose cell also checks another container.
	c.check(fmt.Sprintf("hairpin: the container reaches its own published port %s", host),
		c.execFetch(ctr, host+"/local", target))
	for _, n := range nets {
		if n.mode != "public" {
			continue
		}
		c.check(fmt.Sprintf("the container serves [%s]:8000 itself", n.addr),
			c.execFetch(ctr, "http://"+hp(n.addr, 8000)+"/local", n.addr))
		c.check(fmt.Sprintf("an unpublished listening port is closed: [%s]:8000 from the internet", n.addr),
			closedTCP(g.inet, hp(n.addr, 8000), closedWait))
	}
}

// gone checks that addr, no longer the container's, is nowhere in the
// ruleset and closed from the internet.
func (c *cell) gone(addr string) {
	c.t.Helper()
	var err error
	if table := c.g.nftTable(); strings.Contains(table, addr) {
		err = fmt.Errorf("the ruleset still names it:\n%s", table)
	}
	c.check(fmt.Sprintf("nothing is left open for %s", addr), err)
	c.check(fmt.Sprintf("[%s]:80 is closed from the internet", addr), closedTCP(c.g.inet, hp(addr, 80), closedWait))
}

// clientFetch runs a throwaway busybox on network n that fetches url, and
// wants body want. (busybox 1.35's wget -T crashes: timeout bounds it.)
func (c *cell) clientFetch(n, url, want string) error {
	out, err := c.g.docker("run", "--rm", "--network", n, "busybox", "sh", "-c", `timeout 10 wget -q -O - "$0"; exit $?`, url)
	if err != nil {
		return err
	}
	if out != want {
		return fmt.Errorf("GET %s answered %q, want %q", url, out, want)
	}
	return nil
}

// execFetch fetches url from inside container ctr and wants body want.
func (c *cell) execFetch(ctr, url, want string) error {
	out, err := c.g.docker("exec", ctr, "sh", "-c", `timeout 5 wget -q -O - "$0"; exit $?`, url)
	if err != nil {
		return err
	}
	if out != want {
		return fmt.Errorf("GET %s answered %q, want %q", url, out, want)
	}
	return nil
}

// routerNeighIsHost checks that the provider's router resolved addr to the
// VPS's uplink MAC: the NDP proxy answered for it.
func (g *engine) routerNeighIsHost(addr string) error {
	link, err := ip("-n", g.prefix+"-vps", "link", "show", "eth0")
	if err != nil {
		return err
	}
	want := fieldAfter(link, "link/ether")
	neigh, err := ip("-n", g.prefix+"-router", "-6", "neigh", "show", addr, "dev", "vps0")
	if err != nil {
		return err
	}
	if got := fieldAfter(neigh, "lladdr"); got != want || want == "" {
		return fmt.Errorf("router: %s -> %q, want the VPS's %q", addr, got, want)
	}
	return nil
}

func fieldAfter(s, key string) string {
	f := strings.Fields(s)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == key {
			return f[i+1]
		}
	}
	return ""
}

// udpClosed succeeds when a datagram to hostport from the internet gets no
// answer within closedWait.
func (g *engine) udpClosed(hostport string) error {
	if err := udpWant(g.inet, hostport, inetAddr, 0); err == nil {
		return fmt.Errorf("udp %s answered", hostport)
	}
	return nil
}
