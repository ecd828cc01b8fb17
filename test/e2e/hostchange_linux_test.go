package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// hostChanges are the cases of issue 25 this file owns: what users of a
// VPS do around the plugin (a UDP service whose clients never stop
// sending, an engine whose data was wiped), on each engine.
var hostChanges = []matrixCell{
	{"udp-client-before-publish", udpClientBeforePublishCell},
	{"gc-wiped-engine", gcWipedEngineCell},
}

// A WireGuard peer on the internet keeps sending to the host's UDP port
// 51820 every 100 ms before the container exists (the host refuses them:
// the flow is tracked untranslated). `docker run -p 51820:51820/udp`
// must reach it: the plugin deletes the tracked flow when it publishes
// the port, as the engine's own bridge does. Without that, the kernel
// keeps the flow on the host for as long as the peer sends.
func udpClientBeforePublishCell(c *cell) {
	c.network(natNet)
	conn, err := dialIn(context.Background(), c.g.inet, "udp", hp(hostAddr, 51820))
	if err != nil {
		c.t.Fatal(err)
	}
	var (
		mu     sync.Mutex
		first  time.Time
		answer string
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // the peer: one socket, one source port, every 100 ms
		defer wg.Done()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			conn.Write([]byte("handshake initiation")) // ECONNREFUSED while nothing listens
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	go func() {
		defer wg.Done()
		buf := make([]byte, 1500)
		for {
			select {
			case <-stop:
				return
			default:
			}
			conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			n, err := conn.Read(buf)
			if err != nil {
				continue // refused before the publish, timeouts
			}
			mu.Lock()
			if first.IsZero() {
				first, answer = time.Now(), strings.TrimSpace(string(buf[:n]))
			}
			mu.Unlock()
		}
	}()
	c.t.Cleanup(func() { close(stop); wg.Wait(); conn.Close() })
	// Setup: the peer's flow is tracked, untranslated (the host refuses it).
	port := fmt.Sprintf("sport=%d dport=51820 [UNREPLIED]", conn.LocalAddr().(*net.UDPAddr).Port)
	if err := eventually(10*time.Second, func() error {
		out, err := exec.Command("ip", "netns", "exec", c.g.prefix+"-vps", "cat", "/proc/net/nf_conntrack").CombinedOutput()
		if err != nil || !strings.Contains(string(out), port) {
			return fmt.Errorf("the VPS tracks no flow with %q: %v", port, err)
		}
		return nil
	}); err != nil {
		c.t.Fatal(err)
	}

	c.web("run", "wg", natNet, natNet.addr, []string{"-p", "51820:51820/udp"}, "-udp", "[::]:51820")
	started := time.Now()
	err = eventually(10*time.Second, func() error { // an upper bound for a loaded machine; the peer sends every 100 ms
		mu.Lock()
		defer mu.Unlock()
		switch {
		case first.IsZero():
			return errors.New("the peer that sent before the publish got no answer from the container")
		case answer != inetAddr:
			return fmt.Errorf("the container answered %q, want the peer's address %s", answer, inetAddr)
		}
		return nil
	})
	mu.Lock()
	took := first.Sub(started).Round(10 * time.Millisecond)
	mu.Unlock()
	if err == nil {
		c.t.Logf("the peer's first answer came %s after docker run returned", took)
	}
	c.check("a UDP peer sending every 100 ms before docker run -p 51820:51820/udp reaches the container", err)
	c.check("a new peer reaches it too", udpWant(c.g.inet, hp(hostAddr, 51820), inetAddr, openWait))
}

// The engine's data is wiped (its network database lost, as after a
// reinstall or a restore of /var/lib/docker from an old backup) while the
// managed plugin keeps its state: the same --subnet is refused, and the
// refusal says to run `v6bridge gc --apply`. Run as told, on the host
// with no flags, it finds the managed plugin's socket, removes the stale
// network and its pool, and the same --subnet is accepted.
func gcWipedEngineCell(c *cell) {
	const subnet = "fd12:3456:789a:8109:1::/112"
	args := []string{"network", "create", "-d", pluginID, "--ipam-driver", pluginID, "--ipv6", "--subnet", subnet, "-o", "v6bridge.mode=nat"}
	if c.g.modern {
		args = append(args, "--ipv4=false")
	}
	// Not c.network: the wipe makes the engine forget it, gc removes it.
	c.must(append(args, "before-wipe")...)
	created := time.Now()
	err := func() error {
		r := c.g.rig
		b, err := os.ReadFile(r.runDir() + "/dockerd.cmd")
		if err != nil {
			return err
		}
		r.dockerd.stop(30 * time.Second)
		if err := os.Remove(filepath.Join(r.libDir(), "docker", "network", "files", "local-kv.db")); err != nil {
			return err
		}
		if err := r.dockerdStart(strings.Split(string(b), "\x00")); err != nil {
			return err
		}
		return eventually(30*time.Second, c.g.pluginEnabled)
	}()
	if err != nil {
		c.t.Fatalf("wipe the engine's network database: %v", err)
	}
	c.check("the wiped engine knows no such network", func() error {
		if ls, _ := c.g.docker("network", "ls", "--format", "{{.Name}}"); strings.Contains(ls, "before-wipe") {
			return fmt.Errorf("it still lists before-wipe: %s", ls)
		}
		return nil
	}())
	// A pool is reclaimed once it is older than ipam.MinReclaimAge (30 s);
	// the wiped engine's networks are days old, this one is not.
	if wait := 31*time.Second - time.Since(created); wait > 0 {
		time.Sleep(wait)
	}
	out, err := c.g.docker(append(args, "after-wipe")...)
	c.check("the same --subnet is refused, and the refusal says to run v6bridge gc --apply", func() error {
		if err == nil {
			c.nets = append(c.nets, "after-wipe")
			return fmt.Errorf("it was accepted while the plugin keeps the wiped engine's network")
		}
		if !strings.Contains(out, "v6bridge gc --apply") {
			return fmt.Errorf("the refusal does not say what to run: %s", out)
		}
		return nil
	}())
	// As the refusal says: on the host, as root, no flags, with the binary
	// the managed plugin carries (<data-root>/plugins/<id>/rootfs/v6bridge;
	// the rig's engine listens on its own socket: DOCKER_HOST is the
	// user's setting).
	err = nil
	id, ierr := c.g.docker("plugin", "inspect", "-f", "{{.Id}}", pluginID)
	if ierr != nil {
		c.t.Fatalf("the managed plugin's id: %v", ierr)
	}
	cmd := c.g.rig.inVPSCmd(filepath.Join(c.g.rig.libDir(), "docker", "plugins", strings.TrimSpace(id), "rootfs", "v6bridge"), "gc", "--apply")
	cmd.Env = append(os.Environ(), "DOCKER_HOST=unix://"+c.g.rig.sock())
	b, err := cmd.CombinedOutput()
	out = string(b)
	c.check("v6bridge gc --apply finds the managed plugin and removes the stale network", func() error {
		if err != nil {
			return fmt.Errorf("%v\n%s", err, out)
		}
		if !strings.Contains(out, "removed") || !strings.Contains(out, subnet) {
			return fmt.Errorf("it did not say it removed %s:\n%s", subnet, out)
		}
		return nil
	}())
	_, err = c.g.docker(append(args, "after-wipe")...)
	if err == nil {
		c.nets = append(c.nets, "after-wipe")
	}
	c.check("the same --subnet is accepted after gc --apply", err)
}
