package nat

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"

	"github.com/v6bridge/v6bridge/internal/nettest"
)

// The attacks of issue 10 on the data path, played in namespaces without an
// engine: each test shows what must not pass does not pass, next to a
// control that shows the same path works when it should.

func sysctl(t *testing.T, ns netns.NsHandle, key, val string) {
	t.Helper()
	if err := nettest.Do(t, ns, func() error {
		return os.WriteFile("/proc/sys/"+strings.ReplaceAll(key, ".", "/"), []byte(val), 0o644)
	}); err != nil {
		t.Fatalf("sysctl %s=%s: %v", key, val, err)
	}
}

func addAddr(t *testing.T, ns netns.NsHandle, dev string, p netip.Prefix) {
	t.Helper()
	h := nettest.Handle(t, ns)
	l, err := h.LinkByName(dev)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.AddrAdd(l, &netlink.Addr{IPNet: nettest.PrefixNet(p), Flags: unix.IFA_F_NODAD}); err != nil {
		t.Fatalf("add %s to %s: %v", p, dev, err)
	}
}

// udpSink listens on addr inside ns and records the source address of
// every datagram.
type udpSink struct {
	mu   sync.Mutex
	seen []netip.Addr
}

func listenUDP(t *testing.T, ns netns.NsHandle, addr string) *udpSink {
	t.Helper()
	pc := nettest.Open(t, ns, func() (net.PacketConn, error) { return net.ListenPacket("udp6", addr) })
	s := &udpSink{}
	nettest.ServePackets(t, pc, func(_ []byte, from net.Addr) {
		s.mu.Lock()
		s.seen = append(s.seen, from.(*net.UDPAddr).AddrPort().Addr().Unmap())
		s.mu.Unlock()
	})
	return s
}

// reset forgets what was seen; got waits up to d for a datagram and
// returns the sources seen.
func (s *udpSink) reset() { s.mu.Lock(); s.seen = nil; s.mu.Unlock() }

