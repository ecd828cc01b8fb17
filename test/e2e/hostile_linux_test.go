package e2e

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

// The engine's own IPv6 network, beside v6bridge's (issue 24): a container
// on it publishes one port and listens on another.
const (
	engineSubnet = "fd00:e6e:1::/64"
	victimAddr   = "fd00:e6e:1::10"
)

// TestE2EHostile plays a v6bridge container as the attacker of a container
// on the engine's own IPv6 network, on both firewall backends of the
// current engine (V6B_E2E_VARIANTS=current or current-nft for one): the
// unpublished port must stay closed to it, as it is to any other network,
// while the published port (through the host address), the internet and
// v6bridge's own traffic still pass (controls). v6bridge's chains mark
// what leaves its bridges towards other interfaces only for the guard, not
// for the engine's DOCKER-USER, so the engine's rules judge it.
func TestE2EHostile(t *testing.T) {
	e := setup(t)
	for _, v := range selectedVariants(t) {
		if v.kind != "current" {
			continue // the firewall backends are the current engine's
		}
		t.Run(v.name, func(t *testing.T) {
			g := newEngine(e, v)
			t.Cleanup(func() { g.stop(t) })
			for _, n := range []netSpec{natNet, pubNet} {
				t.Run("engine-network-from-"+n.mode, func(t *testing.T) { engineNetworkCell(g.cell(t), n) })
			}
		})
	}
}

func engineNetworkCell(c *cell, n netSpec) {
	g := c.g
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
		execClosed(c, "attacker", "http://"+hp(victimAddr, 8000)+"/local"))
	if len(g.v.flags) == 0 { // the iptables backend
		c.check("the engine's DOCKER-USER accepts only what v6bridge let into its bridges or out to the uplink (mark 0x30000000)",
			dockerUserMark(g))
	}
}

// execClosed succeeds when container ctr cannot fetch url within 5 s.
func execClosed(c *cell, ctr, url string) error {
	out, err := c.g.docker("exec", ctr, "sh", "-c", `timeout 5 wget -q -O - "$0"; exit $?`, url)
	if err == nil {
		return fmt.Errorf("GET %s from %s answered %q", url, ctr, out)
	}
	return nil
}

// dockerUserMark checks the engine's DOCKER-USER chain holds v6bridge's
// mark rule and no rule accepting on MarkJudged alone.
func dockerUserMark(g *engine) error {
	out, err := exec.Command("ip", "netns", "exec", g.prefix+"-vps", "ip6tables", "-w", "-S", "DOCKER-USER").CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip6tables -S DOCKER-USER: %w: %s", err, out)
	}
	s := string(out)
	if !strings.Contains(s, "--mark 0x30000000/0x30000000 -j ACCEPT") || strings.Contains(s, "0x20000000/0x20000000") {
		return fmt.Errorf("DOCKER-USER:\n%s", s)
	}
	return nil
}
