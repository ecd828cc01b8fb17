package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// hello is what busybox httpd serves in the seed's compose file.
const hello = "Hello world!"

// netCreate creates a v6bridge network (driver and IPAM, IPv6, no IPv4
// where the engine allows) with extra docker flags; the cell removes it.
func (c *cell) netCreate(name string, args ...string) error {
	c.t.Helper()
	all := []string{"network", "create", "-d", pluginID, "--ipam-driver", pluginID, "--ipv6"}
	if c.g.modern {
		all = append(all, "--ipv4=false")
	}
	_, err := c.g.docker(append(append(all, args...), name)...)
	if err == nil {
		c.nets = append(c.nets, name)
	}
	return err
}

// mustNet is netCreate for a network the cell cannot go on without.
func (c *cell) mustNet(name string, args ...string) {
	c.t.Helper()
	if err := c.netCreate(name, args...); err != nil {
		c.t.Fatal(err)
	}
}

// runCtr runs a detached container the cell removes: docker run -d --name
// name args...
func (c *cell) runCtr(name string, args ...string) error {
	c.ctrs = append(c.ctrs, name)
	_, err := c.g.docker(append([]string{"run", "-d", "--name", name}, args...)...)
	return err
}

// serve runs the echoserver container name on network n at addr (ports 80
// and 8000), with docker flags; "" addr lets the IPAM choose.
func (c *cell) serve(name, n, addr string, flags ...string) error {
	args := []string{"--network", n, "-v", c.g.env.echo + ":/echoserver:ro"}
	if addr != "" {
		args = append(args, "--ip6", addr)
		c.addrs = append(c.addrs, addr)
	}
	args = append(append(args, flags...), "busybox", "/echoserver", "-listen", "[::]:80,[::]:8000")
	if err := c.runCtr(name, args...); err != nil {
		return err
	}
	if addr == "" {
		return nil
	}
	return c.addrIs(name, n, addr)
}

// addrOf is ctr's IPv6 address on network n, as docker inspect shows it.
func (c *cell) addrOf(ctr, n string) (string, error) {
	return c.g.docker("inspect", "-f", fmt.Sprintf("{{(index .NetworkSettings.Networks %q).GlobalIPv6Address}}", n), ctr)
}

// addrIs checks that ctr has addr on network n.
func (c *cell) addrIs(ctr, n, addr string) error {
	got, err := c.addrOf(ctr, n)
	if err == nil && got != addr {
		err = fmt.Errorf("inspect shows %s with %q on %s, want %s", ctr, got, n, addr)
	}
	return err
}

// cannotFetch succeeds when a throwaway container on network n cannot GET
// url.
func (c *cell) cannotFetch(n, url string) error {
	out, err := c.g.docker("run", "--rm", "--network", n, "busybox", "sh", "-c", `timeout 4 wget -q -O - "$0"; exit $?`, url)
	if err == nil {
		return fmt.Errorf("a container on %s reached %s: %q", n, url, out)
	}
	return nil
}

// fromInet fetches url from the internet namespace and wants body want.
func (c *cell) fromInet(url, want string) error { return fetchWant(c.g.inet, url, want, openWait) }

// fromHost fetches url from the VPS itself and wants body want.
func (c *cell) fromHost(url, want string) error { return fetchWant(c.g.vps, url, want, openWait) }

// bridges checks that the VPS has n v6bridge bridges.
func (g *engine) bridges(n int) error {
	out, err := ip("-n", g.prefix+"-vps", "-o", "link", "show", "type", "bridge")
	if err != nil {
		return err
	}
	got := strings.Count(out, ": v6b-")
	if got != n {
		return fmt.Errorf("%d v6bridge bridges, want %d:\n%s", got, n, out)
	}
	return nil
}

// routerForget makes the provider's router forget addr and ask again.
func (g *engine) routerForget(addr string) {
	ip("-n", g.prefix+"-router", "-6", "neigh", "del", addr, "dev", "vps0")
	g.rig.in("router", "busybox", "ping6", "-c", "1", "-W", "2", addr)
}

