package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// noRoutableV4: ctr has no IPv4 default route and no global IPv4 address
// (engines before 28 give it a link-local placeholder only).
func (c *cell) noRoutableV4(ctr string) error {
	r, err := c.g.docker("exec", ctr, "ip", "-4", "route", "show", "default")
	if err != nil {
		return err
	}
	a, err := c.g.docker("exec", ctr, "ip", "-4", "addr", "show", "scope", "global")
	if err != nil {
		return err
	}
	var global []string
	for _, l := range strings.Split(a, "\n") {
		if strings.Contains(l, "inet ") && !strings.Contains(l, " 169.254.") {
			global = append(global, strings.TrimSpace(l))
		}
	}
	if r != "" || len(global) > 0 {
		return fmt.Errorf("IPv4 default route %q, addresses %q", r, global)
	}
	return nil
}

// isolationCell: containers on two v6bridge networks reach each other only
// through published ports (hairpin through the host's address), never
// directly, while a container on the same network reaches its neighbour.
func isolationCell(c *cell) {
	c.network(natNet)
	c.network(pubNet)
	c.web("run", "natweb", natNet, natNet.addr, []string{"-p", "8081:80"})
	c.web("run", "pubweb", pubNet, pubNet.addr, nil)
	// a client on the nat network; execs cost less than throwaway containers
	c.check("a client container on the nat network", c.runCtr("natcli", "--stop-timeout", "1", "--network", natNet.name, "busybox", "sleep", "600"))
	c.check("a container on the same nat network reaches it (container to container)",
		c.execFetch("natcli", "http://"+hp(natNet.addr, 80)+"/local", natNet.addr))
	c.check("hairpin: another container on the nat network reaches its published port on the host",
		c.execFetch("natcli", "http://"+hp(hostAddr, 8081)+"/local", natNet.addr))
	c.check("hairpin: a container on another v6bridge network reaches the published port on the host",
		c.execFetch("pubweb", "http://"+hp(hostAddr, 8081)+"/local", natNet.addr))
	c.check("isolation: a container on the nat network cannot reach the public container's unpublished port",
		c.execCannot("natcli", "http://"+hp(pubNet.addr, 8000)+"/local", 2))
	c.check("isolation: a container on the public network cannot reach the nat container directly",
		c.execCannot("pubweb", "http://"+hp(natNet.addr, 80)+"/local", 2))
}

// execCannot succeeds when container ctr cannot GET url within seconds
// (in these namespaces an answer takes microseconds; a drop waits it out).
func (c *cell) execCannot(ctr, url string, seconds int) error {
	out, err := c.g.docker("exec", ctr, "sh", "-c", fmt.Sprintf(`timeout %d wget -q -O - "$0"; exit $?`, seconds), url)
	if err == nil {
		return fmt.Errorf("%s reached %s: %q", ctr, url, out)
	}
	return nil
}

// optionsArea: v6bridge.icc=false, v6bridge.allow and --internal.
func optionsArea(t *testing.T, g *engine) {
	c := g.cell(t)
	c.check("icc=false: network create", c.netCreate("noicc", "--subnet", "fd00:1cc::/112", "-o", "v6bridge.icc=false"))
	c.check("icc=false: a container starts", c.serve("iccweb", "noicc", "fd00:1cc::10"))
	c.check("icc=false: another container on the network cannot reach it", c.cannotFetch("noicc", "http://[fd00:1cc::10]/local"))
	c.check("icc=false: the host still reaches it", c.fromHost("http://[fd00:1cc::10]/local", "fd00:1cc::10"))
	const allowed = "2001:db8:1234:a1:7::10"
	c.check("v6bridge.allow=tcp/8000: network create", c.netCreate("allownet", "--subnet", "2001:db8:1234:a1:7::/112", "-o", "v6bridge.allow=tcp/8000"))
	c.check("v6bridge.allow: a container listening on 80 and 8000 starts", c.serve("allowed", "allownet", allowed))
	c.check("v6bridge.allow: port 8000 is open from the internet without -p", c.fromInet("http://"+hp(allowed, 8000)+"/local", allowed))
	c.check("v6bridge.allow: port 80 stays closed", closedTCP(g.inet, hp(allowed, 80), closedWait))
	url := c.inetServer()
	c.check("--internal: network create", c.netCreate("intern", "--subnet", "fd00:1a::/112", "--internal"))
	c.check("--internal: a container cannot reach the internet", c.cannotFetch("intern", url))
	_, err := g.docker("run", "--rm", "--network", "intern", "busybox", "ping6", "-c", "1", "-W", "3", "fd00:1a::1")
	c.check("--internal: it reaches its gateway", err)
}

