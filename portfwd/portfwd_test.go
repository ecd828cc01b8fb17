package portfwd

import (
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/v6bridge/v6bridge/internal/nettest"
	"github.com/v6bridge/v6bridge/netspec"
)

func quiet() logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

// tcpBackend answers each connection with name and what it read, after
// the client's half-close.
func tcpBackend(t *testing.T, name string) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	nettest.EchoConns(t, ln, name+":")
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

// freePort returns a port nothing listens on at [::1] for proto.
func freePort(t *testing.T, proto uint8) netip.AddrPort {
	t.Helper()
	if proto == netspec.ProtoUDP {
		c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).AddrPort()
	}
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

func roundTrip(addr netip.AddrPort, msg string) (string, error) {
	c, err := net.DialTimeout("tcp6", addr.String(), 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		return "", err
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return "", err
	}
	b, err := io.ReadAll(c)
	return string(b), err
}

// TestTCPForwardRetargetAndStop: a forwarded port reaches its container
// with half-closes passed on; a new target takes the next connections; a
// forward left out stops listening.
func TestTCPForwardRetargetAndStop(t *testing.T) {
	a, b := tcpBackend(t, "a"), tcpBackend(t, "b")
	listen := freePort(t, netspec.ProtoTCP)
	p := New(quiet(), Limits{})
	defer p.Close()
	if err := p.Set([]Forward{{netspec.ProtoTCP, listen, a}}); err != nil {
		t.Fatal(err)
	}
	if got, err := roundTrip(listen, "hello"); err != nil || got != "a:hello" {
		t.Fatalf("through the forward: %q, %v", got, err)
	}
	if err := p.Set([]Forward{{netspec.ProtoTCP, listen, b}}); err != nil {
		t.Fatal(err)
	}
	if got, err := roundTrip(listen, "again"); err != nil || got != "b:again" {
		t.Fatalf("after the target moved: %q, %v", got, err)
	}
	if err := p.Set(nil); err != nil {
		t.Fatal(err)
	}
	if _, err := roundTrip(listen, "x"); err == nil {
		t.Fatal("a stopped forward still accepts")
	}
}

// TestUDPForward: datagrams reach the container and its replies come back
// to the client from the forwarded address.
func TestUDPForward(t *testing.T) {
	be := udpEcho(t)
	listen := freePort(t, netspec.ProtoUDP)
	p := New(quiet(), Limits{})
	defer p.Close()
	if err := p.Set([]Forward{{netspec.ProtoUDP, listen, be}}); err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp6", nil, net.UDPAddrFromAddrPort(listen))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, msg := range []string{"one", "two"} {
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		b := make([]byte, 1500)
		n, err := c.Read(b)
		if err != nil || string(b[:n]) != "re:"+msg {
			t.Fatalf("reply to %q: %q, %v", msg, b[:n], err)
		}
	}
}

// TestSCTPRefused: sctp cannot be forwarded in userspace here; the error
// says what can.
func TestSCTPRefused(t *testing.T) {
	p := New(quiet(), Limits{})
	defer p.Close()
	err := p.Set([]Forward{{netspec.ProtoSCTP, netip.MustParseAddrPort("[::1]:9"), netip.MustParseAddrPort("[fd00::5]:9")}})
	if err == nil || !strings.Contains(err.Error(), "tcp and udp are") {
		t.Fatalf("err = %v", err)
	}
}

// TestSocketBudgetLeavesTheAPIDescriptors: the forwards together get half
// of the descriptor limit beyond 256, at least 64 and at most 4,096.
func TestSocketBudgetLeavesTheAPIDescriptors(t *testing.T) {
	for _, tt := range []struct {
		nofile uint64
		want   int
	}{{256, 64}, {1024, 384}, {4096, 1920}, {524288, 4096}} {
		if got := socketBudget(tt.nofile); got != tt.want {
			t.Errorf("socketBudget(%d) = %d, want %d", tt.nofile, got, tt.want)
		}
	}
}
