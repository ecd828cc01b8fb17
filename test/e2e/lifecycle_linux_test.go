package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// lifecycleArea: what happens to running containers when the plugin or the
// engine goes away: kill -9 of the plugin, an engine restart, a reboot,
// plugin disable/enable (with the table deleted meanwhile), nft flush
// ruleset. Each from a fresh state.
func lifecycleArea(t *testing.T, g *engine) {
	t.Run("kill-9", func(t *testing.T) {
		c := g.cell(t)
		createConnectCell(c, pubNet, natNet)
		g.reachableTime(1000)
		defer g.reachableTime(30000)
		done := make(chan pings, 1)
		go func() { done <- g.pingLoss(pubNet.addr, 100, "0.1") }()
		time.Sleep(time.Second)
		pid, err := g.killPlugin()
		if err != nil {
			t.Fatalf("kill -9 the plugin: %v", err)
		}
		c.check("kill -9 of the plugin: the running container stays reachable", c.fromHost("http://"+hp(natNet.addr, 80)+"/local", natNet.addr))
		c.check("the engine restarts the plugin", g.pluginRestarted(pid))
		p := <-done
		if p.err == nil && p.lost > 20 {
			p.err = fmt.Errorf("lost %d of %d (0.1 s apart):\n%s", p.lost, p.sent, p.out)
		}
		c.check(fmt.Sprintf("ndp: traffic to the public container resumes within 2 s after the kill (lost %d of 100 pings 0.1 s apart)", p.lost), p.err)
		c.check("ndp: the restarted plugin answers again", eventually(10*time.Second, func() error { return g.routerResolvesAgain(pubNet.addr) }))
		// The current engine re-registers a restarted plugin asynchronously:
		// a container started in that moment can fail in the engine's own
		// remote driver proxy (docs/engines.md). A user retries; so does
		// the check.
		c.ctrs = append(c.ctrs, "c2")
		c.check("after the restart a new container starts (retried while the engine registers the restarted plugin)",
			eventually(20*time.Second, func() error {
				g.docker("rm", "-f", "c2")
				_, err := g.docker("run", "-d", "--name", "c2", "--network", natNet.name, "busybox", "sleep", "600")
				return err
			}))
		addr, _ := c.addrOf("c2", natNet.name)
		var aerr error
		if addr == "" || addr == natNet.addr || addr == "fd12:3456:789a:8101:1::1" {
			aerr = fmt.Errorf("address %q", addr)
		}
		c.check("it gets an address not in use ("+addr+")", aerr)
		c.addrs = append(c.addrs, addr)
		_, err = g.docker("exec", "c2", "sh", "-c", `timeout 10 wget -q -O /dev/null "$0"; exit $?`, "http://"+hp(natNet.addr, 80)+"/")
		c.check("and reaches the first container", err)
		t.Log("# after the plugin restart: the same publishing")
		c.published("web", []netSpec{pubNet, natNet}, 8081)
	})
	t.Run("engine-restart", func(t *testing.T) {
		c := g.cell(t)
		c.network(natNet)
		const keeper = "fd12:3456:789a:8101:1::100"
		c.check("restart=always container with a fixed address", c.serve("keeper", natNet.name, keeper, "--restart=always"))
		c.check("restart=always container without one", c.runCtr("keeper2", "--restart=always", "--stop-timeout", "1", "--network", natNet.name, "busybox", "sleep", "100000"))
		auto, _ := c.addrOf("keeper2", natNet.name)
		c.addrs = append(c.addrs, auto)
		if err := g.rig.engineRestart(); err != nil {
			t.Fatal(err)
		}
		c.check("engine restart: restart=always container back with the same address",
			eventually(30*time.Second, func() error { return c.addrIs("keeper", natNet.name, keeper) }))
		if versionAtLeast(g.api, "1.52") { // engines >= 29 name the endpoint to the IPAM
			c.check("engine restart: auto-addressed container back with the same address ("+auto+")",
				eventually(30*time.Second, func() error { return c.addrIs("keeper2", natNet.name, auto) }))
		} else {
			c.check("engine restart: auto-addressed container back with an address (old engines do not name it: docs/engines.md)",
				eventually(30*time.Second, func() error {
					a, err := c.addrOf("keeper2", natNet.name)
					if err == nil && !strings.HasPrefix(a, "fd12:3456:789a:8101:1::") {
						err = fmt.Errorf("address %q", a)
					}
					return err
				}))
		}
		c.servesAgain("engine restart", keeper)
	})
	t.Run("reboot", func(t *testing.T) {
		c := g.cell(t)
		c.network(natNet)
		c.network(pubNet)
		const keeper = "fd12:3456:789a:8101:1::100"
		c.check("restart=always container with a fixed address", c.serve("keeper", natNet.name, keeper, "--restart=always"))
		// A reboot: engine and every link gone; the plugin re-creates the
		// bridges.
		g.rig.engineDown()
		links, _ := ip("-n", g.prefix+"-vps", "-o", "link", "show")
		for _, l := range strings.Split(links, "\n") {
			if f := strings.Fields(l); len(f) > 1 {
				name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
				if strings.HasPrefix(name, "v6b") || strings.HasPrefix(name, "v6h") {
					ip("-n", g.prefix+"-vps", "link", "del", name)
				}
			}
		}
		c.check("simulated reboot: no bridge left", g.bridges(0))
		if err := g.rig.engineUp(g.v.kind, g.v.flags...); err != nil {
			t.Fatal(err)
		}
		c.check("simulated reboot: the plugin re-creates the bridges", eventually(30*time.Second, func() error { return g.bridges(2) }))
		c.check("simulated reboot: restart=always container back with the same address",
			eventually(30*time.Second, func() error { return c.addrIs("keeper", natNet.name, keeper) }))
		c.servesAgain("simulated reboot", keeper)
	})
	t.Run("disable-enable", func(t *testing.T) {
		c := g.cell(t)
		c.network(natNet)
		c.network(pubNet)
		c.web("run", "web", natNet, natNet.addr, []string{"-p", "8081:80"})
		c.web("run", "pubweb", pubNet, pubNet.addr, []string{"-p", "8082:80"})
		pub := "http://" + hp(pubNet.addr, 80) + "/local"
		c.check("the public container is reachable (control)", c.fromInet(pub, pubNet.addr))
		if _, err := g.docker("plugin", "disable", "-f", pluginID); err != nil {
			t.Fatal(err)
		}
		enabled := false
		t.Cleanup(func() {
			if !enabled {
				g.docker("plugin", "enable", pluginID)
			}
		})
		c.check("plugin disabled: the published port still works", c.fromInet("http://"+hp(hostAddr, 8081)+"/local", natNet.addr))
		c.check("plugin disabled: the public container is still reachable", c.fromInet(pub, pubNet.addr))
		c.check("plugin disabled: the router re-resolves the public container (kernel proxy entries left at stop)",
			g.routerResolvesAgain(pubNet.addr))
		_, err := g.nft("delete", "table", "ip6", "v6bridge")
		c.check("fail closed: plugin stopped, nft delete table ip6 v6bridge", err)
		c.check("fail closed: the unpublished port stays closed", closedTCP(g.inet, hp(pubNet.addr, 8000), closedWait))
		c.check("fail closed: and the published one is closed too (not opened)", closedTCP(g.inet, hp(pubNet.addr, 80), closedWait))
		if _, err := g.docker("plugin", "enable", pluginID); err != nil {
			t.Fatal(err)
		}
		enabled = true
		c.check("plugin enabled again: it took the proxy entries back", eventually(10*time.Second, g.noProxyEntries))
		c.check("plugin enabled again: the router resolves the public container", g.routerResolvesAgain(pubNet.addr))
		c.check("plugin enabled again: the published port works again", c.fromInet(pub, pubNet.addr))
	})
	t.Run("nft-flush", func(t *testing.T) {
		c := g.cell(t)
		c.network(natNet)
		c.network(pubNet)
		c.web("run", "web", natNet, natNet.addr, []string{"-p", "8081:80"})
		c.web("run", "pubweb", pubNet, pubNet.addr, nil)
		url := c.inetServer()
		c.check("the published port works (control)", c.fromInet("http://"+hp(hostAddr, 8081)+"/local", natNet.addr))
		g.nft("flush", "ruleset")
		start := time.Now()
		err := eventually(10*time.Second, func() error {
			tbl, err := g.nft("list", "table", "ip6", "v6bridge")
			if err != nil || !strings.Contains(tbl, "forward_in") {
				return fmt.Errorf("table ip6 v6bridge not back: %v", err)
			}
			_, err = g.nft("list", "table", "ip6", "v6bridge-guard")
			return err
		})
		t.Logf("# repaired after %s", time.Since(start).Round(10*time.Millisecond))
		c.check("after nft flush ruleset: table v6bridge and the guard are repaired with the plugin running", err)
		c.check("after nft flush ruleset: NAT66 recovers without a restart",
			eventually(10*time.Second, func() error { return c.outboundSeen(natNet.name, url, hostAddr) }))
		c.check("after nft flush ruleset: the published port works again", c.fromInet("http://"+hp(hostAddr, 8081)+"/local", natNet.addr))
		c.check("after nft flush ruleset: the unpublished port is closed again", closedTCP(g.inet, hp(pubNet.addr, 8000), closedWait))
	})
}

