package nat

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/v6bridge/v6bridge/internal/nettest"
)

// inNS runs a command (nft, ip6tables) inside ns through nsenter. Only the
// tests exec tools; the plugin never does.
func inNS(t *testing.T, ns netns.NsHandle, name string, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s not installed: %v", name, err)
	}
	full := append([]string{fmt.Sprintf("--net=/proc/%d/fd/%d", os.Getpid(), int(ns)), name}, args...)
	out, err := exec.Command("nsenter", full...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func listTable(t *testing.T, ns netns.NsHandle) string {
	t.Helper()
	return inNS(t, ns, "nft", "list", "table", "ip6", TableName)
}

func newTable(t *testing.T, ns netns.NsHandle) *Table {
	t.Helper()
	tbl, err := NewTable(TableConfig{NetNS: int(ns)})
	if err != nil {
		t.Fatal(err)
	}
	return tbl
}

func TestPrivilegedApplyTwiceIdentical(t *testing.T) {
	ns := nettest.NewNS(t)
	tbl := newTable(t, ns)
	s := state(internalNet(), natNet(), publicNet())
	snat := natNet()
	snat.Bridge, snat.SNAT = "v6b-snat", hostB
	snat.Subnet = netip.MustParsePrefix("fd12:3456:789a:8109::/64")
	snat.Gateway = netip.Addr{}
	snat.Endpoints = []Endpoint{{Addr: netip.MustParseAddr("fd12:3456:789a:8109::9"), Ports: []Mapping{
		{Proto: ProtoUDP, HostFirst: 5000, HostLast: 5002, ContainerFirst: 6000},
		{Proto: ProtoSCTP, HostFirst: 7000, HostLast: 7000, ContainerFirst: 7000, HostAddr: hostA},
	}}}
	s.Networks = append(s.Networks, snat)

	if err := tbl.Apply(s); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	first := listTable(t, ns)
	if err := tbl.Apply(s); err != nil {
		t.Fatalf("second Apply: %v", err)
	}
	if diff := cmp.Diff(first, listTable(t, ns)); diff != "" {
		t.Errorf("listing changed after applying the same state again (-first +second):\n%s", diff)
	}
	// nft decodes every rule as we wrote it: each rule of the golden text
	// appears in nft's own listing.
	r, err := Build(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range r.Chains {
		for _, rule := range c.Rules {
			want := rule.String()
			if !strings.Contains(first, want) {
				t.Errorf("nft listing lacks rule %q of chain %s", want, c.Name)
			}
		}
	}
	for _, want := range []string{
		`"v6b-nat" . "v6b-nat"`,
		"fd12:3456:789a:8109::/64 : 2001:db8:1234:a1::2",
		"2001:db8:1234:a1::1 . udp . 5002 : fd12:3456:789a:8109::9 . 6002",
		"2001:db8:1234:a1::1 . sctp . 7000 : fd12:3456:789a:8109::9 . 7000",
	} {
		if !strings.Contains(first, want) {
			t.Errorf("nft listing lacks %q:\n%s", want, first)
		}
	}
	if t.Failed() {
		t.Logf("nft listing:\n%s", first)
	}

	// Removing everything leaves the table empty.
	if err := tbl.Apply(State{}); err != nil {
		t.Fatalf("Apply(empty): %v", err)
	}
	if got, want := listTable(t, ns), "table ip6 v6bridge {\n}\n"; got != want {
		t.Errorf("after Apply(empty): %q, want %q", got, want)
	}
	if err := tbl.Delete(); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := tbl.Delete(); err != nil {
		t.Fatalf("Delete of a missing table: %v", err)
	}
	if out := inNS(t, ns, "nft", "list", "tables"); strings.Contains(out, TableName) {
		t.Errorf("table still there after Delete: %s", out)
	}
}

func TestPrivilegedWatchRestores(t *testing.T) {
	ns := nettest.NewNS(t)
	tbl := newTable(t, ns)
	if err := tbl.Apply(state(natNet(), publicNet())); err != nil {
		t.Fatal(err)
	}
	want := listTable(t, ns)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { tbl.Watch(ctx, 100*time.Millisecond); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	for _, tc := range []struct {
		name string
		args []string
	}{
		{"flush ruleset", []string{"flush", "ruleset"}},
		{"delete table", []string{"delete", "table", "ip6", TableName}},
		{"delete rule set element", []string{"flush", "set", "ip6", TableName, SetPublished}},
		{"flush chain", []string{"flush", "chain", "ip6", TableName, ChainFwdIn}},
	} {
		inNS(t, ns, "nft", tc.args...)
		deadline := time.Now().Add(5 * time.Second)
		var got string
		for time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
			out, err := exec.Command("nsenter", fmt.Sprintf("--net=/proc/%d/fd/%d", os.Getpid(), int(ns)),
				"nft", "list", "table", "ip6", TableName).CombinedOutput()
			got = string(out)
			if err == nil && got == want {
				break
			}
		}
		if got != want {
			t.Fatalf("after %s the table was not restored within 5s (-want +got):\n%s", tc.name, cmp.Diff(want, got))
		}
	}
}

func TestPrivilegedCoexistenceDockerUser(t *testing.T) {
	ns := nettest.NewNS(t)
	tbl := newTable(t, ns)
	// No ip6 filter table yet: nothing to do.
	if err := tbl.Apply(state(natNet())); err != nil {
		t.Fatal(err)
	}
	// The engine's ip6tables, as iptables-nft writes it.
	inNS(t, ns, "ip6tables", "-w", "-P", "FORWARD", "DROP")
	inNS(t, ns, "ip6tables", "-w", "-N", "DOCKER-USER")
	inNS(t, ns, "ip6tables", "-w", "-A", "DOCKER-USER", "-j", "RETURN")
	inNS(t, ns, "ip6tables", "-w", "-I", "FORWARD", "-j", "DOCKER-USER")
	// What earlier versions inserted: open to everything on v6b-*.
	inNS(t, ns, "ip6tables", "-w", "-I", "DOCKER-USER", "-o", "v6b-+", "-j", "ACCEPT")
	inNS(t, ns, "ip6tables", "-w", "-I", "DOCKER-USER", "-i", "v6b-+", "-j", "ACCEPT")
	// And the mark rule before MarkPass: everything leaving our bridges.
	inNS(t, ns, "ip6tables", "-w", "-I", "DOCKER-USER", "-m", "mark", "--mark", "0x20000000/0x20000000", "-j", "ACCEPT")

	for range 2 {
		if err := tbl.Apply(state(natNet())); err != nil {
			t.Fatal(err)
		}
	}
	c, err := NewCoexistence(TableConfig{NetNS: int(ns)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Ensure(); err != nil {
		t.Fatal(err)
	}
	want := "-N DOCKER-USER\n-A DOCKER-USER -m mark --mark 0x30000000/0x30000000 -j ACCEPT\n-A DOCKER-USER -j RETURN\n"
	if diff := cmp.Diff(want, inNS(t, ns, "ip6tables", "-w", "-S", "DOCKER-USER")); diff != "" {
		t.Errorf("DOCKER-USER after three ensures (-want +got):\n%s", diff)
	}
	if err := c.Remove(); err != nil {
		t.Fatal(err)
	}
	want = "-N DOCKER-USER\n-A DOCKER-USER -j RETURN\n"
	if diff := cmp.Diff(want, inNS(t, ns, "ip6tables", "-w", "-S", "DOCKER-USER")); diff != "" {
		t.Errorf("DOCKER-USER after Remove (-want +got):\n%s", diff)
	}
	// Findings: FORWARD drop without DOCKER-USER is reported.
	inNS(t, ns, "ip6tables", "-w", "-D", "FORWARD", "-j", "DOCKER-USER")
	inNS(t, ns, "ip6tables", "-w", "-F", "DOCKER-USER")
	inNS(t, ns, "ip6tables", "-w", "-X", "DOCKER-USER")
	fs, err := c.Ensure()
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 1 || fs[0].Kind != FindingDockerIP6Tables {
		t.Errorf("findings %+v, want one %s", fs, FindingDockerIP6Tables)
	}
}

func TestPrivilegedCoexistenceFindings(t *testing.T) {
	ns := nettest.NewNS(t)
	inNS(t, ns, "nft", "add", "table", "inet", "firewalld")
	inNS(t, ns, "nft", "add", "table", "ip6", "docker-bridges")
	c, err := NewCoexistence(TableConfig{NetNS: int(ns)})
	if err != nil {
		t.Fatal(err)
	}
	fs, err := c.Ensure()
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, f := range fs {
		kinds = append(kinds, f.Kind)
	}
	if diff := cmp.Diff([]string{FindingFirewalld, FindingDockerNFTables}, kinds); diff != "" {
		// Table order follows the kernel's; accept either order.
		if diff2 := cmp.Diff([]string{FindingDockerNFTables, FindingFirewalld}, kinds); diff2 != "" {
			t.Errorf("findings (-want +got):\n%s", diff)
		}
	}
}

// normalize sorts the elements of every set in an nft listing: nft lists
// hash sets in the kernel's order, the golden files in key order.
func normalize(text string) string {
	var out []string
	lines := strings.Split(text, "\n")
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		trimmed := strings.TrimSpace(l)
		if !strings.HasPrefix(trimmed, "elements = { ") {
			out = append(out, l)
			continue
		}
		block := strings.TrimPrefix(trimmed, "elements = { ")
		for !strings.HasSuffix(block, " }") && i+1 < len(lines) {
			i++
			block += " " + strings.TrimSpace(lines[i])
		}
		elems := strings.Split(strings.TrimSuffix(block, " }"), ", ")
		slices.Sort(elems)
		out = append(out, "elements = { "+strings.Join(elems, ", ")+" }")
	}
	return strings.Join(out, "\n")
}

// TestPrivilegedGoldenMatchesKernel applies every golden state and checks
// that nft, decoding what the kernel holds, prints the golden text.
func TestPrivilegedGoldenMatchesKernel(t *testing.T) {
	ns := nettest.NewNS(t)
	tbl := newTable(t, ns)
	for _, tc := range goldenStates() {
		t.Run(tc.name, func(t *testing.T) {
			if err := tbl.Apply(tc.s); err != nil {
				t.Fatalf("Apply: %v", err)
			}
			want, err := os.ReadFile(filepath.Join("testdata", tc.name+".golden"))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(normalize(string(want)), normalize(listTable(t, ns))); diff != "" {
				t.Errorf("nft listing differs from the golden file (-golden +nft):\n%s", diff)
			}
		})
	}
}

// listenIn listens on TCP addr inside ns until the test ends and hands each
// connection to handle.
func listenIn(t testing.TB, ns netns.NsHandle, addr string, handle func(net.Conn)) {
	t.Helper()
	ln := nettest.Open(t, ns, func() (net.Listener, error) { return net.Listen("tcp6", addr) })
	nettest.ServeConns(t, ln, handle)
}

// serve accepts TCP connections on addr inside ns and writes the client's
// address to each, so the dialer learns the source address the server saw.
func serve(t *testing.T, ns netns.NsHandle, addr string) {
	t.Helper()
	listenIn(t, ns, addr, func(c net.Conn) {
		fmt.Fprint(c, c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().String())
		c.Close()
	})
}

// dial connects to addr from inside ns and returns what the server wrote.
func dial(t *testing.T, ns netns.NsHandle, addr string, timeout time.Duration) (string, error) {
	t.Helper()
	var got string
	err := nettest.Do(t, ns, func() error {
		c, err := net.DialTimeout("tcp6", addr, timeout)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(timeout))
		b, err := io.ReadAll(c)
		got = string(b)
		return err
	})
	return got, err
}

func addBridge(t testing.TB, ns netns.NsHandle, name string, gw netip.Prefix) {
	t.Helper()
	h := nettest.Handle(t, ns)
	if err := h.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}); err != nil {
		t.Fatalf("add bridge %s: %v", name, err)
	}
	br, err := h.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.AddrAdd(br, &netlink.Addr{IPNet: nettest.PrefixNet(gw), Flags: unix.IFA_F_NODAD}); err != nil {
		t.Fatalf("address %s on %s: %v", gw, name, err)
	}
	if err := h.LinkSetUp(br); err != nil {
		t.Fatal(err)
	}
}

