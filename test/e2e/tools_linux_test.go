package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// toolsArea: what does not depend on the engine, once: the address plan
// (networks without --subnet), doctor, status, metrics, migrate, refusals
// through the engine, a second instance, NDP answers.
func toolsArea(t *testing.T, g *engine) {
	t.Run("plan-doctor", func(t *testing.T) {
		c := g.cell(t)
		subnet := func(n string) string {
			out, _ := g.docker("network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}} {{end}}", n)
			for _, f := range strings.Fields(out) {
				if strings.Contains(f, ":") {
					return f
				}
			}
			return ""
		}
		c.check("plan: network create without --subnet", c.netCreate("autonet"))
		sub := subnet("autonet")
		c.check("plan: it got a ULA /112 of the plan ("+sub+")", matches(`^fd[0-9a-f:]*::/112$`, sub))
		c.check("plan: a second one gets another subnet", c.netCreate("autonet2"))
		if s2 := subnet("autonet2"); s2 == "" || s2 == sub {
			c.check("plan: the subnets differ", fmt.Errorf("%q and %q", sub, s2))
		} else {
			c.check("plan: the subnets differ", nil)
		}
		c.check("plan: a public network without --subnet (--ipam-opt v6bridge.mode=public)",
			c.netCreate("autopub", "--ipam-opt", "v6bridge.mode=public"))
		pub := subnet("autopub")
		c.check("plan: it got a /112 of the host's /64 ("+pub+")", matches(`^2001:db8:1234:a1:[0-9a-f]+::/112$`, pub))
		c.check("plan: a container on the automatic network starts", c.serve("autoweb", "autonet", ""))
		addr, _ := c.addrOf("autoweb", "autonet")
		c.addrs = append(c.addrs, addr)
		c.check("plan: its address "+addr+" is in "+sub, matches("^"+regexp.QuoteMeta(strings.TrimSuffix(sub, "::/112"))+"::[0-9a-f]+$", addr))
		c.check("plan: another container reaches it", c.clientFetch("autonet", "http://"+hp(addr, 80)+"/local", addr))
		out, _ := g.rig.inVPS("env", "DOCKER_HOST=unix://"+g.rig.sock(), g.env.bin, "doctor", "--resolv-conf", "/dev/null")
		c.check("doctor in the VPS reports forwarding, the on-link /64 and the plugin (found without --socket)",
			allMatch(out, `(?m)^ok +forwarding`, `(?m)^ok +provider +on-link /64`, `(?m)^ok +plugin +v6bridge answers at /run/docker/plugins/`))
	})
	t.Run("status-metrics", func(t *testing.T) {
		c := g.cell(t)
		c.network(natNet)
		c.network(pubNet)
		c.web("run", "web", natNet, natNet.addr, []string{"-p", "8081:80"})
		c.web("run", "pubweb", pubNet, pubNet.addr, []string{"-p", "8082:80"})
		c.check("the internet reaches the public container (NDP answered)", c.fromInet("http://"+hp(pubNet.addr, 80)+"/local", pubNet.addr))
		c.check("v6bridge status shows the published ports", g.status("8081->80/tcp"))
		c.check("v6bridge status --json lists the NDP counters", g.status(`"NDP"`, "--json"))
		out, err := g.rig.inVPS("env", "-u", "SOCKET", g.env.bin, "status")
		if err == nil && !strings.Contains(out, pubNet.addr) {
			err = fmt.Errorf("status lacks %s:\n%s", pubNet.addr, out)
		}
		c.check("status without --socket finds the plugin and lists the public address", err)
		g.nft("flush", "ruleset") // a repair to count
		c.check("metrics: [::1]:9430/metrics parses (expfmt) with non-zero API, NDP, firewall repair counters",
			eventually(10*time.Second, func() error {
				_, err := g.rig.in("vps", g.env.prom, "-url", "http://[::1]:9430/metrics", "-nonzero",
					"v6bridge_build_info,v6bridge_api_requests_total,v6bridge_api_request_duration_seconds,v6bridge_ndp_solicitations_received_total,v6bridge_ndp_solicitations_answered_total,v6bridge_ndp_advertisements_sent_total,v6bridge_firewall_applies_total,v6bridge_firewall_repairs_total,v6bridge_reconcile_runs_total")
				return err
			}))
	})
	t.Run("ndp", func(t *testing.T) {
		c := g.cell(t)
		c.network(pubNet)
		c.web("run", "pubweb", pubNet, pubNet.addr, []string{"-p", "8082:80"})
		c.check("the internet reaches the public container", c.fromInet("http://"+hp(pubNet.addr, 80)+"/local", pubNet.addr))
		c.check("ndp: the router resolves the public container to the VPS's MAC", g.routerNeighIsHost(pubNet.addr))
		c.check("ndp: an unused address of the /112 gets no answer", g.routerNoAnswerFor("2001:db8:1234:a1:1::77"))
		g.reachableTime(1000)
		p := g.pingLoss(pubNet.addr, 50, "0.2")
		g.reachableTime(30000)
		c.check("ndp soak: 10 s of traffic with the router re-probing every second loses nothing", p.noneLost())
		c.must("rm", "-f", "pubweb")
		c.check("ndp: after docker rm the address is no longer answered",
			eventually(5*time.Second, func() error { return g.routerNoAnswerFor(pubNet.addr) }))
	})
	t.Run("migrate", func(t *testing.T) { migrateCell(g.cell(t)) })
	t.Run("refusals", func(t *testing.T) {
		// The refusals are unit tests (driver TestCreateNetworkRefusals, ipam
		// tests); here the ones the engine mediates, and that a refusal
		// through the engine leaves nothing behind.
		c := g.cell(t)
		c.network(natNet)
		c.web("run", "web", natNet, natNet.addr, nil)
		// Engines before 28 ask for the IPv4 placeholder address before the
		// IPv6 one and do not release it when the IPv6 request is refused;
		// v6bridge frees those with the network (the cell's cleanup checks).
		owned := func() string {
			all, _ := g.owned()
			var out []string
			for _, o := range all {
				if !strings.HasPrefix(o, "state ipam/addrs/v4placeholder") {
					out = append(out, o)
				}
			}
			return strings.Join(out, ", ")
		}
		before := owned()
		for _, r := range []struct {
			desc, want string
			args       []string
		}{
			{"an unknown option", "v6bridge.colour", []string{"--subnet", "fd00:11::/112", "-o", "v6bridge.colour=blue"}},
			{"overlapping another v6bridge pool", "overlap", []string{"--subnet", "fd12:3456:789a:8101:1::/120"}},
			{"the host's own /64", "2001:db8:1234:a1::/64", []string{"--subnet", "2001:db8:1234:a1::/64"}},
		} {
			args := append([]string{"network", "create", "-d", pluginID, "--ipam-driver", pluginID, "--ipv6"}, r.args...)
			out, err := g.docker(append(args, "bad")...)
			if err == nil {
				c.nets = append(c.nets, "bad")
			}
			c.check("refused through the engine: "+r.desc, expectFail(out, err, r.want))
		}
		for _, r := range []struct{ desc, addr, want string }{
			{"--ip6 already in use", natNet.addr, natNet.addr},
			{"--ip6 the subnet-router anycast address", "fd12:3456:789a:8101:1::", "fd12:3456:789a:8101:1::"},
			{"--ip6 outside the subnet", "fd99::5", "fd99::5"},
		} {
			out, err := g.docker("run", "--rm", "--network", natNet.name, "--ip6", r.addr, "busybox", "true")
			c.check("refused through the engine: "+r.desc, expectFail(out, err, r.want))
		}
		g.docker("container", "prune", "-f")
		var err error
		if after := owned(); before != after {
			err = fmt.Errorf("before: %s\nafter: %s", before, after)
		}
		c.check("the refusals left nothing behind (links, state files)", err)
		err = nil
		if n, _ := g.docker("network", "ls", "-q", "--filter", "name=bad"); n != "" {
			err = fmt.Errorf("networks: %s", n)
		}
		c.check("no refused network exists in the engine", err)
		out, err := g.docker("network", "create", "-d", "v6bridge", "--ipv6", "--subnet", "fd00:99::/112", "bare")
		if err == nil {
			c.nets = append(c.nets, "bare")
		}
		if ferr := expectFail(out, err, "not found"); ferr != nil {
			err = expectFail(out, err, "could not resolve driver")
		} else {
			err = nil
		}
		c.check("the bare name is not a managed plugin's name (engines want the tag)", err)
	})
	t.Run("second-instance", func(t *testing.T) {
		c := g.cell(t)
		c.network(pubNet)
		c.web("run", "pubweb", pubNet, pubNet.addr, []string{"-p", "8082:80"})
		second := func(state string, want ...string) error {
			out, err := g.rig.inVPS("timeout", "20", g.env.bin, "serve", "--state-dir", state, "--uplink", "eth0",
				"--socket", "/run/docker/plugins/v6bridge-second.sock")
			if err == nil {
				return fmt.Errorf("it started: %s", out)
			}
			for _, w := range want {
				if !strings.Contains(out, w) {
					return fmt.Errorf("no %q in:\n%s", w, tailLines(out, 5))
				}
			}
			return nil
		}
		c.check("a second instance on the plugin's state directory refuses, naming the first",
			second(g.state, "state directory in use by another v6bridge", "v6bridge.sock"))
		other := filepath.Join(g.rig.libDir(), "other-state")
		c.check("a second instance on another state directory refuses, naming the plugin's",
			second(other, "belong to v6bridge instance", g.state))
		os.RemoveAll(other)
		c.check("the plugin's container is still reached after both", c.fromInet("http://"+hp(pubNet.addr, 80)+"/local", pubNet.addr))
	})
}

