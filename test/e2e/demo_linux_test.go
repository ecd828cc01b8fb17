package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// demoArea is make demo: the seed scenario ("Running an IPv6-only host —
// redux") with the managed plugin, checked the way the blog's "Initial
// testing" does. It prints its checks on stdout ("ok   - ..." and "N
// passed, M failed") for make demo, which runs it alone.
func demoArea(t *testing.T, g *engine) {
	c := g.cell(t)
	passed, failed := 0, 0
	check := func(desc string, err error) {
		t.Helper()
		if err != nil {
			failed++
			fmt.Printf("FAIL - %s\n    %v\n", desc, err)
		} else {
			passed++
			fmt.Printf("ok   - %s\n", desc)
		}
		c.check(desc, err)
	}
	defer func() { fmt.Printf("%d passed, %d failed\n", passed, failed) }()
	if out, err := run(g.env.bin, "plan", "--public", "2001:db8:1234:a1::/64", "--ula", "fd12:3456:789a::/48", "--host-id", "0x8101"); err == nil {
		fmt.Printf("# The seed's address plan, as v6bridge computes it (v6bridge plan):\n#   %s\n", strings.ReplaceAll(out, "\n", "\n#   "))
	}
	fmt.Printf("#   (\"the internet\": a server at %s behind the provider's router)\n", inetAddr)
	fmt.Printf("# engine %s (API %s) in the simulated VPS %s\n", g.version, g.api, g.prefix)
	check("docker plugin ls: "+pluginID+" enabled", g.pluginEnabled())

	files := c.seedCompose()
	fmt.Printf("# docker compose -p demo up -d   (examples/seed/compose.yml, driver %s)\n", pluginID)
	_, err := g.dockerEnv([]string{"V6BRIDGE=" + pluginID}, append(files, "up", "-d")...)
	check("compose up: networks demo_internal, demo_public and demo-busybox-1", err)
	if err != nil {
		t.FailNow()
	}
	const ctr = "demo-busybox-1"
	check("busybox has "+natNet.addr+" on demo_internal", c.addrIs(ctr, "demo_internal", natNet.addr))
	check("busybox has "+pubNet.addr+" on demo_public", c.addrIs(ctr, "demo_public", pubNet.addr))
	url := c.inetServer()
	fmt.Println("# Initial testing")
	_, err = g.docker("exec", ctr, "ping6", "-c", "4", "-W", "3", inetAddr)
	check("docker exec demo-busybox-1 ping6 -c 4 "+inetAddr+" (outbound, \"the internet\")", err)
	seen, err := g.docker("exec", ctr, "sh", "-c", `timeout 10 wget -q -O - "$0"; exit $?`, url)
	fmt.Printf("#   the internet server saw the connection from: %s\n", seen)
	if err == nil && seen != hostAddr && seen != pubNet.addr {
		err = fmt.Errorf("the internet saw %q", seen)
	}
	check("outbound: the internet sees the host's or the container's public address, never a ULA", err)
	check("inbound, direct to the container: http://["+pubNet.addr+"] from the internet",
		c.fromInet("http://"+hp(pubNet.addr, 80)+"/", hello))
	check("inbound, published port on the host: http://["+hostAddr+"]:8081 from the internet",
		c.fromInet("http://"+hp(hostAddr, 8081)+"/", hello))
	check("docker run --rm --network demo_internal busybox wget -O - http://["+natNet.addr+"]",
		c.clientFetch("demo_internal", "http://"+hp(natNet.addr, 80)+"/", hello))
	check("the provider's router resolves "+pubNet.addr+" to the host's MAC (NDP proxy)", g.routerNeighIsHost(pubNet.addr))
	if _, err := g.docker("exec", ctr, "httpd", "-p", "8000", "-h", "/"); err != nil {
		t.Fatal(err)
	}
	check("a listening but unpublished port (8000) of the public container is closed (default deny)",
		closedTCP(g.inet, hp(pubNet.addr, 8000), closedWait))
	_, err = g.docker("exec", ctr, "sh", "-c", "timeout 5 wget -q -O - http://[::1]:8000/; exit $?")
	check("... while the container itself serves it", err)
	check("v6bridge status shows the published port", g.status("8081->80/tcp"))
	check("docker logs demo-busybox-1 shows the requests from the internet", g.logsShow(ctr, inetAddr))
	if os.Getenv("V6B_E2E_DEMO") == "1" && failed == 0 {
		fmt.Printf("# make demo: V6B_E2E_KEEP=1 leaves the VPS running (DOCKER_HOST=unix://%s)\n", g.rig.sock())
	}
}
