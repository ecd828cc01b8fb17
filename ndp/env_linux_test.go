package ndp

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	mndp "github.com/mdlayher/ndp"
	"github.com/mdlayher/socket"
	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/net/bpf"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"

	"github.com/v6bridge/v6bridge/internal/ndpflood"
	"github.com/v6bridge/v6bridge/internal/nettest"
	"github.com/v6bridge/v6bridge/ndp/internal/ndptest"
	"github.com/v6bridge/v6bridge/ndp/ndpproto"
)

// The simulated provider link: the router's /64 is on-link on both sides;
// containers live in a /112 the host routes to a bridge, so the
// host forwards unicast solicitations for them, as it would to a bridge.
var (
	hostPrefix   = netip.MustParsePrefix("2001:db8:1234:a1::1/64")
	routerPrefix = netip.MustParsePrefix("2001:db8:1234:a1::fffe/64")
	removedAddr  = netip.MustParseAddr("2001:db8:1234:a1:1::ab54")
	unusedAddr   = netip.MustParseAddr("2001:db8:1234:a1:1::ab55")
)

// env is a router namespace and a host namespace joined by a veth: "eth0"
// on the host, "up0" on the router. They are the test's own, so tests that
// mostly wait on the kernel's timers run in parallel, except those that
// time answers (checkAnswers' maxLatency, announcement gaps): the sniffer
// stamps packets when it reads them, and more goroutines delay that.
type env struct {
	router, host       netns.NsHandle
	hostIf             string     // the host's end of the link: the uplink
	routerAddr         netip.Addr // the router's global address
	routerH, hostH     *netlink.Handle
	routerIdx, hostIdx int
	routerMAC, hostMAC net.HardwareAddr
	routerLL, hostLL   netip.Addr
	routerIfi          *net.Interface
	sender             *socket.Conn // packet socket on the router's up0
	nas                chan receivedNA
	sniffed            chan sniffedPacket
}

func sysctl(t testing.TB, ns netns.NsHandle, key, value string) {
	t.Helper()
	err := nettest.Do(t, ns, func() error {
		return os.WriteFile(filepath.Join("/proc/sys", key), []byte(value), 0o644)
	})
	if err != nil {
		t.Fatalf("sysctl %s=%s: %v", key, value, err)
	}
}

func newEnv(t *testing.T) *env {
	t.Helper()
	host := nettest.NewNS(t)
	sysctl(t, host, "net/ipv6/conf/all/accept_dad", "0")
	sysctl(t, host, "net/ipv6/conf/default/accept_dad", "0")
	sysctl(t, host, "net/ipv6/conf/all/forwarding", "1")
	hostH := nettest.Handle(t, host)
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0"}}
	if err := hostH.LinkAdd(br); err != nil {
		t.Fatalf("add br0: %v", err)
	}
	d, err := hostH.LinkByName("br0")
	if err != nil {
		t.Fatal(err)
	}
	if err := hostH.LinkSetUp(d); err != nil {
		t.Fatal(err)
	}
	if err := hostH.RouteAdd(&netlink.Route{LinkIndex: d.Attrs().Index, Dst: nettest.PrefixNet(ndptest.ContainerNet)}); err != nil {
		t.Fatalf("route %s: %v", ndptest.ContainerNet, err)
	}
	return attachRouter(t, host, "eth0", hostPrefix, routerPrefix)
}

// attachRouter adds a router namespace linked to host by a veth: hostIf
// with hostP on the host, "up0" with routerP in the router.
func attachRouter(t *testing.T, host netns.NsHandle, hostIf string, hostP, routerP netip.Prefix) *env {
	t.Helper()
	e := &env{router: nettest.NewNS(t), host: host, hostIf: hostIf, routerAddr: routerP.Addr()}
	sysctl(t, e.router, "net/ipv6/conf/all/accept_dad", "0")
	sysctl(t, e.router, "net/ipv6/conf/default/accept_dad", "0")
	nettest.Connect(t, e.host, hostIf, hostP, e.router, "up0", routerP)
	e.routerH, e.hostH = nettest.Handle(t, e.router), nettest.Handle(t, e.host)

	e.routerIdx, e.routerMAC, e.routerLL = e.linkInfo(t, e.routerH, "up0")
	e.hostIdx, e.hostMAC, e.hostLL = e.linkInfo(t, e.hostH, hostIf)
	e.routerIfi = &net.Interface{Index: e.routerIdx, Name: "up0", MTU: 1500}

	err := nettest.Do(t, e.router, func() error {
		c, err := socket.Socket(unix.AF_PACKET, unix.SOCK_DGRAM, 0, "test-sender", nil)
		e.sender = c
		return err
	})
	if err != nil {
		t.Fatalf("router packet socket: %v", err)
	}
	t.Cleanup(func() { e.sender.Close() })
	e.startReader(t)
	return e
}

