package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/v6bridge/v6bridge/internal/nettest"
)

// Kernel tests of the loopback forwarder against the real `v6bridge serve`
// in a throwaway network namespace: the process the engine would run,
// measured from /proc, asked over its unix socket.

// fwHost is a throwaway host: a namespace with an uplink, the plugin
// binary and a state directory that survives plugin restarts.
type fwHost struct {
	t      *testing.T
	ns     netns.NsHandle
	bin    string
	dir    string
	sock   string
	plugin *exec.Cmd
	client *http.Client
	// nofile, if set, is the plugin's descriptor limit (soft and hard).
	nofile int
}

func newFwHost(t *testing.T) *fwHost {
	t.Helper()
	ns := nettest.NewNS(t)
	h := nettest.Handle(t, ns)
	// The uplink: a veth whose peer stays in the namespace, down the
	// road to a router that is not there.
	eth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0"}, PeerName: "eth0-peer"}
	if err := h.LinkAdd(eth); err != nil {
		t.Fatalf("uplink: %v", err)
	}
	if peer, err := h.LinkByName("eth0-peer"); err != nil || h.LinkSetUp(peer) != nil {
		t.Fatalf("uplink's peer: %v", err)
	}
	addr, _ := netlink.ParseAddr("2001:db8:f1::1/64")
	addr.Flags = unix.IFA_F_NODAD
	if err := h.AddrAdd(eth, addr); err != nil {
		t.Fatalf("uplink address: %v", err)
	}
	if err := h.LinkSetUp(eth); err != nil {
		t.Fatal(err)
	}
	if err := h.RouteAdd(&netlink.Route{LinkIndex: eth.Attrs().Index, Dst: nettest.PrefixNet(netip.MustParsePrefix("::/0")),
		Gw: net.ParseIP("2001:db8:f1::fffe")}); err != nil {
		t.Fatalf("default route: %v", err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "v6bridge")
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	build := exec.Command(gobin, "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/v6bridge: %v\n%s", err, out)
	}
	sock := filepath.Join(dir, "v6bridge.sock")
	f := &fwHost{t: t, ns: ns, bin: bin, dir: dir, sock: sock}
	// A connection per request, as the engine's plugin client may open:
	// a plugin out of descriptors cannot accept it.
	f.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	t.Cleanup(f.stop)
	return f
}

// start runs `v6bridge serve` inside the namespace and waits for its API.
func (f *fwHost) start() {
	f.t.Helper()
	args := []string{"nsenter", fmt.Sprintf("--net=/proc/%d/fd/%d", os.Getpid(), int(f.ns)), "--", f.bin, "serve",
		"--socket", f.sock, "--state-dir", filepath.Join(f.dir, "state"), "--uplink", "eth0",
		"--ndp-proxy", "off", "--fastpath", "false", "--ula-prefix", "fd00:f1::/48"}
	if f.nofile > 0 {
		args = append([]string{"prlimit", fmt.Sprintf("--nofile=%d", f.nofile), "--"}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	log, err := os.OpenFile(filepath.Join(f.dir, "plugin.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		f.t.Fatal(err)
	}
	defer log.Close()
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		f.t.Fatalf("start the plugin: %v", err)
	}
	f.plugin = cmd
	for end := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, err := f.call("/Plugin.Activate", `{}`); err == nil {
			return
		}
		if time.Now().After(end) {
			f.t.Fatalf("the plugin never answered; its log:\n%s", f.log())
		}
	}
}

// stop ends the plugin as systemd or the engine does (SIGTERM).
func (f *fwHost) stop() {
	if f.plugin == nil {
		return
	}
	_ = f.plugin.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = f.plugin.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = f.plugin.Process.Kill()
		<-done
	}
	f.plugin = nil
}

func (f *fwHost) log() string {
	b, _ := os.ReadFile(filepath.Join(f.dir, "plugin.log"))
	return string(b)
}

// call posts body to the plugin's route and returns its answer; an answer
// with a non-empty Err is an error.
func (f *fwHost) call(route, body string) (map[string]any, error) {
	resp, err := f.client.Post("http://plugin"+route, "application/json", strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("%s: %s: %w", route, b, err)
	}
	if e, _ := out["Err"].(string); e != "" {
		return out, fmt.Errorf("%s: %s", route, e)
	}
	return out, nil
}

