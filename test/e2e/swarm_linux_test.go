package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// TestE2ESwarm (make test-slow): a Docker Swarm of two simulated VPS behind
// the same provider router, each with its own /64, engine and managed
// plugin, set up from `v6bridge plan --swarm` (docs/swarm.md), on the
// engines of V6B_E2E_SWARM (default "current"; "legacy current" adds 20.10).
func TestE2ESwarm(t *testing.T) {
	if os.Getenv("V6B_E2E_SLOW") != "1" {
		t.Skip("slow end-to-end tests: set V6B_E2E_SLOW=1 (make test-slow)")
	}
	e := setup(t)
	for _, kind := range strings.Fields(getenv("V6B_E2E_SWARM", "current")) {
		t.Run(kind, func(t *testing.T) { swarm(t, e, kind) })
	}
}

type swarmPlan struct {
	Hosts []struct {
		Name          string   `json:"name"`
		PublicNetwork string   `json:"public_network"`
		ULAPrefix     string   `json:"ula_prefix"`
		NATNetwork    string   `json:"nat_network"`
		Commands      []string `json:"commands"`
	} `json:"hosts"`
	Manager []string `json:"manager"`
}

func swarm(t *testing.T, e *env, kind string) {
	start := time.Now()
	a := newEngine(e, variant{name: kind, kind: kind, letter: "s" + kind[:1] + "a"})
	b := newEngine(e, variant{name: kind, kind: kind, letter: "s" + kind[:1] + "b"})
	nodes := []*engine{a, b}
	pub := map[*engine]string{a: "2001:db8:1234:a1::/64", b: "2001:db8:1234:a2::/64"}
	host := map[*engine]string{a: hostAddr, b: "2001:db8:1234:a2::1"}
	rif := map[*engine]string{a: "vps0", b: "vps-" + b.prefix}
	t.Cleanup(func() {
		if t.Failed() {
			for _, g := range nodes {
				t.Logf("%s: plugin log (last 30 lines):\n%s", g.prefix, g.pluginLog(30))
			}
		}
		if !e.keep {
			b.rig.down()
			a.rig.down()
		}
	})
	c := &cell{t: t, g: a, last: time.Now()}
	if err := a.rig.up(); err != nil {
		t.Fatal(err)
	}
	if err := b.rig.addBehind(a.rig, "a2"); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 2)
	for _, g := range nodes {
		go func() {
			err := g.rig.engineUp(kind)
			if err == nil {
				err = g.rig.imageImport()
			}
			if err == nil {
				g.started = true
				g.api, err = g.docker("version", "--format", "{{.Server.APIVersion}}")
				g.modern = versionAtLeast(g.api, "1.48")
			}
			errs <- err
		}()
	}
	for range nodes {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if err := a.openNS(); err != nil {
		t.Fatal(err)
	}
	t.Logf("# engines up after %s", time.Since(start).Round(time.Second))
	const site = "fd3c:9a41:7e02::/48"
	out, err := run(e.bin, "plan", "--swarm", "--json", "--site", site, "--host", a.prefix+"="+pub[a], "--host", b.prefix+"="+pub[b])
	if err != nil {
		t.Fatal(err)
	}
	var plan swarmPlan
	if err := json.Unmarshal([]byte(out), &plan); err != nil {
		t.Fatalf("plan --swarm --json: %v: %s", err, out)
	}
	planned := map[string]int{}
	for i, h := range plan.Hosts {
		planned[h.Name] = i
	}
	ha, hb := plan.Hosts[planned[a.prefix]], plan.Hosts[planned[b.prefix]]
	var perr error
	if got := ha.PublicNetwork + " " + hb.ULAPrefix; got != "2001:db8:1234:a1:1::/112 fd3c:9a41:7e02:2::/64" {
		perr = fmt.Errorf("got %s", got)
	}
	c.check("plan --swarm gives each host its own public and ULA prefixes", perr)
	out, err = run(e.bin, "plan", "--swarm", "--site", site, "--host", "x="+pub[a], "--host", "y="+pub[a])
	c.check("plan --swarm refuses two hosts with the same /64", expectFail(out, err, "overlapping public prefixes"))

	// runPlanned runs a `docker ...` command of the plan on g's engine.
	runPlanned := func(g *engine, cmd string) error {
		w := strings.Fields(cmd)
		if len(w) == 0 || w[0] != "docker" {
			return fmt.Errorf("not a docker command: %s", cmd)
		}
		_, err := g.docker(w[1:]...)
		return err
	}
	for _, g := range nodes {
		cmd := e.cmdPluginCreate(g)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("plugin/create.sh on %s: %v: %s", g.prefix, err, out)
		}
		g.docker("plugin", "set", pluginID, "LOG_LEVEL=debug")
		cmds := plan.Hosts[planned[g.prefix]].Commands
		c.check(g.prefix+": the plan's plugin settings", runPlanned(g, cmds[0]))
		_, err := g.docker("plugin", "enable", pluginID)
		c.check(g.prefix+": plugin enabled", err)
		for _, cmd := range cmds[1:] {
			c.check(g.prefix+": "+strings.TrimPrefix(cmd, "docker network create "), runPlanned(g, cmd))
		}
	}
	_, err = a.docker("swarm", "init", "--advertise-addr", host[a])
	c.check("swarm init --advertise-addr "+host[a]+" on "+a.prefix, err)
	token, _ := a.docker("swarm", "join-token", "-q", "worker")
	_, err = b.docker("swarm", "join", "--token", token, "--advertise-addr", host[b], "["+host[a]+"]:2377")
	c.check("swarm join from "+b.prefix+" over IPv6", err)
	c.check("two nodes ready", eventually(30*time.Second, func() error {
		out, err := a.docker("node", "ls", "--format", "{{.Status}}")
		if err == nil && strings.Count(out, "Ready") != 2 {
			err = fmt.Errorf("nodes: %s", out)
		}
		return err
	}))
	for _, cmd := range plan.Manager {
		c.check(a.prefix+" (manager): "+strings.TrimPrefix(cmd, "docker network create "), runPlanned(a, cmd))
	}
	const port = "8090"
	// busybox as PID 1 ignores SIGTERM: a short grace period keeps service rm quick
	_, err = a.docker("service", "create", "-d", "--no-resolve-image", "--name", "web", "--replicas", "2", "--replicas-max-per-node", "1",
		"--stop-grace-period", "1s", "--network", "public", "--publish", "mode=host,target=80,published="+port,
		"busybox", "sh", "-c", "hostname > /index.html && exec httpd -f -h /")
	c.check("service web: 2 replicas, one per node, --publish mode=host,published="+port, err)
	_, err = a.docker("service", "create", "-d", "--no-resolve-image", "--name", "nat", "--replicas", "2", "--replicas-max-per-node", "1",
		"--stop-grace-period", "1s", "--network", "internal", "busybox", "sleep", "3600")
	c.check("service nat: 2 replicas on the nat network", err)
	task := func(g *engine, svc string) string {
		out, _ := g.docker("ps", "-q", "--filter", "label=com.docker.swarm.service.name="+svc, "--filter", "status=running")
		f := strings.Fields(out)
		if len(f) == 0 {
			return ""
		}
		return f[0]
	}
	eachNode := func(svc string) error {
		return eventually(60*time.Second, func() error {
			for _, g := range nodes {
				if task(g, svc) == "" {
					return fmt.Errorf("no running task of %s on %s", svc, g.prefix)
				}
			}
			return nil
		})
	}
	c.check("web runs a task on each node", eachNode("web"))
	c.check("nat runs a task on each node", eachNode("nat"))
	taskAddr := func(g *engine, svc, n string) string {
		out, _ := g.docker("inspect", "-f", fmt.Sprintf("{{(index .NetworkSettings.Networks %q).GlobalIPv6Address}}", n), task(g, svc))
		return out
	}
	inPrefix := func(addr, prefix string) error {
		net := strings.TrimSuffix(prefix, "/112")
		if net == prefix || !strings.HasPrefix(addr, net) || addr == net {
			return fmt.Errorf("address %q is not in %s", addr, prefix)
		}
		return nil
	}
	web, name := map[*engine]string{}, map[*engine]string{}
	for _, g := range nodes {
		h := plan.Hosts[planned[g.prefix]]
		web[g], name[g] = taskAddr(g, "web", "public"), task(g, "web")
		if len(name[g]) > 12 {
			name[g] = name[g][:12]
		}
		c.check(g.prefix+": the web task's address is from its plan ("+h.PublicNetwork+")", inPrefix(web[g], h.PublicNetwork))
		c.check(g.prefix+": the nat task's address is from its ULA /64 ("+h.NATNetwork+")", inPrefix(taskAddr(g, "nat", "internal"), h.NATNetwork))
		c.check(g.prefix+": the internet reaches the task at its public address",
			eventually(10*time.Second, func() error { return fetchWant(a.inet, "http://"+hp(web[g], 80)+"/", name[g], openWait) }))
		c.check(g.prefix+": the router learnt the task's address from its NDP answer", func() error {
			link, _ := ip("-n", g.prefix+"-vps", "link", "show", "eth0")
			neigh, _ := ip("-n", a.prefix+"-router", "-6", "neigh", "show", web[g], "dev", rif[g])
			if got, want := fieldAfter(neigh, "lladdr"), fieldAfter(link, "link/ether"); got != want || want == "" {
				return fmt.Errorf("router: %s -> %q on %s, want %q", web[g], got, rif[g], want)
			}
			return nil
		}())
		c.check(g.prefix+": the internet reaches the task via the host port ["+host[g]+"]:"+port,
			fetchWant(a.inet, "http://["+host[g]+"]:"+port+"/", name[g], openWait))
	}
	taskFetch := func(g *engine, svc, url string) (string, error) {
		return g.docker("exec", task(g, svc), "sh", "-c", `timeout 8 wget -q -O - "$0"; exit $?`, url)
	}
	want := func(out string, err error, w string) error {
		if err == nil && out != w {
			err = fmt.Errorf("got %q, want %q", out, w)
		}
		return err
	}
	out, err = taskFetch(a, "web", "http://"+hp(web[b], 80)+"/")
	c.check(a.prefix+"'s task reaches "+b.prefix+"'s task at its public address (via the router)", want(out, err, name[b]))
	out, err = taskFetch(b, "web", "http://"+hp(web[a], 80)+"/")
	c.check(b.prefix+"'s task reaches "+a.prefix+"'s task at its public address (via the router)", want(out, err, name[a]))
	out, err = taskFetch(b, "nat", "http://"+hp(web[a], 80)+"/")
	c.check(b.prefix+"'s nat task reaches "+a.prefix+"'s web task (NAT66, public address)", want(out, err, name[a]))
	out, err = a.docker("exec", task(a, "web"), "sh", "-c", `timeout 3 wget -q -O - "$0"; exit $?`, "http://"+hp(taskAddr(b, "nat", "internal"), 80)+"/")
	if err == nil {
		err = fmt.Errorf("reachable: %s", out)
	} else {
		err = nil
	}
	c.check(b.prefix+"'s ULA /64 is local: "+a.prefix+"'s task cannot reach "+b.prefix+"'s nat task", err)

	_, err = a.docker("service", "rm", "web", "nat")
	c.check("service rm web nat", err)
	_, err = a.docker("network", "rm", "public", "internal")
	c.check("network rm public internal (manager)", err)
	for _, g := range nodes {
		// a worker tears its tasks and the network down on its own time
		c.check(g.prefix+": no task, network, bridge, veth or state left", eventually(90*time.Second, func() error {
			var left []string
			if out, _ := g.docker("ps", "-aq", "--filter", "label=com.docker.swarm.task"); out != "" {
				left = append(left, "tasks "+out)
			}
			if out, _ := g.docker("network", "ls", "-q", "--filter", "driver="+pluginID); out != "" {
				left = append(left, "networks "+out)
			}
			owned, err := g.owned()
			if err != nil {
				return err
			}
			// ipam/ula.json and instance.json outlive every network by design
			left = append(left, owned...)
			if len(left) > 0 {
				return fmt.Errorf("left on %s: %s", g.prefix, strings.Join(left, ", "))
			}
			return nil
		}))
		_, err := g.docker("network", "rm", "public-cfg", "internal-cfg")
		c.check(g.prefix+": config-only networks removed", err)
	}
	t.Logf("# swarm e2e took %s", time.Since(start).Round(time.Second))
}
