package nettest

import (
	"io"
	"net"
	"testing"
)

// ServeConns accepts connections on ln until it is closed, handing each to
// handle in a goroutine of its own. t.Cleanup closes ln.
func ServeConns(t testing.TB, ln net.Listener, handle func(net.Conn)) {
	t.Helper()
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go handle(c)
		}
	}()
}

// ServePackets reads datagrams from pc until it is closed, handing each
// with its sender to handle, in the reading goroutine; b is only valid
// during the call. t.Cleanup closes pc.
func ServePackets(t testing.TB, pc net.PacketConn, handle func(b []byte, from net.Addr)) {
	t.Helper()
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			handle(buf[:n], from)
		}
	}()
}

// EchoConns answers each connection on ln, once the client has closed its
// sending half, with prefix and all the client sent, then closes it; the
// client learns which server answered and that its bytes went through.
func EchoConns(t testing.TB, ln net.Listener, prefix string) {
	t.Helper()
	ServeConns(t, ln, func(c net.Conn) {
		defer c.Close()
		b, _ := io.ReadAll(c)
		_, _ = c.Write(append([]byte(prefix), b...))
	})
}

// EchoPackets answers each datagram on pc with prefix and the datagram, to
// its sender.
func EchoPackets(t testing.TB, pc net.PacketConn, prefix string) {
	t.Helper()
	ServePackets(t, pc, func(b []byte, from net.Addr) {
		_, _ = pc.WriteTo(append([]byte(prefix), b...), from)
	})
}