// securityArea: issue 10's attacks, end to end, each failing.
func securityArea(t *testing.T, g *engine) {
	c := g.cell(t)
	const (
		pubNetS = "2001:db8:1234:a1:5ec::/112"
		pubWeb  = "2001:db8:1234:a1:5ec::80"
		spoofP  = "2001:db8:1234:a1::99" // in the provider's /64, held by nobody
		spoofU  = "fd00:dead::1"         // in no network
	)
	// 1. icc=false holds for routed traffic.
	c.check("icc=false network and a web container", func() error {
		if err := c.netCreate("secnoicc", "--subnet", "fd00:1cd::/112", "-o", "v6bridge.icc=false"); err != nil {
			return err
		}
		return c.serve("secnoiccweb", "secnoicc", "fd00:1cd::10")
	}())
	out, err := c.routedFetch("secnoicc", "fd00:1cd::1", "fd00:1cd::10")
	if err == nil {
		err = fmt.Errorf("reachable through the gateway: %s", out)
	} else if strings.Contains(out, "route-failed") {
		err = fmt.Errorf("could not add the route: %s", out)
	} else {
		err = nil
	}
	c.check("icc=false: a container routing to it through the gateway is dropped", err)
	c.check("icc=true: the same routed path works (control)", func() error {
		if err := c.netCreate("seciccnet", "--subnet", "fd00:1ce::/112"); err != nil {
			return err
		}
		if err := c.serve("seciccweb", "seciccnet", "fd00:1ce::10"); err != nil {
			return err
		}
		out, err := c.routedFetch("seciccnet", "fd00:1ce::1", "fd00:1ce::10")
		if err == nil && out != "fd00:1ce::10" {
			err = fmt.Errorf("got %q", out)
		}
		return err
	}())

	// 2. Spoofed sources reach neither the router nor the internet, nor
	// leave un-NATed.
	c.check("public network with a web container (80 published, 8000 not)", func() error {
		if err := c.netCreate("secpub", "--subnet", pubNetS); err != nil {
			return err
		}
		return c.serve("secweb", "secpub", pubWeb, "-p", "8083:80")
	}())
	spy := fmt.Sprintf(`table ip6 spy
delete table ip6 spy
table ip6 spy {
	chain in {
		type filter hook input priority 0;
		ip6 saddr %s counter
		ip6 saddr fd00::/8 counter
		ip6 saddr %s counter
	}
}
`, spoofP, pubNetS)
	if err := runStdin(spy, "ip", "netns", "exec", g.prefix+"-inet", "nft", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.rig.in("inet", "nft", "delete", "table", "ip6", "spy") })
	c.check("spoof: a public container pings from its own address", c.pingFrom("secpub", ""))
	c.check("spoof: a public container adds "+spoofP+" and pings from it", c.pingFrom("secpub", spoofP))
	c.check("spoof: a nat container adds "+spoofU+" and pings from it", c.pingFrom("seciccnet", spoofU))
	spyCount := func(src string) (int, error) {
		out, err := g.rig.in("inet", "nft", "list", "chain", "ip6", "spy", "in")
		if err != nil {
			return 0, err
		}
		m := regexp.MustCompile(`ip6 saddr ` + regexp.QuoteMeta(src) + ` counter packets (\d+)`).FindStringSubmatch(out)
		if m == nil {
			return 0, fmt.Errorf("no counter for %s:\n%s", src, out)
		}
		var n int
		fmt.Sscan(m[1], &n)
		return n, nil
	}
	none := func(src string) error {
		n, err := spyCount(src)
		if err == nil && n != 0 {
			err = fmt.Errorf("%d packets from %s reached the internet", n, src)
		}
		return err
	}
	c.check("spoof: a public container's own source reaches the internet (control)", func() error {
		n, err := spyCount(pubNetS)
		if err == nil && n == 0 {
			err = fmt.Errorf("nothing from %s reached the internet", pubNetS)
		}
		return err
	}())
	c.check("spoof: a public container sending from "+spoofP+" reaches nothing", none(spoofP))
	c.check("spoof: a nat container sending from "+spoofU+" does not leave un-NATed", none("fd00::/8"))

	// 4. ICMPv6 errors reach containers only when related.
	pid, err := g.docker("inspect", "-f", "{{.State.Pid}}", "secweb")
	if err != nil {
		t.Fatal(err)
	}
	ctrNft := func(args ...string) (string, error) {
		return run("nsenter", append([]string{"-t", pid, "-n", "nft"}, args...)...)
	}
	if err := runStdin("table ip6 spy {\n chain in {\n type filter hook input priority 0;\n icmpv6 type destination-unreachable counter\n }\n}\n",
		"nsenter", "-t", pid, "-n", "nft", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	icmpErrors := func() (int, error) {
		out, err := ctrNft("list", "chain", "ip6", "spy", "in")
		m := regexp.MustCompile(`packets (\d+)`).FindStringSubmatch(out)
		if err != nil || m == nil {
			return 0, fmt.Errorf("container counter: %v %s", err, out)
		}
		var n int
		fmt.Sscan(m[1], &n)
		return n, nil
	}
	_, err = g.rig.in("inet", "python3", "-c", `import socket, sys
dst, src = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
inv = bytes([0x60, 0, 0, 0, 0, 8, 17, 64]) + socket.inet_pton(socket.AF_INET6, dst) + socket.inet_pton(socket.AF_INET6, src) + bytes([0x30, 0x39, 0x15, 0xb3, 0, 8, 0, 0])
for _ in range(3):
    s.sendto(bytes([1, 4, 0, 0, 0, 0, 0, 0]) + inv, (dst, 0))
`, pubWeb, inetAddr)
	c.check("icmp: the internet forges destination unreachable messages to the container", err)
	time.Sleep(500 * time.Millisecond)
	c.check("icmp: a forged destination unreachable does not reach the container", func() error {
		n, err := icmpErrors()
		if err == nil && n != 0 {
			err = fmt.Errorf("the container received %d forged errors", n)
		}
		return err
	}())
	g.docker("exec", "secweb", "/echoserver", "-probe-udp", "["+inetAddr+"]:5555")
	c.check("icmp: the port unreachable about its own datagram does (control)", func() error {
		n, err := icmpErrors()
		if err == nil && n == 0 {
			err = fmt.Errorf("the container received no error about its own flow")
		}
		return err
	}())

	// 5. The driver refuses addresses another endpoint or a gateway holds.
	id, err := g.docker("network", "inspect", "-f", "{{.Id}}", "seciccnet")
	if err != nil {
		t.Fatal(err)
	}
	ep := fmt.Sprintf("e2e%061d", 1)
	c.check("CreateEndpoint with another endpoint's address is refused", g.apiRefuses("NetworkDriver.CreateEndpoint",
		`{"NetworkID":"`+id+`","EndpointID":"`+ep+`","Interface":{"AddressIPv6":"fd00:1ce::10/112"}}`, "is held by endpoint"))
	c.check("CreateEndpoint with the gateway's address is refused", g.apiRefuses("NetworkDriver.CreateEndpoint",
		`{"NetworkID":"`+id+`","EndpointID":"`+ep+`","Interface":{"AddressIPv6":"fd00:1ce::1/112"}}`, "is the gateway of network"))
	// 7. Options of the wrong JSON type are refused by name.
	c.check(`CreateNetwork with internal="yes" is refused naming the option`, g.apiRefuses("NetworkDriver.CreateNetwork",
		`{"NetworkID":"e2ebadtype","Options":{"com.docker.network.internal":"yes","com.docker.network.enable_ipv6":true},"IPv6Data":[{"Pool":"fd00:bad::/112","Gateway":"fd00:bad::1/112"}]}`,
		"com.docker.network.internal"))
	c.check("CreateNetwork with a non-map generic option is refused naming it", g.apiRefuses("NetworkDriver.CreateNetwork",
		`{"NetworkID":"e2ebadtype","Options":{"com.docker.network.generic":"v6bridge.mode=internal","com.docker.network.enable_ipv6":true},"IPv6Data":[{"Pool":"fd00:bad::/112","Gateway":"fd00:bad::1/112"}]}`,
		"com.docker.network.generic"))
}