// routerResolvesAgain: the router forgets addr, asks again and gets the
// VPS's MAC.
func (g *engine) routerResolvesAgain(addr string) error {
	g.routerForget(addr)
	return g.routerNeighIsHost(addr)
}

// routerNoAnswerFor: nothing answers the router's solicitation for addr.
func (g *engine) routerNoAnswerFor(addr string) error {
	g.routerForget(addr)
	st, _ := ip("-n", g.prefix+"-router", "-6", "neigh", "show", addr, "dev", "vps0")
	if strings.Contains(st, "lladdr") && regexp.MustCompile(`REACHABLE|STALE|DELAY`).MatchString(st) {
		return fmt.Errorf("answered: %s", strings.TrimSpace(st))
	}
	return nil
}

// noProxyEntries: no kernel proxy neighbour entry on the VPS's uplink.
func (g *engine) noProxyEntries() error {
	out, err := ip("-n", g.prefix+"-vps", "-6", "neigh", "show", "proxy", "dev", "eth0")
	if err == nil && strings.TrimSpace(out) != "" {
		err = fmt.Errorf("proxy entries left: %s", out)
	}
	return err
}

// reachableTime sets the router's neighbour reachable time on vps0: 1 s
// makes it re-probe all the time, as busy routers do.
func (g *engine) reachableTime(ms int) {
	g.rig.in("router", "sysctl", "-qw", fmt.Sprintf("net.ipv6.neigh.vps0.base_reachable_time_ms=%d", ms))
}

// pings is what a run of ping counted: how many were lost of how many
// sent, and its output; err when it printed no statistics.
type pings struct {
	lost, sent int
	out        string
	err        error
}

// pingLoss pings addr from the internet count times every interval.
func (g *engine) pingLoss(addr string, count int, interval string) pings {
	out, _ := g.rig.in("inet", "busybox", "ping6", "-q", "-c", fmt.Sprint(count), "-i", interval, "-W", "3", addr)
	return pingStats(out)
}

// pingUntil pings addr from the internet every interval until stop is
// closed.
func (g *engine) pingUntil(addr, interval string, stop <-chan struct{}) pings {
	cmd := exec.Command("ip", "netns", "exec", g.prefix+"-inet", "busybox", "ping6", "-q", "-i", interval, "-W", "2", addr)
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, &b
	if err := cmd.Start(); err != nil {
		return pings{err: err}
	}
	<-stop
	cmd.Process.Signal(syscall.SIGINT)
	cmd.Wait()
	return pingStats(b.String())
}

// noneLost returns p.err, or an error when a ping was lost.
func (p pings) noneLost() error {
	if p.err == nil && p.lost > 0 {
		return fmt.Errorf("lost %d of %d:\n%s", p.lost, p.sent, p.out)
	}
	return p.err
}

func pingStats(out string) pings {
	m := regexp.MustCompile(`(\d+) packets transmitted, (\d+) packets received`).FindStringSubmatch(out)
	if m == nil {
		return pings{out: out, err: fmt.Errorf("no ping statistics: %s", out)}
	}
	var sent, got int
	fmt.Sscan(m[1], &sent)
	fmt.Sscan(m[2], &got)
	return pings{lost: sent - got, sent: sent, out: out}
}

// pluginSocket is the running plugin's socket as seen from the host: the
// managed plugin's in the engine's private /run/docker/plugins/<id>/, or
// the host service's.
func (g *engine) pluginSocket() (string, error) {
	pid, err := os.ReadFile(filepath.Join(g.rig.runDir(), "dockerd.pid"))
	if err != nil {
		return "", err
	}
	root := "/proc/" + strings.TrimSpace(string(pid)) + "/root"
	if g.hs != nil {
		return root + "/run/docker/plugins/v6bridge.sock", nil
	}
	id, err := g.docker("plugin", "inspect", "-f", "{{.Id}}", pluginID)
	if err != nil {
		return "", err
	}
	return root + "/run/docker/plugins/" + id + "/v6bridge.sock", nil
}