// migrateCell: v6bridge migrate turns the seed's own ndppd.conf and
// compose file (with its ipv6nat service) into a v6bridge compose file,
// which then passes the seed's checks.
func migrateCell(c *cell) {
	g := c.g
	dir := filepath.Join(g.rig.libDir(), "migrate")
	os.RemoveAll(dir)
	os.MkdirAll(dir, 0o755)
	for _, f := range []string{"ndppd.conf", "docker-compose.yml"} {
		b, err := os.ReadFile(filepath.Join(g.env.repo, "migrate/testdata/seed", f))
		if err != nil {
			c.t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, f), b, 0o644)
	}
	_, err := run(g.env.bin, "migrate", "--ndppd", dir+"/ndppd.conf", "--compose", dir+"/docker-compose.yml", "--driver", pluginID, "--write")
	c.check("migrate: the seed's ndppd.conf and compose file translate (--write)", err)
	files := []string{"compose", "-f", dir + "/docker-compose.v6bridge.yml"}
	if !g.modern {
		files = append(files, "-f", filepath.Join(g.env.repo, "examples/seed/compose.legacy.yml"))
	}
	files = append(files, "-p", "demo")
	c.compose = files
	c.addrs = append(c.addrs, pubNet.addr, natNet.addr)
	if _, err := g.docker(append(files, "up", "-d")...); err != nil {
		c.t.Fatalf("migrate: the migrated compose file does not come up: %v", err)
	}
	c.check("migrate: the migrated compose file comes up (without the ipv6nat service)", nil)
	const ctr = "demo-busybox-1"
	c.check("migrate: busybox has its public address", c.addrIs(ctr, "demo_public", pubNet.addr))
	url := c.inetServer()
	out, err := g.docker("exec", ctr, "sh", "-c", `timeout 10 wget -q -O - "$0"; exit $?`, url)
	if err == nil && out == "" {
		err = fmt.Errorf("empty answer")
	}
	c.check("migrate: busybox reaches the internet (the seed's outbound check)", err)
	c.check("migrate: the internet reaches http://["+pubNet.addr+"] (NDP answered by v6bridge)", c.fromInet("http://"+hp(pubNet.addr, 80)+"/", hello))
	c.check("migrate: the router resolves it to the VPS's MAC", g.routerNeighIsHost(pubNet.addr))
	c.check("migrate: the internet reaches the published port ["+hostAddr+"]:8081", c.fromInet("http://"+hp(hostAddr, 8081)+"/", hello))
	c.check("migrate: a container on demo_internal fetches http://["+natNet.addr+"]", c.clientFetch("demo_internal", "http://"+hp(natNet.addr, 80)+"/", hello))
	c.check("migrate: docker logs show the internet client's address", g.logsShow(ctr, inetAddr))
}

func matches(re, s string) error {
	if !regexp.MustCompile(re).MatchString(s) {
		return fmt.Errorf("%q does not match %s", s, re)
	}
	return nil
}

func allMatch(s string, res ...string) error {
	for _, re := range res {
		if !regexp.MustCompile(re).MatchString(s) {
			return fmt.Errorf("no line matching %s in:\n%s", re, s)
		}
	}
	return nil
}