// routedFetch: a container with NET_ADMIN on network n adds a host route
// to target via gw and fetches http://[target]/local from it.
func (c *cell) routedFetch(n, gw, target string) (string, error) {
	return c.g.docker("run", "--rm", "--network", n, "--cap-add", "NET_ADMIN", "busybox", "sh", "-c",
		`ip -6 route add "$1/128" via "$0" || { echo route-failed; exit 3; }; timeout 4 wget -q -O - "http://[$1]/local"`, gw, target)
}

// pingFrom: a container on network n pings the internet server, from src
// when given (added to its eth0 first; busybox ip knows no nodad, so DAD
// is waited out). Whether the pings arrive is the spy's to tell.
func (c *cell) pingFrom(n, src string) error {
	_, err := c.g.docker("run", "--rm", "--network", n, "--cap-add", "NET_ADMIN", "busybox", "sh", "-c",
		`if [ -n "$0" ]; then ip -6 addr add "$0/128" dev eth0 || exit 3; sleep 2.5; set -- -I "$0"; else set --; fi; ping6 -c 2 -W 1 "$@" `+inetAddr+` >/dev/null; exit 0`, src)
	return err
}

// runStdin runs a command with stdin.
func runStdin(stdin, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

// fastpathArea (issue 16): the flowtable is in place where the kernel has
// flowtables, and a live connection to a published port stops when its
// container leaves the network and does not resume when it comes back
// with the same address.
func fastpathArea(t *testing.T, g *engine) {
	c := g.cell(t)
	c.network(natNet)
	c.check("the flowtable is in place with FASTPATH=true where the kernel has flowtables, absent by default (doctor says which)", func() error {
		out, _ := g.rig.inVPS(g.env.bin, "doctor", "--resolv-conf", "/dev/null")
		m := regexp.MustCompile(`(?m)^(ok|warn) +fastpath.*$`).FindString(out)
		switch {
		case strings.Contains(m, "FASTPATH=false"): // the default: no flowtable, whatever the kernel has
			if ft, err := g.nft("list", "flowtables", "ip6"); err != nil || strings.Contains(ft, "flowtable ft") {
				return fmt.Errorf("doctor: %s, but a flowtable: %s %v", m, ft, err)
			}
		case strings.HasPrefix(m, "ok"):
			ft, err := g.nft("list", "flowtables", "ip6")
			if err != nil || !strings.Contains(ft, "flowtable ft") {
				return fmt.Errorf("doctor: %s, but no flowtable: %s %v", m, ft, err)
			}
		case strings.HasPrefix(m, "warn"):
			t.Logf("# %s", m)
		default:
			return fmt.Errorf("doctor has no fastpath check:\n%s", out)
		}
		return nil
	}())
	const addr = "fd12:3456:789a:8101:1::f7"
	c.addrs = append(c.addrs, addr)
	c.check("an echo container publishing -p 8090:7 starts",
		c.runCtr("fpecho", "--network", natNet.name, "--ip6", addr, "-p", "8090:7", "busybox", "nc", "-ll", "-p", "7", "-e", "cat"))
	log := g.rig.runDir() + "/fp-echo.log"
	os.Remove(log)
	client := exec.Command("ip", "netns", "exec", g.prefix+"-inet", "python3", "-c", `import socket, sys, time
for _ in range(50):
    try:
        s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
        break
    except OSError:
        time.sleep(0.1)
s.settimeout(0.5)
log = open(sys.argv[3], "a", buffering=1)
end = time.time() + 30
while time.time() < end:
    try:
        s.sendall(b"ping\n")
        if s.recv(64):
            log.write("%.3f\n" % time.time())
    except socket.timeout:
        pass
    except OSError:
        break
    time.sleep(0.1)
`, hostAddr, "8090", log)
	if err := client.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Process.Kill(); client.Wait() })
	echoes := func(after float64) int {
		b, _ := os.ReadFile(log)
		n := 0
		for _, f := range strings.Fields(string(b)) {
			var x float64
			fmt.Sscan(f, &x)
			if x > after {
				n++
			}
		}
		return n
	}
	c.check("a long-lived connection to ["+hostAddr+"]:8090 passes data", eventually(10*time.Second, func() error {
		if n := echoes(0); n < 10 {
			return fmt.Errorf("%d echoes", n)
		}
		return nil
	}))
	now := func() float64 { return float64(time.Now().UnixNano()) / 1e9 }
	c.must("network", "disconnect", natNet.name, "fpecho")
	t0 := now()
	time.Sleep(2 * time.Second)
	noEcho := func(since float64) error {
		if n := echoes(since); n > 0 {
			return fmt.Errorf("%d echoes after %.3f", n, since)
		}
		return nil
	}
	c.check("it stops when the container leaves the network", noEcho(t0+0.5))
	c.must("network", "connect", "--ip6", addr, natNet.name, "fpecho")
	t1 := now()
	time.Sleep(3 * time.Second)
	c.check("and does not resume when it comes back with the same address", noEcho(t1))
}