// upgradeArea: the plugin as users get it. A registry runs in the VPS on
// localhost:5000; the plugin is pushed per architecture, installed with
// docker plugin install and upgraded to a second version with a network
// in use (disable -f, pause, upgrade, enable) while the internet pings the
// container at 5/s: the container keeps its address and connectivity, the
// state directory is kept, the loss is at most 1 %. The pause stands for a
// download; make test pauses 10 s (longer than the router's 1 s reachable
// time plus its probes), make test-slow 35 s (V6B_UPGRADE_PAUSE).
// Afterwards the engine runs the upgraded plugin under the same alias and
// state directory.
func upgradeArea(t *testing.T, g *engine) {
	c := g.cell(t)
	pause := 10 * time.Second
	if g.v.name == "legacy" || os.Getenv("V6B_UPGRADE_PAUSE") != "" {
		pause = 35 * time.Second
		if s := os.Getenv("V6B_UPGRADE_PAUSE"); s != "" {
			var n int
			fmt.Sscan(s, &n)
			pause = time.Duration(n) * time.Second
		}
	}
	const reg = "localhost:5000"
	regBin := getenv("V6B_REGISTRY", toolsDir+"/registry")
	dir := filepath.Join(g.rig.libDir(), "registry")
	os.RemoveAll(dir)
	os.MkdirAll(dir, 0o755)
	conf := fmt.Sprintf("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: \":5000\"\n", dir)
	os.WriteFile(dir+".yml", []byte(conf), 0o644)
	cmd := g.rig.inVPSCmd(regBin, "serve", dir+".yml")
	p, err := start(cmd, g.rig.logDir()+"/registry.log")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.stop(5 * time.Second) })
	c.check("registry answers on "+reg, eventually(10*time.Second, func() error {
		_, err := g.rig.in("vps", "busybox", "wget", "-q", "-O", "/dev/null", "http://"+reg+"/v2/")
		return err
	}))
	build := filepath.Join(g.rig.libDir(), "release")
	push := func(tag string, arches ...string) error {
		for _, verb := range []string{"build", "push"} {
			args := []string{filepath.Join(g.env.repo, "plugin/release.sh"), verb}
			if verb == "push" {
				args = append(args, reg)
			}
			args = append(append(args, tag, build), arches...)
			cmd := exec.Command("bash", args...)
			cmd.Env = append(os.Environ(), "DOCKER_HOST=unix://"+g.rig.sock(), "DOCKER="+g.env.cli)
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("release.sh %s %s: %w: %s", verb, tag, err, tailLines(string(out), 10))
			}
		}
		return nil
	}
	c.check("push v1 for amd64 and arm64 (one tag per architecture)", push("e2e1", "amd64", "arm64"))
	tags, err := g.rig.in("vps", "busybox", "wget", "-q", "-O", "-", "http://"+reg+"/v2/v6bridge/tags/list")
	if err == nil && (!strings.Contains(tags, `"e2e1-amd64"`) || !strings.Contains(tags, `"e2e1-arm64"`)) {
		err = fmt.Errorf("tags: %s", tags)
	}
	c.check("the registry lists both architectures' tags", err)
	c.check("push v2 for amd64", push("e2e2", "amd64"))

	// the engine's plugin makes way for the one from the registry, with
	// the same alias and state directory
	g.docker("plugin", "disable", "-f", pluginID)
	g.docker("plugin", "rm", "-f", pluginID)
	idBefore, _ := os.ReadFile(filepath.Join(g.state, "instance.json"))
	settings := []string{"UPLINK=eth0", "LOG_LEVEL=debug", "METRICS=[::1]:9430", "state.source=" + g.state}
	_, err = g.docker(append([]string{"plugin", "install", "--grant-all-permissions", "--alias", pluginID, reg + "/v6bridge:e2e1-amd64"}, settings...)...)
	c.check("docker plugin install from the registry (alias "+pluginID+", UPLINK, state.source)", err)
	if err != nil {
		if err := g.installPlugin(); err != nil {
			t.Errorf("put the plugin back: %v", err)
		}
		t.FailNow()
	}
	runsVersion := func(tag string) error {
		return eventually(10*time.Second, func() error {
			if err := g.status(""); err != nil {
				return err
			}
			ref, err := g.docker("plugin", "inspect", "-f", "{{.PluginReference}}", pluginID)
			if err == nil && ref != reg+"/v6bridge:"+tag {
				err = fmt.Errorf("plugin reference %s, want %s/v6bridge:%s", ref, reg, tag)
			}
			return err
		})
	}
	c.check("the installed plugin is v1 and answers", runsVersion("e2e1-amd64"))
	if len(idBefore) == 0 {
		idBefore, _ = os.ReadFile(filepath.Join(g.state, "instance.json"))
	}
	_, err = os.Stat(filepath.Join(g.state, "instance.json"))
	c.check("its state is in state.source ("+g.state+")", err)
	const pubAddr = "2001:db8:1234:a1:1::80"
	c.check("network create public ("+pubNet.subnet+", tcp/80 open)", c.netCreate(pubNet.name, "--subnet", pubNet.subnet, "-o", "v6bridge.allow=tcp/80"))
	c.check("a public container gets its address", c.serve("pubweb", pubNet.name, pubAddr))
	url := "http://" + hp(pubAddr, 80) + "/local"
	c.check("the internet reaches it", eventually(10*time.Second, func() error { return c.fromInet(url, pubAddr) }))

	g.reachableTime(1000)
	defer g.reachableTime(30000)
	stop, done := make(chan struct{}), make(chan pings, 1)
	go func() { done <- g.pingUntil(pubAddr, "0.2", stop) }()
	time.Sleep(2 * time.Second)
	t0 := time.Now()
	var upgraded string
	err = func() error {
		if _, err := g.docker("plugin", "disable", "-f", pluginID); err != nil {
			return err
		}
		time.Sleep(pause)
		if _, err := g.docker("plugin", "upgrade", "--grant-all-permissions", "--skip-remote-check", pluginID, reg+"/v6bridge:e2e2-amd64"); err != nil {
			return err
		}
		// What the engine kept, before we set anything (README's upgrade
		// section): both engines kept them here; an engine that resets
		// them to the new version's defaults (issue 25's report) would
		// start the plugin on /var/lib/v6bridge, so set them again anyway.
		upgraded, err = g.docker("plugin", "inspect", "-f", "{{range .Settings.Mounts}}{{.Name}}={{.Source}} {{end}}{{range .Settings.Env}}{{.}} {{end}}", pluginID)
		if err != nil {
			return err
		}
		if _, err := g.docker(append([]string{"plugin", "set", pluginID}, settings...)...); err != nil {
			return err
		}
		_, err := g.docker("plugin", "enable", pluginID)
		return err
	}()
	c.check(fmt.Sprintf("disable -f, pause %s, upgrade to v2, set, enable with the network in use", pause), err)
	t.Logf("# upgrade took %s", time.Since(t0).Round(time.Second))
	time.Sleep(3 * time.Second)
	close(stop)
	pg := <-done
	if pg.err == nil && pg.lost*100 > pg.sent {
		pg.err = fmt.Errorf("lost %d of %d: more than 1 %%:\n%s", pg.lost, pg.sent, pg.out)
	}
	c.check(fmt.Sprintf("ping loss across the upgrade is at most 1 %% (lost %d of %d, 5/s)", pg.lost, pg.sent), pg.err)
	c.check("the upgraded plugin is v2 and answers", runsVersion("e2e2-amd64"))
	t.Logf("# settings right after upgrade, before set: %s", upgraded)
	err = nil
	if !strings.Contains(upgraded+" ", "state="+g.state+" ") || !strings.Contains(upgraded, "UPLINK=eth0 ") {
		err = fmt.Errorf("settings right after upgrade: %s", upgraded)
	}
	c.check("upgrade kept state.source and UPLINK (set again anyway before enable)", err)
	m, err := g.docker("plugin", "inspect", "-f", "{{range .Settings.Mounts}}{{.Name}}={{.Source}} {{end}}", pluginID)
	if err == nil && !strings.Contains(m+" ", "state="+g.state+" ") {
		err = fmt.Errorf("mounts: %s", m)
	}
	c.check("state.source is kept across the upgrade", err)
	idAfter, _ := os.ReadFile(filepath.Join(g.state, "instance.json"))
	err = nil
	if string(idAfter) != string(idBefore) {
		err = fmt.Errorf("instance.json %q, before %q", idAfter, idBefore)
	}
	c.check("same state directory identity after the upgrade", err)
	c.check("the container keeps its address", c.addrIs("pubweb", pubNet.name, pubAddr))
	c.check("the internet still reaches it", c.fromInet(url, pubAddr))
	c.check("a new container on the network after the upgrade", c.serve("pubweb2", pubNet.name, "2001:db8:1234:a1:1::81"))
	c.check("v6bridge status of the upgraded plugin lists the network", g.status(pubNet.subnet))
}

// soakArea (make test-slow): 60 s of traffic to a public container with
// the router re-probing every second loses nothing (make test's tools/ndp
// runs 10 s of it).
func soakArea(t *testing.T, g *engine) {
	c := g.cell(t)
	c.network(pubNet)
	c.web("run", "pubweb", pubNet, pubNet.addr, []string{"-p", "8082:80"})
	c.check("the internet reaches the public container", c.fromInet("http://"+hp(pubNet.addr, 80)+"/local", pubNet.addr))
	g.reachableTime(1000)
	defer g.reachableTime(30000)
	c.check("ndp soak: 60 s of traffic with the router re-probing every second loses nothing", g.pingLoss(pubNet.addr, 300, "0.2").noneLost())
}

// servesAgain checks that the container at addr serves the host again,
// within 20s, after what.
func (c *cell) servesAgain(what, addr string) {
	c.t.Helper()
	c.check(what+": it serves again", eventually(20*time.Second, func() error {
		return c.fromHost("http://"+hp(addr, 80)+"/local", addr)
	}))
}
