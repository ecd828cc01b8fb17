package nat

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/v6bridge/v6bridge/internal/nettest"
)

// echo serves TCP on addr inside ns, writing back what it reads.
func echo(t testing.TB, ns netns.NsHandle, addr string) {
	t.Helper()
	listenIn(t, ns, addr, func(c net.Conn) {
		defer c.Close()
		_, _ = io.Copy(c, c)
	})
}

// session is a long-lived TCP connection opened from a namespace.
type session struct {
	c net.Conn
}

func openSession(t *testing.T, ns netns.NsHandle, addr string) *session {
	t.Helper()
	var c net.Conn
	if err := nettest.Do(t, ns, func() (err error) {
		c, err = net.DialTimeout("tcp6", addr, 20*time.Second)
		return err
	}); err != nil {
		t.Fatalf("connect to %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return &session{c: c}
}

// roundTrip sends n bytes and reads them back within timeout.
func (s *session) roundTrip(n int, timeout time.Duration) error {
	msg := []byte(strings.Repeat("x", n))
	_ = s.c.SetDeadline(time.Now().Add(timeout))
	if _, err := s.c.Write(msg); err != nil {
		return err
	}
	_, err := io.ReadFull(s.c, make([]byte, n))
	return err
}

// flowRig is a host with an uplink to an outside namespace, one nat and
// one public network with a container each, both serving echo on 80.
type flowRig struct {
	host, out, natCtr, pubCtr netns.NsHandle
	s                         State
}

var (
	rigHost   = netip.MustParseAddr("2001:db8:1::1")
	rigOut    = netip.MustParseAddr("2001:db8:1::2")
	rigNatGW  = netip.MustParseAddr("fd00:1::1")
	rigNatCtr = netip.MustParseAddr("fd00:1::2")
	rigPubGW  = netip.MustParseAddr("2001:db8:2::1")
	rigPubCtr = netip.MustParseAddr("2001:db8:2::10")
)

func newFlowRig(t testing.TB) *flowRig {
	t.Helper()
	r := &flowRig{host: nettest.NewNS(t), out: nettest.NewNS(t), natCtr: nettest.NewNS(t), pubCtr: nettest.NewNS(t)}
	nettest.Connect(t, r.host, "up0", netip.PrefixFrom(rigHost, 64), r.out, "eth0", netip.PrefixFrom(rigOut, 64))
	addBridge(t, r.host, "v6b-nat", netip.PrefixFrom(rigNatGW, 64))
	addBridge(t, r.host, "v6b-pub", netip.PrefixFrom(rigPubGW, 64))
	attach(t, r.host, "v6b-nat", "v6h-nat", r.natCtr, netip.PrefixFrom(rigNatCtr, 64), rigNatGW)
	attach(t, r.host, "v6b-pub", "v6h-pub", r.pubCtr, netip.PrefixFrom(rigPubCtr, 64), rigPubGW)
	route(t, r.out, netip.MustParsePrefix("2001:db8:2::/64"), rigHost)
	if err := nettest.Do(t, r.host, func() error {
		for _, k := range []string{"net/ipv6/conf/all/forwarding", "net/netfilter/nf_conntrack_acct"} {
			if err := os.WriteFile("/proc/sys/"+k, []byte("1"), 0o644); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatalf("sysctls: %v", err)
	}
	r.s = State{
		Uplinks:   []string{"up0"},
		HostAddrs: []netip.Addr{rigHost},
		Networks: []Network{
			{Bridge: "v6b-nat", Subnet: netip.MustParsePrefix("fd00:1::/64"), Gateway: rigNatGW, Mode: ModeNAT, ICC: true,
				Endpoints: []Endpoint{{Addr: rigNatCtr, Ports: []Mapping{{Proto: ProtoTCP, HostFirst: 8080, HostLast: 8080, ContainerFirst: 80}}}}},
			{Bridge: "v6b-pub", Subnet: netip.MustParsePrefix("2001:db8:2::/64"), Gateway: rigPubGW, Mode: ModePublic, ICC: true,
				Endpoints: []Endpoint{{Addr: rigPubCtr, Ports: []Mapping{{Proto: ProtoTCP, HostFirst: 8082, HostLast: 8082, ContainerFirst: 80}},
					Open: []Port{{Proto: ProtoTCP, First: 80, Last: 80}}}}},
		},
	}
	echo(t, r.out, "[::]:9000")
	echo(t, r.natCtr, "[::]:80")
	echo(t, r.pubCtr, "[::]:80")
	return r
}

func (r *flowRig) table(t *testing.T, fastPath bool) *Table {
	t.Helper()
	log := logrus.New()
	log.SetLevel(logrus.DebugLevel)
	log.SetOutput(tlog{t})
	tbl, err := NewTable(TableConfig{NetNS: int(r.host), FastPath: fastPath, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	if on, err := tbl.FastPath(); on != fastPath {
		t.Fatalf("fast path %v (%v), want %v", on, err, fastPath)
	}
	if err := tbl.Apply(r.s); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return tbl
}

type tlog struct{ t *testing.T }

func (l tlog) Write(p []byte) (int, error) { l.t.Log(strings.TrimSpace(string(p))); return len(p), nil }

// requireFastPath skips unless the kernel has flowtables.
func requireFastPath(t *testing.T) {
	t.Helper()
	ns := nettest.NewNS(t)
	if err := ProbeFastPath(int(ns)); err != nil {
		t.Skipf("no fast path on this kernel: %v", err)
	}
}

// TestPrivilegedRevokeStopsConnections: an open connection stops passing
// data as soon as the change that revokes it is applied (port unpublished,
// endpoint removed, through UpdateEndpoints or Apply), and a change that
// does not concern it leaves it alone. With the fast path the connections
// are offloaded by then (data passed after the handshake).
func TestPrivilegedRevokeStopsConnections(t *testing.T) {
	for _, fast := range []bool{false, true} {
		t.Run(fmt.Sprintf("fastpath=%v", fast), func(t *testing.T) {
			if fast {
				requireFastPath(t)
			}
			r := newFlowRig(t)
			tbl := r.table(t, fast)
			const ok, stopped = 20 * time.Second, 1500 * time.Millisecond // ok: an upper bound (TCG on a loaded machine)

			viaDNAT := openSession(t, r.out, "[2001:db8:1::1]:8080")
			direct := openSession(t, r.out, "[2001:db8:2::10]:80")
			outbound := openSession(t, r.natCtr, "[2001:db8:1::2]:9000")
			for i := range 3 { // past the handshake: offloaded by now with the fast path
				for name, s := range map[string]*session{"dnat": viaDNAT, "direct": direct, "outbound": outbound} {
					if err := s.roundTrip(1000, ok); err != nil {
						t.Fatalf("%s round trip %d: %v", name, i, err)
					}
				}
			}

			// Unrelated: the public container publishes another port.
			pub := r.s.Networks[1].Endpoints[0]
			more := append([]Mapping{{Proto: ProtoTCP, HostFirst: 8443, HostLast: 8443, ContainerFirst: 443}}, pub.Ports...)
			if err := tbl.UpdateEndpoints([]EndpointUpdate{{Bridge: "v6b-pub", Addr: rigPubCtr, Ports: more, Open: pub.Open}}); err != nil {
				t.Fatal(err)
			}
			for name, s := range map[string]*session{"dnat": viaDNAT, "direct": direct, "outbound": outbound} {
				if err := s.roundTrip(1000, ok); err != nil {
					t.Fatalf("%s after an unrelated change: %v", name, err)
				}
			}

			// The nat container's port unpublished: the DNATed connection
			// stops, its outbound one goes on.
			if err := tbl.UpdateEndpoints([]EndpointUpdate{{Bridge: "v6b-nat", Addr: rigNatCtr}}); err != nil {
				t.Fatal(err)
			}
			if err := viaDNAT.roundTrip(1000, stopped); err == nil {
				t.Error("the connection to the unpublished port still passes data")
			}
			if err := outbound.roundTrip(1000, ok); err != nil {
				t.Errorf("the container's own outbound connection stopped with its published port: %v", err)
			}

			// The public container's port unpublished by a whole Apply.
			s := r.s
			s.Networks = []Network{r.s.Networks[0], r.s.Networks[1]}
			s.Networks[0].Endpoints = []Endpoint{{Addr: rigNatCtr}}
			s.Networks[1].Endpoints = []Endpoint{{Addr: rigPubCtr}}
			if err := tbl.Apply(s); err != nil {
				t.Fatal(err)
			}
			if err := direct.roundTrip(1000, stopped); err == nil {
				t.Error("the connection to the unpublished public port still passes data")
			}

			// The nat container removed: its outbound connection stops too.
			if err := tbl.UpdateEndpoints([]EndpointUpdate{{Bridge: "v6b-nat", Addr: rigNatCtr, Remove: true}}); err != nil {
				t.Fatal(err)
			}
			if err := outbound.roundTrip(1000, stopped); err == nil {
				t.Error("the removed container's outbound connection still passes data")
			}
		})
	}
}

// TestPrivilegedFastPath: with the fast path, the flowtable hooks the
// uplink and the bridges, NAT66 and DNAT connections keep their
// translation once offloaded (they still pass data, with the addresses the
// slow path chose, after a rule that would drop them is inserted at the
// top of the forward chain: only the fast path can carry them then), and
// conntrack still counts their bytes.
func TestPrivilegedFastPath(t *testing.T) {
	requireFastPath(t)
	r := newFlowRig(t)
	r.table(t, true)
	listing := inNS(t, r.host, "nft", "list", "flowtables", "ip6")
	for _, want := range []string{"flowtable ft", "up0", "v6b-nat", "v6b-pub", "counter"} {
		if !strings.Contains(listing, want) {
			t.Errorf("flowtable listing lacks %q:\n%s", want, listing)
		}
	}

	viaDNAT := openSession(t, r.out, "[2001:db8:1::1]:8080")
	outbound := openSession(t, r.natCtr, "[2001:db8:1::2]:9000")
	if got := outbound.c.LocalAddr().(*net.TCPAddr).IP.String(); got != rigNatCtr.String() {
		t.Fatalf("outbound from %s", got)
	}
	for range 3 {
		for name, s := range map[string]*session{"dnat": viaDNAT, "nat66": outbound} {
			if err := s.roundTrip(1000, 20*time.Second); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
	}
	inNS(t, r.host, "nft", "insert", "rule", "ip6", TableName, ChainForward, "meta", "l4proto", "tcp", "drop")
	for name, s := range map[string]*session{"dnat": viaDNAT, "nat66": outbound} {
		if err := s.roundTrip(100000, 20*time.Second); err != nil {
			t.Errorf("%s after a drop rule in the forward chain: %v (not offloaded?)", name, err)
		}
	}
	// A new connection takes the slow path and meets the drop rule.
	if got, err := dial(t, r.out, "[2001:db8:1::1]:8080", 700*time.Millisecond); err == nil {
		t.Errorf("a new connection passed the drop rule (%q): the rule is not in effect, the test proves nothing", got)
	}

	h, err := netlink.NewHandleAt(r.host, unix.NETLINK_NETFILTER)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	flows, err := h.ConntrackTableList(netlink.ConntrackTable, unix.AF_INET6)
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for _, f := range flows {
		seen = append(seen, f.String())
		// The outbound connection, masqueraded: the reply goes to the host.
		if f.Forward.SrcIP.Equal(rigNatCtr.AsSlice()) && f.Forward.DstPort == 9000 {
			if !f.Reverse.DstIP.Equal(rigHost.AsSlice()) {
				t.Errorf("nat66 connection not masqueraded to %s: %s", rigHost, f)
			}
			if f.Forward.Bytes < 100000 {
				t.Errorf("conntrack counted %d bytes of the offloaded connection, want >= 100000: %s", f.Forward.Bytes, f)
			}
			return
		}
	}
	t.Errorf("no conntrack entry of the nat66 connection:\n%s", strings.Join(seen, "\n"))
}

// TestPrivilegedFastPathGolden: nft, decoding what the kernel holds after
// Apply with the fast path, prints testdata/fastpath.golden (the flowtable
// and the offload rule as Build renders them).
func TestPrivilegedFastPathGolden(t *testing.T) {
	requireFastPath(t)
	ns := nettest.NewNS(t)
	h := nettest.Handle(t, ns)
	s := fastPathState()
	for _, name := range []string{"eth0", "eth1", "v6b-nat", "v6b-pub", "v6b-int"} {
		if err := h.LinkAdd(&netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: name}}); err != nil {
			t.Fatalf("add %s: %v", name, err)
		}
	}
	tbl, err := NewTable(TableConfig{NetNS: int(ns), FastPath: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := tbl.Apply(s); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	want, err := os.ReadFile("testdata/fastpath.golden")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(normalize(string(want)), normalize(listTable(t, ns))); diff != "" {
		t.Errorf("nft listing differs from the golden file (-golden +nft):\n%s", diff)
	}
}

// BenchmarkPrivilegedFastPath streams TCP from a container through NAT66
// to an echo server outside and back, with and without the fast path: the
// bytes per second of the forwarding (both ways) through the host
// namespace. It prints; it asserts nothing. Needs root and, for
// fastpath=true, a kernel with flowtables (test/kernelvm runs it there).
func BenchmarkPrivilegedFastPath(b *testing.B) {
	for _, fast := range []bool{false, true} {
		b.Run(fmt.Sprintf("fastpath=%v", fast), func(b *testing.B) {
			if fast {
				ns := nettest.NewNS(b)
				if err := ProbeFastPath(int(ns)); err != nil {
					b.Skipf("no fast path on this kernel: %v", err)
				}
			}
			r := newFlowRig(b)
			tbl, err := NewTable(TableConfig{NetNS: int(r.host), FastPath: fast})
			if err != nil {
				b.Fatal(err)
			}
			if err := tbl.Apply(r.s); err != nil {
				b.Fatal(err)
			}
			var c net.Conn
			if err := nettest.Do(b, r.natCtr, func() (err error) {
				c, err = net.DialTimeout("tcp6", "[2001:db8:1::2]:9000", 20*time.Second)
				return err
			}); err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			chunk := make([]byte, 64<<10)
			done := make(chan error, 1)
			b.SetBytes(int64(len(chunk)))
			b.ResetTimer()
			go func() {
				_, err := io.CopyN(io.Discard, c, int64(b.N)*int64(len(chunk)))
				done <- err
			}()
			for range b.N {
				if _, err := c.Write(chunk); err != nil {
					b.Fatal(err)
				}
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		})
	}
}
