package portfwd

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/v6bridge/v6bridge/internal/nettest"
	"github.com/v6bridge/v6bridge/netspec"
)

// eventually polls cond until it holds or a generous deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("%s: never happened", what)
}

func statusOf(p *Forwarder, listen netip.AddrPort) Status {
	for _, s := range p.Status() {
		if strings.Contains(s.Forward, " "+listen.String()+"->") {
			return s
		}
	}
	return Status{}
}

// myComm is what /proc says this test binary is called.
func myComm(t *testing.T) string {
	b, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	return strings.TrimSpace(string(b))
}

// TestSquatterFailsOnlyItsForward: a program holding a forwarded port
// fails that forward alone, named with its pid and name; the other
// forward runs; Sets that keep it (other containers' joins) succeed; once
// the squatter leaves, the forward binds by itself.
func TestSquatterFailsOnlyItsForward(t *testing.T) {
	a := tcpBackend(t, "a")
	squat, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	busy := squat.Addr().(*net.TCPAddr).AddrPort()
	ok := freePort(t, netspec.ProtoTCP)
	p := New(quiet(), Limits{})
	defer p.Close()
	fs := []Forward{{netspec.ProtoTCP, busy, a}, {netspec.ProtoTCP, ok, a}}
	err = p.Set(fs)
	var fe *Error
	if !errors.As(err, &fe) || fe.Forward.Listen != busy {
		t.Fatalf("err = %v, want an *Error for %s", err, busy)
	}
	holder := fmt.Sprintf("pid %d (%s)", os.Getpid(), myComm(t))
	if !strings.Contains(err.Error(), busy.String()) || !strings.Contains(err.Error(), "held by "+holder) {
		t.Fatalf("err = %v, want the port and %q named", err, holder)
	}
	if got, err := roundTrip(ok, "x"); err != nil || got != "a:x" {
		t.Fatalf("the other forward: %q, %v", got, err)
	}
	if s := statusOf(p, busy); s.Bound || !strings.Contains(s.Problem, holder) {
		t.Fatalf("status of the held forward: %+v", s)
	}
	// Another container joins: the held forward is not its business.
	other := freePort(t, netspec.ProtoTCP)
	if err := p.Set(append(fs, Forward{netspec.ProtoTCP, other, a})); err != nil {
		t.Fatalf("a set that keeps the held forward: %v", err)
	}
	squat.Close()
	eventually(t, "the forward binds once the port is free", func() bool { return statusOf(p, busy).Bound })
	if got, err := roundTrip(busy, "y"); err != nil || got != "a:y" {
		t.Fatalf("the freed forward: %q, %v", got, err)
	}
}

// TestLeftOutPendingForwardStopsRetrying: a forward waiting for its port
// and then left out never binds the port afterwards.
func TestLeftOutPendingForwardStopsRetrying(t *testing.T) {
	squat, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	busy := squat.Addr().(*net.TCPAddr).AddrPort()
	p := New(quiet(), Limits{})
	defer p.Close()
	if err := p.Set([]Forward{{netspec.ProtoTCP, busy, busy}}); err == nil {
		t.Fatal("no error for a held port")
	}
	if err := p.Set(nil); err != nil {
		t.Fatal(err)
	}
	squat.Close()
	time.Sleep(2 * retryFirst)
	if len(p.Status()) != 0 {
		t.Fatalf("status after the forward was left out: %+v", p.Status())
	}
	ln, err := net.Listen("tcp6", busy.String())
	if err != nil {
		t.Fatalf("the port was bound again after the forward was left out: %v", err)
	}
	ln.Close()
}