// attach connects a container namespace to a bridge in the host namespace
// through a veth, with the container's address and default route.
func attach(t testing.TB, host netns.NsHandle, bridge, veth string, ctr netns.NsHandle, addr netip.Prefix, gw netip.Addr) {
	t.Helper()
	nettest.Connect(t, host, veth, netip.Prefix{}, ctr, "eth0", addr)
	h := nettest.Handle(t, host)
	br, err := h.LinkByName(bridge)
	if err != nil {
		t.Fatal(err)
	}
	v, err := h.LinkByName(veth)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetMaster(v, br); err != nil {
		t.Fatalf("attach %s to %s: %v", veth, bridge, err)
	}
	route(t, ctr, netip.MustParsePrefix("::/0"), gw)
}

func route(t testing.TB, ns netns.NsHandle, dst netip.Prefix, gw netip.Addr) {
	t.Helper()
	h := nettest.Handle(t, ns)
	if err := h.RouteAdd(&netlink.Route{Dst: nettest.PrefixNet(dst), Gw: gw.AsSlice()}); err != nil {
		t.Fatalf("route %s via %s: %v", dst, gw, err)
	}
}

// TestPrivilegedDataPath builds container - host - outside namespaces and
// checks NAT66, published ports, hairpin and the public firewall with real
// TCP connections.
func TestPrivilegedDataPath(t *testing.T) {
	host, out := nettest.NewNS(t), nettest.NewNS(t)
	natCtr, pubCtr := nettest.NewNS(t), nettest.NewNS(t)

	hostAddr := netip.MustParseAddr("2001:db8:1::1")
	outAddr := netip.MustParseAddr("2001:db8:1::2")
	natGW, natAddr := netip.MustParseAddr("fd00:1::1"), netip.MustParseAddr("fd00:1::2")
	pubGW, pubAddr := netip.MustParseAddr("2001:db8:2::1"), netip.MustParseAddr("2001:db8:2::10")

	nettest.Connect(t, host, "up0", netip.PrefixFrom(hostAddr, 64), out, "eth0", netip.PrefixFrom(outAddr, 64))
	addBridge(t, host, "v6b-test", netip.PrefixFrom(natGW, 64))
	addBridge(t, host, "v6b-pub", netip.PrefixFrom(pubGW, 64))
	attach(t, host, "v6b-test", "v6h-nat", natCtr, netip.PrefixFrom(natAddr, 64), natGW)
	attach(t, host, "v6b-pub", "v6h-pub", pubCtr, netip.PrefixFrom(pubAddr, 64), pubGW)
	// The outside knows routes to both container networks, so only the
	// firewall stands between it and the containers.
	route(t, out, netip.MustParsePrefix("2001:db8:2::/64"), hostAddr)
	route(t, out, netip.MustParsePrefix("fd00:1::/64"), hostAddr)
	if err := nettest.Do(t, host, func() error {
		return os.WriteFile("/proc/sys/net/ipv6/conf/all/forwarding", []byte("1"), 0o644)
	}); err != nil {
		t.Fatalf("enable forwarding: %v", err)
	}

	s := State{
		Uplinks:   []string{"up0"},
		HostAddrs: []netip.Addr{hostAddr},
		Networks: []Network{
			{Bridge: "v6b-pub", Subnet: netip.MustParsePrefix("2001:db8:2::/64"), Gateway: pubGW, Mode: ModePublic, ICC: true, AllowPing: true,
				Endpoints: []Endpoint{{Addr: pubAddr, Ports: []Mapping{
					{Proto: ProtoTCP, HostFirst: 8082, HostLast: 8082, ContainerFirst: 80},
					{Proto: ProtoTCP, HostFirst: 9100, HostLast: 9102, ContainerFirst: 9100},
				}, Open: []Port{{Proto: ProtoTCP, First: 80, Last: 80}, {Proto: ProtoTCP, First: 9100, Last: 9102}}}}},
			{Bridge: "v6b-test", Subnet: netip.MustParsePrefix("fd00:1::/64"), Gateway: natGW, Mode: ModeNAT, ICC: true, AllowPing: true,
				Endpoints: []Endpoint{{Addr: natAddr, Ports: []Mapping{
					{Proto: ProtoTCP, HostFirst: 8080, HostLast: 8080, ContainerFirst: 80},
					{Proto: ProtoTCP, HostAddr: netip.IPv6Loopback(), HostFirst: 5432, HostLast: 5432, ContainerFirst: 80},
				}}}},
		},
	}
	tbl := newTable(t, host)
	if err := tbl.Apply(s); err != nil {
		t.Fatalf("Apply: %v", err)
	}

	serve(t, out, "[2001:db8:1::2]:9000")
	serve(t, natCtr, "[::]:80")
	serve(t, pubCtr, "[::]:80")
	serve(t, pubCtr, "[::]:81")
	serve(t, pubCtr, "[::]:9101")

	const ok, blocked = 10 * time.Second, 700 * time.Millisecond // ok: an upper bound for a loaded machine
	tests := []struct {
		name     string
		from     netns.NsHandle
		to       string
		wantSeen string // "" means the connection must fail
	}{
		{"nat outbound is masqueraded", natCtr, "[2001:db8:1::2]:9000", hostAddr.String()},
		{"published port keeps the client address", out, "[2001:db8:1::1]:8080", outAddr.String()},
		{"nat container not reachable directly", out, "[fd00:1::2]:80", ""},
		{"public published port open directly", out, "[2001:db8:2::10]:80", outAddr.String()},
		{"public unpublished port closed", out, "[2001:db8:2::10]:81", ""},
		{"public published through the host address", out, "[2001:db8:1::1]:8082", outAddr.String()},
		{"public outbound keeps its address", pubCtr, "[2001:db8:1::2]:9000", pubAddr.String()},
		{"hairpin to another network's published port", natCtr, "[2001:db8:1::1]:8082", pubGW.String()},
		{"networks isolated", natCtr, "[2001:db8:2::10]:80", ""},
		{"host reaches its published port", host, "[2001:db8:1::1]:8080", hostAddr.String()},
		{"a port range is published through the host address", out, "[2001:db8:1::1]:9101", outAddr.String()},
		{"a port range is open directly", out, "[2001:db8:2::10]:9101", outAddr.String()},
		{"a port published on ::1 is not open from outside", out, "[2001:db8:1::1]:5432", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			timeout := ok
			if tt.wantSeen == "" {
				timeout = blocked
			}
			got, err := dial(t, tt.from, tt.to, timeout)
			if tt.wantSeen == "" {
				if err == nil {
					t.Fatalf("connection to %s succeeded (server saw %s), want it blocked", tt.to, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("connection to %s: %v", tt.to, err)
			}
			if got != tt.wantSeen {
				t.Errorf("server saw %s, want %s", got, tt.wantSeen)
			}
		})
	}
}
