package e2e

import (
	"fmt"
	"strings"
	"time"
)

// The host changes its uplink under the plugin (issue 25), on a VPS
// serving the seed's container (public + nat, -p 8081:80):
//
//   - a second address added to the uplink: -p 8081:80 serves it, as the
//     engine's own bridge does (it publishes on every host address);
//   - the uplink deleted and created again under the same name, with its
//     addresses and route (a hypervisor hot-plug, a bond or VLAN re-created:
//     a new interface index): the public container is reached directly
//     again, reaches the internet again, and a container started afterwards
//     is reached too, without a plugin restart. ndppd, bound to the
//     interface it found at start, stays deaf until restarted.
//
// The waits are the promises (5 s, 15 s); the time each check took is
// printed, not asserted.
const (
	secondAddrWait = 5 * time.Second
	relinkWait     = 15 * time.Second
)

var uplinkCells = []matrixCell{
	{"second-address", secondAddressCell},
	{"recreated", recreatedUplinkCell},
}

// seedContainer starts the seed's container: web on the public network
// with -p 8081:80, connected to the nat one, and returns the address the
// host port leads to.
func seedContainer(c *cell) string {
	c.network(natNet)
	c.network(pubNet)
	c.web("create", "web", pubNet, pubNet.addr, []string{"-p", "8081:80"})
	c.connect(natNet, "web")
	c.must("start", "web")
	target := c.preferred([]netSpec{pubNet, natNet})
	c.check(fmt.Sprintf("before: the internet reaches [%s]:8081, which leads to %s", hostAddr, target),
		fetchWant(c.g.inet, "http://"+hp(hostAddr, 8081)+"/local", target, openWait))
	return target
}

func secondAddressCell(c *cell) {
	g := c.g
	target := seedContainer(c)
	c.check(fmt.Sprintf("before: [%s]:8081 does not answer, the host has no such address", extraAdr),
		closedTCP(g.inet, hp(extraAdr, 8081), closedWait))
	if _, err := ip("-n", g.prefix+"-vps", "addr", "add", extraAdr+"/64", "dev", "eth0", "nodad"); err != nil {
		c.t.Fatal(err)
	}
	c.extra = true
	c.t.Logf("# added %s to the uplink", extraAdr)
	c.check(fmt.Sprintf("-p 8081:80 serves the new host address: the internet reaches [%s]:8081 within %s", extraAdr, secondAddrWait),
		fetchWant(g.inet, "http://"+hp(extraAdr, 8081)+"/local", target, secondAddrWait))
	c.check(fmt.Sprintf("and still [%s]:8081", hostAddr),
		fetchWant(g.inet, "http://"+hp(hostAddr, 8081)+"/local", target, openWait))
	c.check(fmt.Sprintf("the container sees the client's address at [%s]:8081", extraAdr),
		fetchWant(g.inet, "http://"+hp(extraAdr, 8081)+"/", inetAddr, openWait))

	if _, err := ip("-n", g.prefix+"-vps", "addr", "del", extraAdr+"/64", "dev", "eth0"); err != nil {
		c.t.Fatal(err)
	}
	c.extra = false
	c.t.Logf("# removed %s from the uplink", extraAdr)
	c.check(fmt.Sprintf("the firewall forgets the removed host address %s", extraAdr), eventually(secondAddrWait, func() error {
		if table := g.nftTable(); strings.Contains(table, extraAdr) {
			return fmt.Errorf("the ruleset still names it:\n%s", table)
		}
		return nil
	}))
	c.check(fmt.Sprintf("[%s]:8081 still serves", hostAddr),
		fetchWant(g.inet, "http://"+hp(hostAddr, 8081)+"/local", target, openWait))
}