func (s *udpSink) got(d time.Duration) []netip.Addr {
	deadline := time.Now().Add(d)
	for {
		s.mu.Lock()
		n := len(s.seen)
		out := append([]netip.Addr(nil), s.seen...)
		s.mu.Unlock()
		if n > 0 || time.Now().After(deadline) {
			return out
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// delivered sends from src inside ns to dst until sink sees a datagram, for
// up to 3 s (the first datagrams may wait for neighbour discovery), and
// returns the sources seen; with want false it sends once and waits 700 ms.
func delivered(t *testing.T, ns netns.NsHandle, src netip.Addr, dst string, sink *udpSink, want bool) []netip.Addr {
	t.Helper()
	sink.reset()
	if !want {
		sendUDP(t, ns, src, dst)
		return sink.got(700 * time.Millisecond)
	}
	deadline := time.Now().Add(10 * time.Second) // a loaded CI machine; returns at the first arrival
	for {
		sendUDP(t, ns, src, dst)
		if got := sink.got(300 * time.Millisecond); len(got) > 0 || time.Now().After(deadline) {
			return got
		}
	}
}

// sendUDP sends three datagrams from src (zero: the kernel's choice)
// inside ns to dst.
func sendUDP(t *testing.T, ns netns.NsHandle, src netip.Addr, dst string) {
	t.Helper()
	if err := nettest.Do(t, ns, func() error {
		var laddr *net.UDPAddr
		if src.IsValid() {
			laddr = &net.UDPAddr{IP: src.AsSlice()}
		}
		raddr, err := net.ResolveUDPAddr("udp6", dst)
		if err != nil {
			return err
		}
		c, err := net.DialUDP("udp6", laddr, raddr)
		if err != nil {
			return err
		}
		defer c.Close()
		for range 3 {
			if _, err := c.Write([]byte("x")); err != nil && !errors.Is(err, unix.ECONNREFUSED) {
				return err
			}
			time.Sleep(10 * time.Millisecond)
		}
		return nil
	}); err != nil {
		t.Fatalf("send udp %s -> %s: %v", src, dst, err)
	}
}

func setIsolated(t *testing.T, ns netns.NsHandle, dev string) {
	t.Helper()
	h := nettest.Handle(t, ns)
	l, err := h.LinkByName(dev)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetIsolated(l, true); err != nil {
		t.Fatalf("isolate %s: %v", dev, err)
	}
}

// TestPrivilegedICCOffRouted: with icc=false container A routes to B
// through the gateway (a host route it may add itself); B must not
// receive. With icc=true the same path delivers (control). Both bridge
// ports are isolated, as link does for icc=false, so the bridged path is
// closed in both cases.
func TestPrivilegedICCOffRouted(t *testing.T) {
	host, a, b := nettest.NewNS(t), nettest.NewNS(t), nettest.NewNS(t)
	gw := netip.MustParseAddr("fd00:5::1")
	aAddr, bAddr := netip.MustParseAddr("fd00:5::a"), netip.MustParseAddr("fd00:5::b")
	addBridge(t, host, "v6b-icc", netip.PrefixFrom(gw, 64))
	attach(t, host, "v6b-icc", "v6h-a", a, netip.PrefixFrom(aAddr, 64), gw)
	attach(t, host, "v6b-icc", "v6h-b", b, netip.PrefixFrom(bAddr, 64), gw)
	setIsolated(t, host, "v6h-a")
	setIsolated(t, host, "v6h-b")
	sysctl(t, host, "net.ipv6.conf.all.forwarding", "1")
	// A redirect would turn the routed path into the (isolated) bridged one.
	sysctl(t, a, "net.ipv6.conf.all.accept_redirects", "0")
	sysctl(t, a, "net.ipv6.conf.eth0.accept_redirects", "0")
	route(t, a, netip.PrefixFrom(bAddr, 128), gw)
	sink := listenUDP(t, b, "[::]:7000")
	tbl := newTable(t, host)

	for _, icc := range []bool{true, false} {
		t.Run(fmt.Sprintf("icc=%t", icc), func(t *testing.T) {
			n := Network{Bridge: "v6b-icc", Subnet: netip.MustParsePrefix("fd00:5::/64"), Gateway: gw, Mode: ModeNAT, ICC: icc,
				Endpoints: []Endpoint{{Addr: aAddr}, {Addr: bAddr}}}
			if err := tbl.Apply(State{Networks: []Network{n}}); err != nil {
				t.Fatal(err)
			}
			got := delivered(t, a, netip.Addr{}, "[fd00:5::b]:7000", sink, icc)
			if icc && len(got) == 0 {
				t.Errorf("icc=true: B received nothing over the routed path (control)")
			}
			if !icc && len(got) > 0 {
				t.Errorf("icc=false: B received %d datagrams from %v routed through the gateway", len(got), got)
			}
		})
	}
}

// spoofRig is a host with an uplink to "out", a public and a nat network
// with one container each, and the table applied.
type spoofRig struct {
	host, out, pub, nat     netns.NsHandle
	hostAddr, outAddr       netip.Addr
	pubGW, pubAddr, natAddr netip.Addr
	tbl                     *Table
	state                   State
}

func newSpoofRig(t *testing.T) *spoofRig {
	r := &spoofRig{host: nettest.NewNS(t), out: nettest.NewNS(t), pub: nettest.NewNS(t), nat: nettest.NewNS(t)}
	r.hostAddr, r.outAddr = netip.MustParseAddr("2001:db8:1::1"), netip.MustParseAddr("2001:db8:1::2")
	natGW := netip.MustParseAddr("fd00:1::1")
	r.natAddr = netip.MustParseAddr("fd00:1::2")
	r.pubGW, r.pubAddr = netip.MustParseAddr("2001:db8:2::1"), netip.MustParseAddr("2001:db8:2::10")
	nettest.Connect(t, r.host, "up0", netip.PrefixFrom(r.hostAddr, 64), r.out, "eth0", netip.PrefixFrom(r.outAddr, 64))
	addBridge(t, r.host, "v6b-pub", netip.PrefixFrom(r.pubGW, 64))
	addBridge(t, r.host, "v6b-nat", netip.PrefixFrom(natGW, 64))
	attach(t, r.host, "v6b-pub", "v6h-pub", r.pub, netip.PrefixFrom(r.pubAddr, 64), r.pubGW)
	attach(t, r.host, "v6b-nat", "v6h-nat", r.nat, netip.PrefixFrom(r.natAddr, 64), natGW)
	route(t, r.out, netip.MustParsePrefix("2001:db8:2::/64"), r.hostAddr)
	sysctl(t, r.host, "net.ipv6.conf.all.forwarding", "1")
	r.state = State{
		Uplinks:   []string{"up0"},
		HostAddrs: []netip.Addr{r.hostAddr},
		Networks: []Network{
			{Bridge: "v6b-nat", Subnet: netip.MustParsePrefix("fd00:1::/64"), Gateway: natGW, Mode: ModeNAT, ICC: true,
				Endpoints: []Endpoint{{Addr: r.natAddr}}},
			{Bridge: "v6b-pub", Subnet: netip.MustParsePrefix("2001:db8:2::/64"), Gateway: r.pubGW, Mode: ModePublic, ICC: true, AllowPing: true,
				Endpoints: []Endpoint{{Addr: r.pubAddr, Ports: []Mapping{{Proto: ProtoTCP, HostFirst: 8080, HostLast: 8080, ContainerFirst: 80}},
					Open: []Port{{Proto: ProtoTCP, First: 80, Last: 80}}}}},
		},
	}
	r.tbl = newTable(t, r.host)
	if err := r.tbl.Apply(r.state); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return r
}

// TestPrivilegedSpoofedSource: a container sending from an address it does
// not hold reaches neither the outside (un-NATed for a nat container) nor
// the host; from its own address it does (control).
func TestPrivilegedSpoofedSource(t *testing.T) {
	r := newSpoofRig(t)
	spoofPub := netip.MustParseAddr("2001:db8:1::99") // in the uplink's /64, held by nobody
	spoofOther := r.natAddr                           // another v6bridge network's container
	spoofULA := netip.MustParseAddr("fd00:9::1")      // no network's
	addAddr(t, r.pub, "eth0", netip.PrefixFrom(spoofPub, 128))
	addAddr(t, r.pub, "eth0", netip.PrefixFrom(spoofOther, 128))
	addAddr(t, r.nat, "eth0", netip.PrefixFrom(spoofULA, 128))
	outSink := listenUDP(t, r.out, "[::]:7000")
	hostSink := listenUDP(t, r.host, fmt.Sprintf("[%s]:7001", r.pubGW))

	tests := []struct {
		name string
		from netns.NsHandle
		src  netip.Addr
		to   string
		sink *udpSink
		want netip.Addr // zero: nothing must arrive
	}{
		{"public from its own address (control)", r.pub, r.pubAddr, "[2001:db8:1::2]:7000", outSink, r.pubAddr},
		{"public from an address of the provider's /64", r.pub, spoofPub, "[2001:db8:1::2]:7000", outSink, netip.Addr{}},
		{"public from another network's container", r.pub, spoofOther, "[2001:db8:1::2]:7000", outSink, netip.Addr{}},
		{"nat from its own address is masqueraded (control)", r.nat, r.natAddr, "[2001:db8:1::2]:7000", outSink, r.hostAddr},
		{"nat from a ULA outside its subnet", r.nat, spoofULA, "[2001:db8:1::2]:7000", outSink, netip.Addr{}},
		{"to the host from its own address (control)", r.pub, r.pubAddr, fmt.Sprintf("[%s]:7001", r.pubGW), hostSink, r.pubAddr},
		{"to the host from another network's container", r.pub, spoofOther, fmt.Sprintf("[%s]:7001", r.pubGW), hostSink, netip.Addr{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := delivered(t, tt.from, tt.src, tt.to, tt.sink, tt.want.IsValid())
			if !tt.want.IsValid() {
				if len(got) > 0 {
					t.Fatalf("sent from %s, arrived from %v; want nothing", tt.src, got)
				}
				return
			}
			if len(got) == 0 || got[0] != tt.want {
				t.Fatalf("sent from %s, arrived from %v; want %s", tt.src, got, tt.want)
			}
		})
	}
}

// TestPrivilegedICMPErrorsOnlyRelated: an ICMPv6 destination unreachable
// about no connection of the container does not reach it; one about its
// own UDP flow does (control: the outside's port unreachable).
func TestPrivilegedICMPErrorsOnlyRelated(t *testing.T) {
	r := newSpoofRig(t)
	conn := nettest.Open(t, r.pub, func() (*icmp.PacketConn, error) { return icmp.ListenPacket("ip6:ipv6-icmp", "::") })
	var mu sync.Mutex
	var unreach int
	nettest.ServePackets(t, conn, func(b []byte, _ net.Addr) {
		if len(b) > 0 && b[0] == byte(ipv6.ICMPTypeDestinationUnreachable) {
			mu.Lock()
			unreach++
			mu.Unlock()
		}
	})
	count := func(d time.Duration) int {
		time.Sleep(d)
		mu.Lock()
		defer mu.Unlock()
		n := unreach
		unreach = 0
		return n
	}

	// Unrelated: the outside forges an error about a flow that never was.
	invoking := make([]byte, 48)
	invoking[0] = 0x60
	invoking[6] = unix.IPPROTO_UDP
	invoking[7] = 64
	copy(invoking[8:24], r.pubAddr.AsSlice())
	copy(invoking[24:40], r.outAddr.AsSlice())
	invoking[40], invoking[41], invoking[42], invoking[43] = 0x30, 0x39, 0x15, 0xb3
	msg := icmp.Message{Type: ipv6.ICMPTypeDestinationUnreachable, Code: 4, Body: &icmp.DstUnreach{Data: invoking}}
	if err := nettest.Do(t, r.out, func() error {
		c, err := icmp.ListenPacket("ip6:ipv6-icmp", "::")
		if err != nil {
			return err
		}
		defer c.Close()
		b, err := msg.Marshal(icmp.IPv6PseudoHeader(r.outAddr.AsSlice(), r.pubAddr.AsSlice()))
		if err != nil {
			return err
		}
		for range 3 {
			if _, err := c.WriteTo(b, &net.IPAddr{IP: r.pubAddr.AsSlice()}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n := count(700 * time.Millisecond); n > 0 {
		t.Errorf("the container received %d unrelated destination unreachable messages", n)
	}

	// Related: the container's datagram to a closed port of the outside.
	sendUDP(t, r.pub, r.pubAddr, "[2001:db8:1::2]:5555")
	if n := count(700 * time.Millisecond); n == 0 {
		t.Errorf("the container received no port unreachable for its own flow (control)")
	}
}

// TestPrivilegedFailClosedWithoutTable: with the plugin stopped (no Watch)
// deleting table v6bridge leaves a public container's unpublished port
// closed, and its published one too, with the engine's ip6tables (FORWARD
// policy drop, DOCKER-USER) and without (the nftables backend leaves our
// bridges alone). Before, the published port passes both tables (control:
// the mark rule in DOCKER-USER).
func TestPrivilegedFailClosedWithoutTable(t *testing.T) {
	for _, engine := range []string{"ip6tables", "nftables"} {
		t.Run(engine, func(t *testing.T) {
			t.Parallel() // namespaces of its own; mostly waits out the closed ports' dial timeouts
			host, out, pub := nettest.NewNS(t), nettest.NewNS(t), nettest.NewNS(t)
			hostAddr, outAddr := netip.MustParseAddr("2001:db8:1::1"), netip.MustParseAddr("2001:db8:1::2")
			gw, addr := netip.MustParseAddr("2001:db8:2::1"), netip.MustParseAddr("2001:db8:2::10")
			nettest.Connect(t, host, "up0", netip.PrefixFrom(hostAddr, 64), out, "eth0", netip.PrefixFrom(outAddr, 64))
			addBridge(t, host, "v6b-pub", netip.PrefixFrom(gw, 64))
			attach(t, host, "v6b-pub", "v6h-pub", pub, netip.PrefixFrom(addr, 64), gw)
			route(t, out, netip.MustParsePrefix("2001:db8:2::/64"), hostAddr)
			sysctl(t, host, "net.ipv6.conf.all.forwarding", "1")
			if engine == "ip6tables" {
				// What the engine's ip6tables writes (iptables-nft).
				inNS(t, host, "ip6tables", "-w", "-P", "FORWARD", "DROP")
				inNS(t, host, "ip6tables", "-w", "-N", "DOCKER-USER")
				inNS(t, host, "ip6tables", "-w", "-A", "DOCKER-USER", "-j", "RETURN")
				inNS(t, host, "ip6tables", "-w", "-I", "FORWARD", "-j", "DOCKER-USER")
			}
			tbl := newTable(t, host)
			s := State{Uplinks: []string{"up0"}, HostAddrs: []netip.Addr{hostAddr}, Networks: []Network{
				{Bridge: "v6b-pub", Subnet: netip.MustParsePrefix("2001:db8:2::/64"), Gateway: gw, Mode: ModePublic, ICC: true,
					Endpoints: []Endpoint{{Addr: addr, Ports: []Mapping{{Proto: ProtoTCP, HostFirst: 80, HostLast: 80, ContainerFirst: 80}},
						Open: []Port{{Proto: ProtoTCP, First: 80, Last: 80}}}}},
			}}
			if err := tbl.Apply(s); err != nil {
				t.Fatal(err)
			}
			serve(t, pub, "[::]:80")
			serve(t, pub, "[::]:81")
			reach := func(port int, want bool, when string) {
				t.Helper()
				timeout := 10 * time.Second
				if !want {
					timeout = 700 * time.Millisecond
				}
				_, err := dial(t, out, fmt.Sprintf("[%s]:%d", addr, port), timeout)
				if want && err != nil {
					t.Errorf("%s: published port %d unreachable: %v", when, port, err)
				}
				if !want && err == nil {
					t.Errorf("%s: port %d reachable from outside, want it closed", when, port)
				}
			}
			reach(80, true, "with our tables")
			reach(81, false, "with our tables")
			inNS(t, host, "nft", "delete", "table", "ip6", TableName)
			reach(81, false, "table v6bridge deleted")
			reach(80, false, "table v6bridge deleted")
		})
	}
}

// listOurs lists both of our tables, or what nft says when one is missing.
func listOurs(ns netns.NsHandle) string {
	var b strings.Builder
	for _, name := range []string{TableName, GuardTableName} {
		out, _ := exec.Command("nsenter", fmt.Sprintf("--net=/proc/%d/fd/%d", os.Getpid(), int(ns)),
			"nft", "list", "table", "ip6", name).CombinedOutput()
		b.Write(out)
	}
	return b.String()
}

// TestPrivilegedWatchRepairsOnEvents: with the safety poll an hour away,
// Watch repairs on nftables events, and notices changes that keep the
// element count (an element swapped), a chain's policy and a rule replaced
// in place. Each repair must land within a second.
func TestPrivilegedWatchRepairsOnEvents(t *testing.T) {
	ns := nettest.NewNS(t)
	tbl := newTable(t, ns)
	if err := tbl.Apply(state(natNet(), publicNet())); err != nil {
		t.Fatal(err)
	}
	want := listOurs(ns)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { tbl.Watch(ctx, time.Hour); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	time.Sleep(100 * time.Millisecond) // the monitor subscribes

	handle := func() string {
		out := inNS(t, ns, "nft", "-a", "list", "chain", "ip6", TableName, ChainFwdIn)
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, "unpublished") {
				return l[strings.LastIndex(l, " ")+1:]
			}
		}
		t.Fatalf("no unpublished rule in:\n%s", out)
		return ""
	}
	for _, tc := range []struct {
		name string
		args func() []string
	}{
		{"flush ruleset", func() []string { return []string{"flush", "ruleset"} }},
		{"delete table", func() []string { return []string{"delete", "table", "ip6", TableName} }},
		{"delete guard table", func() []string { return []string{"delete", "table", "ip6", GuardTableName} }},
		{"swap an element", func() []string {
			return []string{"-f", "-", "<<", "delete element ip6 v6bridge open { 2001:db8:1234:a1::110 . tcp . 80 }\nadd element ip6 v6bridge open { 2001:db8:1234:a1::110 . tcp . 23 }"}
		}},
		{"chain policy", func() []string {
			return []string{"add", "chain", "ip6", TableName, ChainForward, "{ type filter hook forward priority -10; policy drop; }"}
		}},
		{"rule replaced in place", func() []string {
			return []string{"replace", "rule", "ip6", TableName, ChainFwdIn, "handle", handle(), "accept"}
		}},
	} {
		args := tc.args()
		start := time.Now()
		if len(args) == 4 && args[0] == "-f" {
			cmd := exec.Command("nsenter", fmt.Sprintf("--net=/proc/%d/fd/%d", os.Getpid(), int(ns)), "nft", "-f", "-")
			cmd.Stdin = strings.NewReader(args[3])
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", tc.name, err, out)
			}
		} else {
			inNS(t, ns, "nft", args...)
		}
		var got string
		for time.Since(start) < time.Second {
			if got = listOurs(ns); got == want {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if got != want {
			t.Fatalf("after %s the tables were not restored within 1s (-want +got):\n%s", tc.name, cmp.Diff(want, got))
		}
		t.Logf("%s: restored after %v", tc.name, time.Since(start).Round(time.Millisecond))
	}
}