// TestHolderFromProcTables: the /proc/net table parser finds the
// listening socket on the address or on ::, and nothing else.
func TestHolderFromProcTables(t *testing.T) {
	l := netip.MustParseAddrPort("[::1]:5432")
	row := func(n int, local netip.AddrPort, st, inode string) string {
		return fmt.Sprintf("%4d: %s 00000000000000000000000000000000:0000 %s 00000000:00000000 00:00000000 00000000   0 0 %s 1 0000000000000000 100 0 0 10 0\n", n, hexAddr(local), st, inode)
	}
	table := "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n" +
		row(0, netip.MustParseAddrPort("[::1]:5433"), "0A", "11") + // another port
		row(1, netip.MustParseAddrPort("[::1]:5432"), "01", "12") + // a connection from it
		row(2, netip.MustParseAddrPort("[fd00::1]:5432"), "0A", "13") + // another address
		row(3, netip.MustParseAddrPort("[::]:5432"), "0A", "14") + // any address
		row(4, netip.MustParseAddrPort("[::1]:5432"), "0A", "15")
	got := socketInodes(strings.NewReader(table), netspec.ProtoTCP, l)
	if len(got) != 2 || !got["14"] || !got["15"] {
		t.Errorf("tcp inodes = %v, want 14 and 15", got)
	}
	got = socketInodes(strings.NewReader(table), netspec.ProtoUDP, l)
	if len(got) != 3 || !got["12"] {
		t.Errorf("udp inodes = %v, want 12, 14 and 15 (no states for udp)", got)
	}
	for _, s := range []string{"[::1]:1", "[2001:db8::5]:65535", "[::]:0"} {
		ap := netip.MustParseAddrPort(s)
		if back, err := parseProcAddr(hexAddr(ap)); err != nil || back != ap {
			t.Errorf("parseProcAddr(hexAddr(%s)) = %s, %v", ap, back, err)
		}
	}
	for _, bad := range []string{"", "00:0000", strings.Repeat("g", 32) + ":0001", strings.Repeat("0", 32) + ":fffff"} {
		if _, err := parseProcAddr(bad); err == nil {
			t.Errorf("parseProcAddr(%q) accepted", bad)
		}
	}
	// A real one: the holder of a udp socket of this process.
	pc, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	defer pc.Close()
	want := fmt.Sprintf("pid %d (%s)", os.Getpid(), myComm(t))
	if got := holder(netspec.ProtoUDP, pc.LocalAddr().(*net.UDPAddr).AddrPort()); got != want {
		t.Errorf("holder = %q, want %q", got, want)
	}
	if got := holder(netspec.ProtoTCP, pc.LocalAddr().(*net.UDPAddr).AddrPort()); got != unknownHolder {
		t.Errorf("holder of a tcp port nobody holds = %q", got)
	}
}

// udpEcho answers each datagram with "re:" and it.
func udpEcho(t *testing.T) netip.AddrPort {
	t.Helper()
	be, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	nettest.EchoPackets(t, be, "re:")
	return be.LocalAddr().(*net.UDPAddr).AddrPort()
}

func udpAsk(t *testing.T, c *net.UDPConn, msg string) error {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		return err
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 1500)
	n, err := c.Read(b)
	if err != nil {
		return err
	}
	if string(b[:n]) != "re:"+msg {
		return fmt.Errorf("reply %q to %q", b[:n], msg)
	}
	return nil
}

// TestUDPSourceFloodIsCapped: a thousand sources on one forwarded udp port
// hold at most FlowsPerForward flows (the idle ones closed for the new),
// the other forward keeps its share of the socket budget and answers,
// and a client that starts after the flood is answered.
func TestUDPSourceFloodIsCapped(t *testing.T) {
	be := udpEcho(t)
	flooded, calm := freePort(t, netspec.ProtoUDP), freePort(t, netspec.ProtoUDP)
	const perForward, sockets = 16, 20
	p := New(quiet(), Limits{FlowsPerForward: perForward, Sockets: sockets})
	defer p.Close()
	if err := p.Set([]Forward{{netspec.ProtoUDP, flooded, be}, {netspec.ProtoUDP, calm, be}}); err != nil {
		t.Fatal(err)
	}
	calmClient, err := net.DialUDP("udp6", nil, net.UDPAddrFromAddrPort(calm))
	if err != nil {
		t.Fatal(err)
	}
	defer calmClient.Close()
	if err := udpAsk(t, calmClient, "before"); err != nil {
		t.Fatal(err)
	}
	const sources = 1000
	for i := range sources {
		c, err := net.DialUDP("udp6", nil, net.UDPAddrFromAddrPort(flooded))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.Write([]byte("x"))
		c.Close()
		if s := statusOf(p, flooded); s.Conns > perForward {
			t.Fatalf("after %d sources: %d flows, cap %d", i+1, s.Conns, perForward)
		}
	}
	eventually(t, "the flood's flows evicted", func() bool { return statusOf(p, flooded).Evicted > 0 })
	if used := p.sockets.used.Load(); used > sockets {
		t.Fatalf("%d sockets used, budget %d", used, sockets)
	}
	if err := udpAsk(t, calmClient, "during"); err != nil {
		t.Fatalf("the other forward after the flood: %v", err)
	}
	late, err := net.DialUDP("udp6", nil, net.UDPAddrFromAddrPort(flooded))
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	// It retransmits, as udp clients do, while the flood's backlog drains.
	for try := 0; ; try++ {
		err := udpAsk(t, late, "late")
		if err == nil {
			break
		}
		if try == 10 {
			t.Fatalf("a new client of the flooded forward: %v", err)
		}
	}
}

