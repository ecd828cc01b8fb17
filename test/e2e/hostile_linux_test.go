package e2e

import (
	"fmt"
	"os/exec"
	"strings"
)

// The engine's own IPv6 network, beside v6bridge's (issue 24): a container
// on it publishes one port and listens on another.
const (
	engineSubnet = "fd00:e6e:1::/64"
	victimAddr   = "fd00:e6e:1::10"
)

// hostileCells (current and current-nft: the firewall backends are the current engine's) plays a v6bridge container as the attacker of a container
// on the engine's own IPv6 network, on both firewall backends of the
// current engine (V6B_E2E_VARIANTS=current or current-nft for one): the
// unpublished port must stay closed to it, as it is to any other network,
// while the published port (through the host address) and the internet
// still pass (controls), with the engine's ip6tables FORWARD policy drop on
// the iptables backend. v6bridge's chains mark
// what leaves its bridges towards other interfaces only for the guard, not
// for the engine's DOCKER-USER, so the engine's rules judge it.
var hostileCells = []matrixCell{
	{"engine-network-from-nat", func(c *cell) { engineNetworkCell(c, natNet) }},
	{"engine-network-from-public", func(c *cell) { engineNetworkCell(c, pubNet) }},
}

func engineNetworkCell(c *cell, n netSpec) {
	g := c.g
	iptables := len(g.v.flags) == 0 // the iptables backend
	if iptables {
		// As engines that enable forwarding themselves leave it (the rig
		// enables it first): every forwarded packet needs an accept of
		// DOCKER-USER or the engine's own chains.
		if _, err := vpsIP6tables(g, "-P", "FORWARD", "DROP"); err != nil {
			c.t.Fatal(err)
		}
		c.t.Cleanup(func() { vpsIP6tables(g, "-P", "FORWARD", "ACCEPT") })
	}
	args := []string{"network", "create", "--ipv6", "--subnet", engineSubnet}
	if g.modern {
		args = append(args, "--ipv4=false")
	}
	c.must(append(args, "enginenet")...)
	c.nets = append(c.nets, "enginenet")
	c.must("run", "-d", "--name", "victim", "--network", "enginenet", "--ip6", victimAddr, "-p", "8085:80",
		"-v", g.env.echo+":/echoserver:ro", "busybox", "/echoserver", "-listen", "[::]:80,[::]:8000")
	c.ctrs = append(c.ctrs, "victim")
	c.network(n)
	c.web("run", "attacker", n, n.addr, nil)
	if iptables {
		c.check("with FORWARD policy drop, v6bridge's DOCKER-USER rule accepts only what it let into its bridges or out to the uplink (mark 0x30000000)",
			eventually(openWait, func() error { return dockerUserMark(g) }))
	}

	c.check(fmt.Sprintf("control: the victim serves [%s]:8000 itself", victimAddr),
		c.execFetch("victim", "http://"+hp(victimAddr, 8000)+"/local", victimAddr))
	c.check(fmt.Sprintf("control: the %s container reaches the victim's published port [%s]:8085", n.mode, hostAddr),
		c.execFetch("attacker", "http://"+hp(hostAddr, 8085)+"/local", victimAddr))
	want := hostAddr // masqueraded
	if n.mode == "public" {
		want = n.addr
	}
	c.check(fmt.Sprintf("control: the %s container reaches the internet as %s", n.mode, want),
		c.execFetch("attacker", c.inetServer(), want))
	c.check(fmt.Sprintf("the %s container cannot reach the victim's unpublished port [%s]:8000", n.mode, victimAddr),
		c.execCannot("attacker", "http://"+hp(victimAddr, 8000)+"/local", 5))
}

// dockerUserMark checks the engine's DOCKER-USER chain holds v6bridge's
// mark rule and no rule accepting on MarkJudged alone.
func dockerUserMark(g *engine) error {
	s, err := vpsIP6tables(g, "-S", "DOCKER-USER")
	if err != nil {
		return err
	}
	if !strings.Contains(s, "--mark 0x30000000/0x30000000 -j ACCEPT") || strings.Contains(s, "0x20000000/0x20000000") {
		return fmt.Errorf("DOCKER-USER:\n%s", s)
	}
	return nil
}

// vpsIP6tables runs ip6tables in the VPS.
func vpsIP6tables(g *engine, args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", g.prefix + "-vps", "ip6tables", "-w"}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ip6tables %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}