// linkInfo waits for the link-local address and returns index, MAC and it.
func (e *env) linkInfo(t *testing.T, h *netlink.Handle, name string) (int, net.HardwareAddr, netip.Addr) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		l, err := h.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		addrs, err := h.AddrList(l, netlink.FAMILY_V6)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range addrs {
			ip, _ := netip.AddrFromSlice(a.IP)
			if ip.IsLinkLocalUnicast() && a.Flags&unix.IFA_F_TENTATIVE == 0 {
				return l.Attrs().Index, l.Attrs().HardwareAddr, ip
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has no usable link-local address", name)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// receivedNA is an advertisement the router received.
type receivedNA struct {
	at  time.Time
	na  *mndp.NeighborAdvertisement
	src netip.Addr
	dst netip.Addr
}

func (r receivedNA) tlla() net.HardwareAddr {
	for _, o := range r.na.Options {
		if l, ok := o.(*mndp.LinkLayerAddress); ok && l.Direction == mndp.Target {
			return l.Addr
		}
	}
	return nil
}

// startReader reads every Neighbor Advertisement reaching the router (with
// a mdlayher/ndp Conn bound to ::) into e.nas.
func (e *env) startReader(t *testing.T) {
	t.Helper()
	var c *mndp.Conn
	err := nettest.Do(t, e.router, func() error {
		var err error
		c, _, err = mndp.Listen(e.routerIfi, mndp.Unspecified)
		if err != nil {
			return err
		}
		var f ipv6.ICMPFilter
		f.SetAll(true)
		f.Accept(ipv6.ICMPTypeNeighborAdvertisement)
		if err := c.SetICMPFilter(&f); err != nil {
			return err
		}
		return c.SetControlMessage(ipv6.FlagDst, true)
	})
	if err != nil {
		t.Fatalf("router ndp listener: %v", err)
	}
	// The router also receives unsolicited advertisements for ff02::1.
	if err := c.JoinGroup(ndpproto.AllNodes); err != nil && !errors.Is(err, unix.EADDRINUSE) {
		t.Fatalf("join ff02::1: %v", err)
	}
	if e.nas == nil { // a reader for a re-created link shares it
		e.nas = make(chan receivedNA, 1<<14)
	}
	nas := e.nas
	done := make(chan struct{})
	go func() {
		defer close(done)
		ndpflood.EachAdvertisement(c, func(na *mndp.NeighborAdvertisement, cm *ipv6.ControlMessage, src netip.Addr) {
			r := receivedNA{at: time.Now(), na: na, src: src.WithZone("")}
			if cm != nil {
				r.dst, _ = netip.AddrFromSlice(cm.Dst)
			}
			select {
			case nas <- r:
			default:
			}
		})
	}()
	t.Cleanup(func() { c.Close(); <-done })
}

// sendNS puts a solicitation for target on the router's wire: IPv6 src and
// dst, hop limit, link-layer destination; sllaMAC is the Source
// Link-Layer Address option (nil for none). It returns when it was sent.
func (e *env) sendNS(t *testing.T, src, dst, target netip.Addr, hop uint8, linkDst, sllaMAC net.HardwareAddr) time.Time {
	t.Helper()
	var opts []mndp.Option
	if sllaMAC != nil {
		opts = append(opts, &mndp.LinkLayerAddress{Direction: mndp.Source, Addr: sllaMAC})
	}
	if src.IsUnspecified() {
		opts = append(opts, mndp.NewNonce())
	}
	icmp := ndptest.ICMPNS(t, src, dst, target, opts...)
	return e.sendRaw(t, ndptest.IPv6Packet(src, dst, hop, 0, nil, icmp), linkDst)
}

func (e *env) sendRaw(t *testing.T, pkt []byte, linkDst net.HardwareAddr) time.Time {
	t.Helper()
	to := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IPV6), Ifindex: e.routerIdx, Halen: 6}
	copy(to.Addr[:], linkDst)
	at := time.Now()
	if err := e.sender.Sendto(context.Background(), pkt, 0, to); err != nil {
		t.Fatalf("send solicitation: %v", err)
	}
	return at
}

