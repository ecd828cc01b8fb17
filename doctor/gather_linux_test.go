package doctor

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/google/nftables"

	"github.com/v6bridge/v6bridge/internal/nettest"
	"github.com/v6bridge/v6bridge/nat"
)

// TestPrivilegedDoctor builds a simulated IPv6-only host in a namespace
// (eth0 with 2001:db8:1234:a1::1/64, default route to a router namespace),
// checks that it passes, then breaks one thing at a time and checks that
// the doctor reports it.
func TestPrivilegedDoctor(t *testing.T) {
	host := nettest.NewNS(t)
	router := nettest.NewNS(t)
	nettest.Connect(t, host, "eth0", netip.MustParsePrefix("2001:db8:1234:a1::1/64"),
		router, "vps0", netip.MustParsePrefix("2001:db8:1234:a1::fffe/64"))
	h := nettest.Handle(t, host)
	eth0, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	gw := netip.MustParseAddr("2001:db8:1234:a1::fffe")
	setDefault := func(proto netlink.RouteProtocol) {
		t.Helper()
		r := &netlink.Route{LinkIndex: eth0.Attrs().Index, Dst: &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)},
			Gw: gw.AsSlice(), Protocol: proto}
		if err := h.RouteReplace(r); err != nil {
			t.Fatalf("default route: %v", err)
		}
	}
	sysctl := func(key, val string) {
		t.Helper()
		err := nettest.Do(t, host, func() error {
			return os.WriteFile(filepath.Join("/proc/sys/net/ipv6/conf", key), []byte(val), 0o644)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	setDefault(unix.RTPROT_BOOT)
	sysctl("all/forwarding", "1")
	sysctl("eth0/accept_ra", "2")
	noEngine := "unix://" + filepath.Join(t.TempDir(), "docker.sock")
	// No resolver: this test asks nobody outside (TestPrivilegedDNS64
	// simulates one).
	noResolver := filepath.Join(t.TempDir(), "resolv.conf")
	os.WriteFile(noResolver, nil, 0o644)

	gather := func(t *testing.T) (Facts, map[string]Status) {
		t.Helper()
		var f Facts
		if err := nettest.Do(t, host, func() error {
			f = Gather(context.Background(), Config{DockerHost: noEngine, ResolvConf: noResolver, PluginsDir: t.TempDir()})
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return f, verdicts(Evaluate(f))
	}
	expect := func(t *testing.T, want map[string]Status) {
		t.Helper()
		f, got := gather(t)
		for k, s := range want {
			if got[k] != s {
				t.Errorf("%s = %s, want %s (facts %+v)", k, got[k], s, f)
			}
		}
	}

	// An ndppd outside the host's namespace answers on other links: not ours.
	outside := fakeProcess(t, netns.None(), "ndppd")

	t.Run("healthy", func(t *testing.T) {
		f, got := gather(t)
		want := map[string]Status{"ipv6": OK, "forwarding": OK, "accept_ra": OK, "uplink": OK, "nftables": OK,
			"ip6tables": OK, "ndppd": OK, "docker-ipv6nat": OK, "engine": Warn}
		for k, s := range want {
			if got[k] != s {
				t.Errorf("%s = %s, want %s", k, got[k], s)
			}
		}
		if Failed(Evaluate(f)) {
			t.Errorf("healthy host fails: %+v", Evaluate(f))
		}
		if f.Uplink != "eth0" || f.Gateway != gw || len(f.UplinkGlobal) != 1 || f.RADefaultRoute {
			t.Errorf("facts: %+v", f)
		}
		// The doctor says what the kernel says, from its own namespace.
		probe := nat.ProbeFastPath(int(nettest.NewNS(t)))
		if wantFP := map[bool]Status{true: OK, false: Warn}[probe == nil]; got["fastpath"] != wantFP {
			t.Errorf("fastpath = %s (%q), want %s: the probe says %v", got["fastpath"], f.FastPathErr, wantFP, probe)
		}
		for _, tb := range tablesIn(t, host) {
			if strings.Contains(tb.Name, "probe") {
				t.Errorf("the flowtable check left table %s behind", tb.Name)
			}
		}
		_ = outside
	})
	t.Run("no forwarding", func(t *testing.T) {
		sysctl("all/forwarding", "0")
		defer sysctl("all/forwarding", "1")
		expect(t, map[string]Status{"forwarding": Warn})
	})
	t.Run("RA default route with accept_ra=1", func(t *testing.T) {
		setDefault(unix.RTPROT_RA)
		defer setDefault(unix.RTPROT_BOOT)
		expect(t, map[string]Status{"accept_ra": OK})
		sysctl("eth0/accept_ra", "1")
		defer sysctl("eth0/accept_ra", "2")
		expect(t, map[string]Status{"accept_ra": Fail})
	})
	t.Run("ip6tables FORWARD policy DROP", func(t *testing.T) {
		ip6tables, err := exec.LookPath("ip6tables")
		if err != nil {
			t.Skip("no ip6tables")
		}
		if err := nettest.Do(t, host, func() error {
			out, err := exec.Command(ip6tables, "-P", "FORWARD", "DROP").CombinedOutput()
			if err != nil {
				t.Logf("ip6tables: %s", out)
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		expect(t, map[string]Status{"ip6tables": Fail})
		if err := nettest.Do(t, host, func() error { return exec.Command(ip6tables, "-N", "DOCKER-USER").Run() }); err != nil {
			t.Fatal(err)
		}
		expect(t, map[string]Status{"ip6tables": Warn})
	})
	t.Run("ndppd running", func(t *testing.T) {
		p := fakeProcess(t, host, "ndppd")
		f, _ := gather(t)
		expect(t, map[string]Status{"ndppd": Fail})
		if len(f.Conflicting) != 1 || f.Conflicting[0].PID != p.Pid {
			t.Errorf("conflicting = %+v, want only pid %d", f.Conflicting, p.Pid)
		}
	})
	t.Run("engine answers", func(t *testing.T) {
		noEngine = serveUnix(t, func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, `{"Version":"20.10.24","ApiVersion":"1.41"}`)
		})
		f, _ := gather(t)
		if f.Engine.Version != "20.10.24" {
			t.Errorf("engine = %+v", f.Engine)
		}
	})
}

// fakeProcess starts a copy of sleep named name inside ns (netns.None():
// the current one), killed at cleanup.
func fakeProcess(t *testing.T, ns netns.NsHandle, name string) *os.Process {
	t.Helper()
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep binary")
	}
	b, err := os.ReadFile(sleep)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "300")
	start := cmd.Start
	if ns != netns.None() {
		err = nettest.Do(t, ns, start)
	} else {
		err = start()
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// comm is set at exec; wait for it.
	for i := 0; i < 100; i++ {
		if c, _ := os.ReadFile(filepath.Join("/proc", itoa(cmd.Process.Pid), "comm")); string(c) == name+"\n" {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return cmd.Process
}

func itoa(n int) string { return strconv.Itoa(n) }

// tablesIn lists the nftables tables of ns.
func tablesIn(t *testing.T, ns netns.NsHandle) []*nftables.Table {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		t.Fatal(err)
	}
	ts, err := c.ListTables()
	if err != nil {
		t.Fatal(err)
	}
	return ts
}