// vpsSocket is the plugin's socket as seen inside the VPS.
func (g *engine) vpsSocket() (string, error) {
	if g.hs != nil {
		return "/run/docker/plugins/v6bridge.sock", nil
	}
	id, err := g.docker("plugin", "inspect", "-f", "{{.Id}}", pluginID)
	return "/run/docker/plugins/" + id + "/v6bridge.sock", err
}

// pluginAPI posts body to the plugin's route and returns the answer.
func (g *engine) pluginAPI(route, body string) (string, error) {
	long, err := g.pluginSocket()
	if err != nil {
		return "", err
	}
	// a unix socket path has at most 107 bytes: dial through a short link
	sock := filepath.Join(g.rig.runDir(), "api.sock")
	os.Remove(sock)
	if err := os.Symlink(long, sock); err != nil {
		return "", err
	}
	cl := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
	resp, err := cl.Post("http://plugin/"+route, "application/json", strings.NewReader(body))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// apiRefuses: the plugin answers route with an error that says want.
func (g *engine) apiRefuses(route, body, want string) error {
	out, err := g.pluginAPI(route, body)
	if err != nil {
		return err
	}
	if !regexp.MustCompile(`"Err":"[^"]`).MatchString(out) {
		return fmt.Errorf("accepted: %s", out)
	}
	if !strings.Contains(out, want) {
		return fmt.Errorf("error lacks %q: %s", want, out)
	}
	return nil
}

// status runs v6bridge status in the VPS against the running plugin and
// wants its output to contain want.
func (g *engine) status(want string, flags ...string) error {
	sock, err := g.vpsSocket()
	if err != nil {
		return err
	}
	out, err := g.rig.inVPS(append([]string{g.env.bin, "status", "--socket", sock}, flags...)...)
	if err == nil && !strings.Contains(out, want) {
		err = fmt.Errorf("status lacks %q:\n%s", want, out)
	}
	return err
}

// logsShow: docker logs of ctr contain want.
func (g *engine) logsShow(ctr, want string) error {
	out, err := g.docker("logs", ctr)
	if err == nil && !strings.Contains(out, want) {
		err = fmt.Errorf("logs of %s lack %s: %s", ctr, want, tailLines(out, 5))
	}
	return err
}

// tailLines returns the last n lines of s.
func tailLines(s string, n int) string {
	l := strings.Split(s, "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// killPlugin kill -9s the plugin and returns its pid.
func (g *engine) killPlugin() (int, error) {
	pid, err := g.pluginPID()
	if err != nil {
		return 0, err
	}
	return pid, syscall.Kill(pid, syscall.SIGKILL)
}

// pluginRestarted: a plugin process other than old runs.
func (g *engine) pluginRestarted(old int) error {
	return eventually(30*time.Second, func() error {
		n, err := g.pluginPID()
		if err == nil && n == old {
			return fmt.Errorf("plugin pid %d still running", old)
		}
		return err
	})
}

// nft runs nft in the VPS.
func (g *engine) nft(args ...string) (string, error) {
	return g.rig.in("vps", append([]string{"nft"}, args...)...)
}

// outboundSeen: a throwaway container on network n (with docker flags)
// fetches the internet server at url and the server saw want.
func (c *cell) outboundSeen(n, url, want string, flags ...string) error {
	args := append([]string{"run", "--rm", "--network", n}, flags...)
	out, err := c.g.docker(append(args, "busybox", "sh", "-c", `timeout 10 wget -q -O - "$0"; exit $?`, url)...)
	if err == nil && out != want {
		err = fmt.Errorf("the internet server saw %q, want %s", out, want)
	}
	return err
}

// expectFail: err is not nil and its text says want (case-insensitive).
func expectFail(out string, err error, want string) error {
	if err == nil {
		return fmt.Errorf("accepted: %s", out)
	}
	if !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(want)) {
		return fmt.Errorf("refused, but the message lacks %q: %v", want, err)
	}
	return nil
}