func (f *fwHost) must(route, body string) map[string]any {
	f.t.Helper()
	out, err := f.call(route, body)
	if err != nil {
		f.t.Fatalf("%v\nplugin log:\n%s", err, f.log())
	}
	return out
}

const fwNet = "f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1"

func (f *fwHost) createNetwork() {
	f.must("/NetworkDriver.CreateNetwork", `{"NetworkID":"`+fwNet+`","Options":{"com.docker.network.enable_ipv6":true,"com.docker.network.generic":{"v6bridge.mode":"nat"}},"IPv6Data":[{"Pool":"fd00:f1::/112","Gateway":"fd00:f1::1/112"}]}`)
}

// fwContainer is a container: the peer veth of an endpoint moved into a
// namespace of its own, with tcp and udp echo servers on it.
type fwContainer struct {
	id   string
	ns   netns.NsHandle
	addr netip.Addr
}

// binding is one entry of com.docker.network.portmap.
func binding(proto uint8, hostIP string, hostPort, port int) string {
	return fmt.Sprintf(`{"Proto":%d,"Port":%d,"HostIP":%q,"HostPort":%d,"HostPortEnd":%d}`, proto, port, hostIP, hostPort, hostPort)
}

// run creates an endpoint at fd00:f1::n, joins it publishing bindings and
// starts the container's echo servers on ports 80/tcp and 53/udp. The
// join's error is returned, not fatal.
func (f *fwHost) run(n int, bindings ...string) (*fwContainer, error) {
	f.t.Helper()
	c := &fwContainer{id: fmt.Sprintf("%064x", 0xf1000+n), addr: netip.MustParseAddr(fmt.Sprintf("fd00:f1::%x", n))}
	f.must("/NetworkDriver.CreateEndpoint", fmt.Sprintf(`{"NetworkID":%q,"EndpointID":%q,"Interface":{"AddressIPv6":"%s/112"}}`, fwNet, c.id, c.addr))
	out, err := f.call("/NetworkDriver.Join", fmt.Sprintf(`{"NetworkID":%q,"EndpointID":%q,"SandboxKey":"/sb/%d","Options":{"com.docker.network.portmap":[%s]}}`,
		fwNet, c.id, n, strings.Join(bindings, ",")))
	if err != nil {
		return nil, err
	}
	peer := out["InterfaceName"].(map[string]any)["SrcName"].(string)
	c.ns = nettest.NewNS(f.t)
	h := nettest.Handle(f.t, f.ns)
	l, err := h.LinkByName(peer)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := h.LinkSetNsFd(l, int(c.ns)); err != nil {
		f.t.Fatal(err)
	}
	ch := nettest.Handle(f.t, c.ns)
	if l, err = ch.LinkByName(peer); err != nil {
		f.t.Fatal(err)
	}
	a, _ := netlink.ParseAddr(c.addr.String() + "/112")
	a.Flags = unix.IFA_F_NODAD
	if err := ch.AddrAdd(l, a); err != nil {
		f.t.Fatal(err)
	}
	if err := ch.LinkSetUp(l); err != nil {
		f.t.Fatal(err)
	}
	name := "c" + strconv.Itoa(n) + ":"
	nettest.EchoConns(f.t, nettest.Open(f.t, c.ns, func() (net.Listener, error) { return net.Listen("tcp6", "[::]:80") }), name)
	nettest.EchoPackets(f.t, nettest.Open(f.t, c.ns, func() (net.PacketConn, error) { return net.ListenPacket("udp6", "[::]:53") }), name)
	return c, nil
}

// inHost runs fn on a thread in the host's namespace: sockets it opens
// are the host's.
func (f *fwHost) inHost(fn func() error) error { return nettest.Do(f.t, f.ns, fn) }

// ask sends msg to [::1]:port from the host and returns the answer.
func (f *fwHost) ask(proto string, port int, msg string) (string, error) {
	var got string
	err := f.inHost(func() error {
		c, err := net.DialTimeout(proto+"6", fmt.Sprintf("[::1]:%d", port), 3*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := c.Write([]byte(msg)); err != nil {
			return err
		}
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
			b, err := io.ReadAll(tc)
			got = string(b)
			return err
		}
		b := make([]byte, 1500)
		n, err := c.Read(b)
		got = string(b[:n])
		return err
	})
	return got, err
}