// multicastMAC is the Ethernet group address of an IPv6 multicast group.
func multicastMAC(g netip.Addr) net.HardwareAddr {
	b := g.As16()
	return net.HardwareAddr{0x33, 0x33, b[12], b[13], b[14], b[15]}
}

// solicit sends the kind of solicitation named by kind ("multicast",
// "unicast", "dad") for target, the way a router does.
func (e *env) solicit(t *testing.T, kind string, target netip.Addr) time.Time {
	t.Helper()
	src := e.routerAddr
	switch kind {
	case "multicast":
		g := ndptest.SNM(target)
		return e.sendNS(t, src, g, target, 255, multicastMAC(g), e.routerMAC)
	case "unicast":
		return e.sendNS(t, src, target, target, 255, e.hostMAC, e.routerMAC)
	case "dad":
		g := ndptest.SNM(target)
		return e.sendNS(t, netip.IPv6Unspecified(), g, target, 255, multicastMAC(g), nil)
	}
	t.Fatalf("unknown solicitation kind %q", kind)
	return time.Time{}
}

// waitNA returns the first advertisement for target received after since
// that matches solicited, or false after timeout.
func (e *env) waitNA(target netip.Addr, solicited bool, since time.Time, timeout time.Duration) (receivedNA, bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case r := <-e.nas:
			if r.at.Before(since) || r.na.TargetAddress != target || r.na.Solicited != solicited {
				continue
			}
			return r, true
		case <-deadline.C:
			return receivedNA{}, false
		}
	}
}

// procNet reads /proc/net/<name> of the host's namespace and returns the
// fields of each line.
func (e *env) procNet(t *testing.T, name string) [][]string {
	t.Helper()
	var b []byte
	err := nettest.Do(t, e.host, func() (err error) {
		b, err = os.ReadFile("/proc/thread-self/net/" + name)
		return err
	})
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	var out [][]string
	for _, l := range strings.Split(string(b), "\n") {
		out = append(out, strings.Fields(l))
	}
	return out
}

// uplinkDown sets the host's eth0 down and returns it after d.
func (e *env) uplinkDown(t *testing.T, d time.Duration) netlink.Link {
	t.Helper()
	link, err := e.hostH.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.hostH.LinkSetDown(link); err != nil {
		t.Fatal(err)
	}
	time.Sleep(d)
	return link
}

// answerLive starts a responder (startResponder) that answers for
// ndptest.LiveAddr.
func (e *env) answerLive(t *testing.T, cfg Config) *Responder {
	t.Helper()
	r := e.startResponder(t, cfg)
	if err := r.SetTargets([]netip.Addr{ndptest.LiveAddr}, nil); err != nil {
		t.Fatal(err)
	}
	return r
}

// startResponder creates a responder inside the host namespace and runs it
// until the test ends.
func (e *env) startResponder(t *testing.T, cfg Config) *Responder {
	t.Helper()
	if cfg.Uplinks == nil {
		cfg.Uplinks = []string{"eth0"}
	}
	l := logrus.New()
	l.SetLevel(logrus.DebugLevel)
	l.Out = testWriter{t}
	cfg.Log = l
	var r *Responder
	err := nettest.Do(t, e.host, func() error {
		var err error
		r, err = NewResponder(cfg)
		return err
	})
	if err != nil {
		t.Fatalf("NewResponder: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		r.Close()
	})
	return r
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", p)
	return len(p), nil
}

