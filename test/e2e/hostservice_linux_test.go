package e2e

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// hostServiceArea: v6bridge as a host service in the VPS, found by the
// engine by its bare name, instead of the managed plugin (which it
// removes, and puts back when done): networks, the seed's compose file
// with the bare name, an engine restart that keeps the service.
func hostServiceArea(t *testing.T, g *engine) {
	g.need(t)
	g.docker("plugin", "disable", "-f", pluginID)
	g.docker("plugin", "rm", "-f", pluginID)
	managed := g.state
	g.state = filepath.Join(g.rig.libDir(), "v6bridge-state-hs")
	hs, err := g.rig.startHostService(g.env.bin, g.state)
	if err != nil {
		g.state = managed
		g.installPlugin()
		t.Fatal(err)
	}
	g.hs = hs
	t.Cleanup(func() {
		hs.stop()
		g.hs, g.state = nil, managed
		if err := g.installPlugin(); err != nil {
			t.Errorf("put the managed plugin back: %v", err)
		}
	})
	c := g.cell(t)
	args := []string{"network", "create", "-d", "v6bridge", "--ipam-driver", "v6bridge", "--ipv6"}
	if g.modern {
		args = append(args, "--ipv4=false")
	}
	_, err = g.docker(append(args, "--subnet", natNet.subnet, "-o", "v6bridge.mode=nat", natNet.name)...)
	if err == nil {
		c.nets = append(c.nets, natNet.name)
	}
	c.check("host service: network create with the bare name", err)
	c.check("host service: a container gets the requested address", c.serve("web", natNet.name, natNet.addr))
	c.check("host service: a second container fetches the page", c.clientFetch(natNet.name, "http://"+hp(natNet.addr, 80)+"/local", natNet.addr))
	c.check("host service: v6bridge status without --socket finds it", func() error {
		_, err := g.rig.inVPS("env", "-u", "SOCKET", g.env.bin, "status")
		return err
	}())
	files := []string{"compose", "-f", filepath.Join(g.env.repo, "examples/seed/compose.yml")}
	if !g.modern {
		files = append(files, "-f", filepath.Join(g.env.repo, "examples/seed/compose.legacy.yml"))
	}
	files = append(files, "-p", "demo")
	c.must("rm", "-f", "web")
	c.must("network", "rm", natNet.name)
	c.ctrs, c.nets = nil, nil
	c.compose = files
	_, err = g.docker(append(files, "up", "-d")...)
	c.check("compose (driver: the bare name v6bridge): the seed's networks and busybox come up", err)
	c.check("compose: busybox has its internal address", c.addrIs("demo-busybox-1", "demo_internal", natNet.addr))
	c.check("compose: busybox has its public address", c.addrIs("demo-busybox-1", "demo_public", pubNet.addr))
	c.check("compose: a container on demo_internal fetches http://["+natNet.addr+"]",
		c.clientFetch("demo_internal", "http://"+hp(natNet.addr, 80)+"/", hello))
	c.check("compose: the host fetches http://["+pubNet.addr+"]", c.fromHost("http://"+hp(pubNet.addr, 80)+"/", hello))
	if err := g.rig.engineRestart(); err != nil {
		t.Fatal(err)
	}
	c.check("engine restart: the host service keeps running", func() error {
		if !hs.p.alive() {
			return fmt.Errorf("v6bridge serve exited")
		}
		return nil
	}())
	// containers without a restart policy stay stopped; the engine finds
	// the host service again for a new one
	const after = "fd12:3456:789a:8101:1::ab60"
	c.check("engine restart: a new container on demo_internal gets its address from the host service",
		eventually(20*time.Second, func() error {
			g.docker("rm", "-f", "after")
			return c.serve("after", "demo_internal", after)
		}))
	c.check("engine restart: the host reaches it", c.fromHost("http://"+hp(after, 80)+"/local", after))
}