// eventuallyAnswers asks until the container answers through the port.
func (f *fwHost) eventuallyAnswers(proto string, port int, c int) {
	f.t.Helper()
	want := fmt.Sprintf("c%d:hi", c)
	var got string
	var err error
	for end := time.Now().Add(60 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if got, err = f.ask(proto, port, "hi"); err == nil && got == want {
			return
		}
	}
	f.t.Fatalf("%s [::1]:%d never reached container %d: %q, %v\nplugin log:\n%s", proto, port, c, got, err, f.log())
}

// freeLoopbackPort returns a port nothing in the host's namespace holds.
func (f *fwHost) freeLoopbackPort(proto string) int {
	f.t.Helper()
	var port int
	if err := f.inHost(func() error {
		if proto == "udp" {
			c, err := net.ListenPacket("udp6", "[::1]:0")
			if err != nil {
				return err
			}
			port = c.LocalAddr().(*net.UDPAddr).Port
			return c.Close()
		}
		l, err := net.Listen("tcp6", "[::1]:0")
		if err != nil {
			return err
		}
		port = l.Addr().(*net.TCPAddr).Port
		return l.Close()
	}); err != nil {
		f.t.Fatal(err)
	}
	return port
}

type forwardStatus struct {
	Forward string
	Bound   bool
	Problem string
}

func (f *fwHost) forwards() []forwardStatus {
	f.t.Helper()
	resp, err := f.client.Post("http://plugin/v6bridge.Status", "application/json", strings.NewReader("{}"))
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct{ Forwards []forwardStatus }
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		f.t.Fatal(err)
	}
	return doc.Forwards
}

// TestPrivilegedSquatterDuringPluginRestart: a container publishes
// [::1]:P; the plugin stops, a local program takes P, the plugin starts
// again. It starts, shows the holder in its status; other containers start
// and stop; when the program lets go, P reaches the container again
// without the container restarting.
func TestPrivilegedSquatterDuringPluginRestart(t *testing.T) {
	f := newFwHost(t)
	f.start()
	f.createNetwork()
	p := f.freeLoopbackPort("tcp")
	if _, err := f.run(0x10, binding(syscall.IPPROTO_TCP, "::1", p, 80)); err != nil {
		t.Fatal(err)
	}
	f.eventuallyAnswers("tcp", p, 0x10)

	f.stop()
	var squat net.Listener
	if err := f.inHost(func() error {
		var err error
		squat, err = net.Listen("tcp6", fmt.Sprintf("[::1]:%d", p))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer squat.Close()
	f.start()
	holder := fmt.Sprintf("held by pid %d (", os.Getpid())
	var found bool
	for _, s := range f.forwards() {
		if strings.Contains(s.Forward, fmt.Sprintf("[::1]:%d->", p)) {
			found = true
			if s.Bound || !strings.Contains(s.Problem, holder) {
				t.Errorf("the held forward's status: %+v, want a problem naming %q", s, holder)
			}
		}
	}
	if !found {
		t.Fatalf("no status for [::1]:%d: %+v", p, f.forwards())
	}
	// Other containers start and stop.
	q := f.freeLoopbackPort("udp")
	c2, err := f.run(0x20, binding(syscall.IPPROTO_UDP, "::1", q, 53))
	if err != nil {
		t.Fatalf("another container's join while [::1]:%d is held: %v", p, err)
	}
	f.eventuallyAnswers("udp", q, 0x20)
	f.must("/NetworkDriver.Leave", fmt.Sprintf(`{"NetworkID":%q,"EndpointID":%q}`, fwNet, c2.id))
	f.must("/NetworkDriver.DeleteEndpoint", fmt.Sprintf(`{"NetworkID":%q,"EndpointID":%q}`, fwNet, c2.id))

	squat.Close()
	f.eventuallyAnswers("tcp", p, 0x10)
}

// procStatus reads the plugin's resident size (bytes) and open
// descriptors.
func procStatus(pid int) (rss int64, fds int, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			rss = kb << 10
		}
	}
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return rss, len(ents), err
}

// watch samples the plugin's size and descriptors and probes its API
// until stop is closed.
type watch struct {
	maxRSS      atomic.Int64
	maxFDs      atomic.Int64
	probes      atomic.Int64
	failed      atomic.Int64
	firstFailed atomic.Value
	wg          sync.WaitGroup
}