// TestTCPConnectionFloodEvictsOldestIdle: idle connections up to the cap
// are kept; the next one closes the one idle longest, and is served.
func TestTCPConnectionFloodEvictsOldestIdle(t *testing.T) {
	a := tcpBackend(t, "a")
	listen := freePort(t, netspec.ProtoTCP)
	const perForward = 4
	p := New(quiet(), Limits{ConnsPerForward: perForward})
	defer p.Close()
	if err := p.Set([]Forward{{netspec.ProtoTCP, listen, a}}); err != nil {
		t.Fatal(err)
	}
	var idle []net.Conn
	for i := range perForward {
		c, err := net.Dial("tcp6", listen.String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		idle = append(idle, c)
		eventually(t, "connection counted", func() bool { return statusOf(p, listen).Conns == i+1 })
	}
	if got, err := roundTrip(listen, "new"); err != nil || got != "a:new" {
		t.Fatalf("a connection past the cap: %q, %v", got, err)
	}
	_ = idle[0].SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := idle[0].Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the oldest idle connection: read %v, want it closed", err)
	}
	for _, c := range idle[1:] {
		_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("a younger idle connection: read %v, want it open", err)
		}
	}
	if s := statusOf(p, listen); s.Conns > perForward || s.Evicted == 0 {
		t.Fatalf("status %+v", s)
	}
}

// TestTCPIdleAndHalfClosedConnectionsEnd: a connection nobody sends on,
// and one the client finished but the container never answers, are
// closed by the forwarder.
func TestTCPIdleAndHalfClosedConnectionsEnd(t *testing.T) {
	// A container that reads and never answers nor closes.
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	nettest.ServeConns(t, ln, func(c net.Conn) { _, _ = io.Copy(io.Discard, c) })
	const short, long = 300 * time.Millisecond, time.Hour
	for _, half := range []bool{false, true} {
		// Only the timeout the connection is under is short.
		lim := Limits{TCPIdle: short, TCPHalfClosed: long}
		if half {
			lim = Limits{TCPIdle: long, TCPHalfClosed: short}
		}
		listen := freePort(t, netspec.ProtoTCP)
		p := New(quiet(), lim)
		defer p.Close()
		if err := p.Set([]Forward{{netspec.ProtoTCP, listen, ln.Addr().(*net.TCPAddr).AddrPort()}}); err != nil {
			t.Fatal(err)
		}
		c, err := net.Dial("tcp6", listen.String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if half {
			_ = c.(*net.TCPConn).CloseWrite()
		}
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("half-closed %v: read %v, want the forwarder to close it", half, err)
		}
		eventually(t, "no connection left", func() bool { return statusOf(p, listen).Conns == 0 })
	}
}

// failingAcceptor fails its first n accepts as a process out of
// descriptors does.
type failingAcceptor struct {
	*net.TCPListener
	n atomic.Int32
}

func (a *failingAcceptor) AcceptTCP() (*net.TCPConn, error) {
	if a.n.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp6", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return a.TCPListener.AcceptTCP()
}

// TestAcceptErrorsDoNotEndTheForward: accept failing with EMFILE (no
// descriptor left) is retried; the waiting connection is then served by
// the same forward.
func TestAcceptErrorsDoNotEndTheForward(t *testing.T) {
	a := tcpBackend(t, "a")
	listen := freePort(t, netspec.ProtoTCP)
	p := New(quiet(), Limits{})
	defer p.Close()
	ln, err := net.ListenTCP("tcp6", net.TCPAddrFromAddrPort(listen))
	if err != nil {
		t.Fatal(err)
	}
	fa := &failingAcceptor{TCPListener: ln}
	fa.n.Store(8)
	f := newForward(p, key{netspec.ProtoTCP, listen}, a)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.serveTCP(ctx, fa) }()
	defer func() { cancel(); ln.Close(); <-done }()
	for i := range 2 {
		msg := fmt.Sprint("c", i)
		if got, err := roundTrip(listen, msg); err != nil || got != "a:"+msg {
			t.Fatalf("connection %d after %d accept errors: %q, %v", i, 8, got, err)
		}
	}
	if n := fa.n.Load(); n >= 0 {
		t.Fatalf("%d accept errors left: not all were met", n+1)
	}
}

// hexAddr is parseProcAddr's inverse.
func hexAddr(ap netip.AddrPort) string {
	b := ap.Addr().As16()
	var s strings.Builder
	for i := range 4 {
		fmt.Fprintf(&s, "%08X", binary.NativeEndian.Uint32(b[4*i:]))
	}
	return fmt.Sprintf("%s:%04X", s.String(), ap.Port())
}