// neighbour returns the router's neighbour entry for a, if any.
func (e *env) neighbour(t *testing.T, a netip.Addr) (netlink.Neigh, bool) {
	t.Helper()
	list, err := e.routerH.NeighList(e.routerIdx, netlink.FAMILY_V6)
	if err != nil {
		t.Fatalf("router neighbours: %v", err)
	}
	for _, n := range list {
		if ip, _ := netip.AddrFromSlice(n.IP); ip == a {
			return n, true
		}
	}
	return netlink.Neigh{}, false
}

// sendTraffic sends one UDP datagram from the router to a, which makes
// the router's kernel resolve a (or probe it) as a real router would.
func (e *env) sendTraffic(t *testing.T, a netip.Addr) {
	t.Helper()
	err := nettest.Do(t, e.router, func() error {
		c, err := net.DialUDP("udp6", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, 9)))
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("ping"))
		return err
	})
	if err != nil && !errors.Is(err, unix.EHOSTUNREACH) {
		t.Fatalf("traffic to %s: %v", a, err)
	}
}

// sniffedPacket is an NDP packet seen on the router's up0.
type sniffedPacket struct {
	at       time.Time
	outgoing bool
	icmpType byte
	dst      netip.Addr
	target   netip.Addr
	linkSrc  net.HardwareAddr
	raw      []byte // from the IPv6 header on
}

// startSniffer records the router's outgoing solicitations and incoming
// advertisements (parsed by hand: outgoing packets may still lack their
// checksum) into e.sniffed.
func (e *env) startSniffer(t *testing.T) {
	t.Helper()
	var c *socket.Conn
	err := nettest.Do(t, e.router, func() error {
		var err error
		c, err = socket.Socket(unix.AF_PACKET, unix.SOCK_DGRAM, 0, "test-sniffer", nil)
		if err != nil {
			return err
		}
		// Only solicitations and advertisements for LiveAddr, so a flood
		// beside the test does not drown the sniffer.
		w := ndptest.LiveAddr.As16()
		prog, err := bpf.Assemble([]bpf.Instruction{
			bpf.LoadAbsolute{Off: 6, Size: 1},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: ndpproto.ProtoICMPv6, SkipFalse: 6},
			bpf.LoadAbsolute{Off: 40, Size: 1},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(ndpproto.TypeNeighSolic), SkipTrue: 1},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(ndpproto.TypeNeighAdv), SkipFalse: 3},
			bpf.LoadAbsolute{Off: 60, Size: 4},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: binary.BigEndian.Uint32(w[12:]), SkipFalse: 1},
			bpf.RetConstant{Val: 1 << 16},
			bpf.RetConstant{Val: 0},
		})
		if err != nil {
			return err
		}
		if err := c.SetBPF(prog); err != nil {
			return err
		}
		// ETH_P_ALL: outgoing frames reach only "all" taps.
		return c.Bind(&unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: e.routerIdx})
	})
	if err != nil {
		t.Fatalf("sniffer: %v", err)
	}
	e.sniffed = make(chan sniffedPacket, 1<<16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			n, sa, err := c.Recvfrom(ctx, buf, 0)
			if err != nil {
				return
			}
			b := buf[:n]
			sll, _ := sa.(*unix.SockaddrLinklayer)
			if sll == nil || sll.Protocol != htons(unix.ETH_P_IPV6) || n < 64 || b[6] != ndpproto.ProtoICMPv6 || (b[40] != ndpproto.TypeNeighSolic && b[40] != ndpproto.TypeNeighAdv) {
				continue
			}
			p := sniffedPacket{
				at:       time.Now(),
				outgoing: sll.Pkttype == unix.PACKET_OUTGOING,
				icmpType: b[40],
				dst:      netip.AddrFrom16([16]byte(b[24:40])),
				target:   netip.AddrFrom16([16]byte(b[48:64])),
				linkSrc:  slices.Clone(sll.Addr[:sll.Halen]),
				raw:      slices.Clone(b),
			}
			select {
			case e.sniffed <- p:
			default:
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done; c.Close() })
}