func (f *fwHost) watch(stop <-chan struct{}) *watch {
	w := &watch{}
	pid := f.plugin.Process.Pid
	w.wg.Go(func() {
		for {
			if rss, fds, err := procStatus(pid); err == nil {
				w.maxRSS.Store(max(w.maxRSS.Load(), rss))
				w.maxFDs.Store(max(w.maxFDs.Load(), int64(fds)))
			}
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
	w.wg.Go(func() {
		for i := 0; ; i++ {
			route, body := "/Plugin.Activate", "{}"
			if i%2 == 1 {
				route = "/NetworkDriver.GetCapabilities"
			}
			w.probes.Add(1)
			if _, err := f.call(route, body); err != nil {
				if w.failed.Add(1) == 1 {
					w.firstFailed.Store(err.Error())
				}
			}
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
	return w
}

// TestPrivilegedForwardFlood: one local user floods forwarded loopback
// ports of a container: 20,000 udp sources, then 2,000 tcp connections
// held open. The plugin, with a descriptor limit of 4,096 (a unit's
// LimitNOFILE=4096), grows by at most 64 MiB and 4,096 descriptors, its
// API answers throughout, and both forwards still serve afterwards.
func TestPrivilegedForwardFlood(t *testing.T) {
	f := newFwHost(t)
	f.nofile = 4096
	f.start()
	f.createNetwork()
	tp, up := f.freeLoopbackPort("tcp"), f.freeLoopbackPort("udp")
	if _, err := f.run(0x10, binding(syscall.IPPROTO_TCP, "::1", tp, 80), binding(syscall.IPPROTO_UDP, "::1", up, 53)); err != nil {
		t.Fatal(err)
	}
	f.eventuallyAnswers("tcp", tp, 0x10)
	f.eventuallyAnswers("udp", up, 0x10)
	pid := f.plugin.Process.Pid
	baseRSS, baseFDs, err := procStatus(pid)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("before: RSS %d KiB, %d descriptors", baseRSS>>10, baseFDs)

	const (
		udpSources = 20000
		tcpConns   = 2000
		maxGrowth  = 64 << 20
		maxFDs     = 4096
		budget     = 3 * time.Minute // for each flood; ends it early, never fails it
	)
	flood := func(name string, fn func(deadline time.Time) (int, error)) {
		stop := make(chan struct{})
		w := f.watch(stop)
		n, err := fn(time.Now().Add(budget))
		time.Sleep(time.Second) // let the plugin catch up while still watched
		close(stop)
		w.wg.Wait()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		growth := w.maxRSS.Load() - baseRSS
		t.Logf("%s: %d sent; plugin peak RSS %d KiB (+%d KiB), peak %d descriptors; API %d probes, %d failed",
			name, n, w.maxRSS.Load()>>10, growth>>10, w.maxFDs.Load(), w.probes.Load(), w.failed.Load())
		if growth > maxGrowth {
			t.Errorf("%s: the plugin grew by %d MiB, at most %d allowed", name, growth>>20, maxGrowth>>20)
		}
		if w.maxFDs.Load() > maxFDs {
			t.Errorf("%s: the plugin held %d descriptors, at most %d allowed", name, w.maxFDs.Load(), maxFDs)
		}
		if w.failed.Load() > 0 || w.probes.Load() == 0 {
			t.Errorf("%s: the API failed %d of %d probes, first: %v", name, w.failed.Load(), w.probes.Load(), w.firstFailed.Load())
		}
	}

	flood("udp flood", func(deadline time.Time) (int, error) {
		sent := 0
		err := f.inHost(func() error {
			to := &net.UDPAddr{IP: net.IPv6loopback, Port: up}
			for sent < udpSources && time.Now().Before(deadline) {
				c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
				if err != nil {
					return err
				}
				_, _ = c.WriteTo([]byte("x"), to)
				c.Close()
				sent++
			}
			return nil
		})
		return sent, err
	})
	f.eventuallyAnswers("udp", up, 0x10)

	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	flood("tcp flood", func(deadline time.Time) (int, error) {
		err := f.inHost(func() error {
			for len(held) < tcpConns && time.Now().Before(deadline) {
				c, err := net.DialTimeout("tcp6", fmt.Sprintf("[::1]:%d", tp), 5*time.Second)
				if err != nil {
					return fmt.Errorf("connection %d: %w", len(held)+1, err)
				}
				held = append(held, c)
			}
			return nil
		})
		return len(held), err
	})
	f.eventuallyAnswers("tcp", tp, 0x10)
}