func recreatedUplinkCell(c *cell) {
	g := c.g
	target := seedContainer(c)
	url := c.inetServer()
	var source string
	c.check("before: the container reaches the internet", eventually(openWait, func() error {
		var err error
		source, err = c.g.docker("exec", "web", "sh", "-c", `timeout 5 wget -q -O - "$0"; exit $?`, url)
		return err
	}))
	c.check(fmt.Sprintf("before: the internet reaches [%s]:80 directly", pubNet.addr),
		fetchWant(g.inet, "http://"+hp(pubNet.addr, 80)+"/", inetAddr, openWait))
	pid, err := g.pluginPID()
	if err != nil {
		c.t.Fatal(err)
	}

	c.t.Cleanup(func() {
		// A failed re-creation must not leave the next cells without an uplink.
		if _, err := ip("-n", g.prefix+"-vps", "link", "show", "eth0"); err != nil {
			if err := g.recreateUplink(); err != nil {
				c.t.Errorf("cleanup: create the uplink again: %v", err)
			}
		}
	})
	if err := g.recreateUplink(); err != nil {
		c.t.Fatal(err)
	}
	deadline := time.Now().Add(relinkWait)
	left := func() time.Duration { return time.Until(deadline) }
	c.t.Logf("# deleted the uplink eth0 and created it again (same name, addresses and route; new index)")

	c.check(fmt.Sprintf("after: the internet reaches the public container [%s]:80 directly within %s", pubNet.addr, relinkWait),
		fetchWant(g.inet, "http://"+hp(pubNet.addr, 80)+"/", inetAddr, left()))
	c.check(fmt.Sprintf("after: the container reaches the internet as before (the internet sees %s)", source),
		eventually(left(), func() error { return c.execFetch("web", url, source) }))
	other := "2001:db8:1234:a1:1::ab54"
	c.web("run", "web2", pubNet, other, []string{"-p", "8083:80"}) // unpublished ports of a public container are closed
	c.check(fmt.Sprintf("after: a container started afterwards (-p 8083:80) is reached directly at [%s]:80", other),
		fetchWant(g.inet, "http://"+hp(other, 80)+"/local", other, max(left(), openWait)))
	c.check(fmt.Sprintf("after: and at [%s]:8083", hostAddr),
		fetchWant(g.inet, "http://"+hp(hostAddr, 8083)+"/local", other, openWait))
	c.check(fmt.Sprintf("after: the internet reaches [%s]:8081, which leads to %s", hostAddr, target),
		fetchWant(g.inet, "http://"+hp(hostAddr, 8081)+"/local", target, openWait))
	c.check("after: the provider's router resolves the public address to the new uplink's MAC", g.routerNeighIsHost(pubNet.addr))
	if now, err := g.pluginPID(); err != nil || now != pid {
		c.check("the plugin followed the uplink without a restart", fmt.Errorf("plugin pid %d before, %d (%v) after", pid, now, err))
	}
}

// recreateUplink deletes the VPS's uplink (its peer in the router goes
// with it) and creates it again as vps_up made it, with the routes the
// engine's start added: a new interface index, a new MAC.
func (g *engine) recreateUplink() error {
	vps, router := g.prefix+"-vps", g.prefix+"-router"
	if _, err := ip("-n", vps, "link", "show", "eth0"); err == nil {
		if _, err := ip("-n", vps, "link", "del", "eth0"); err != nil {
			return err
		}
	}
	for _, args := range [][]string{
		{"-n", vps, "link", "add", "eth0", "type", "veth", "peer", "name", "vps0", "netns", router},
		{"-n", router, "addr", "add", "2001:db8:1234:a1::fffe/64", "dev", "vps0", "nodad"},
		{"-n", vps, "addr", "add", hostAddr + "/64", "dev", "eth0", "nodad"},
		{"-n", vps, "link", "set", "eth0", "up"},
		{"-n", router, "link", "set", "vps0", "up"},
		{"-n", vps, "-6", "route", "add", "default", "via", "2001:db8:1234:a1::fffe", "dev", "eth0"},
		{"-n", router, "-6", "route", "replace", ulaRange, "via", hostAddr, "dev", "vps0"},
	} {
		if _, err := ip(args...); err != nil {
			return err
		}
	}
	return nil
}
