package nettest

import (
	"net"
	"net/netip"
	"time"
)

type udpConn struct{ *net.UDPConn }

func listenUDP(ap netip.AddrPort) (*udpConn, error) {
	c, err := net.ListenUDP("udp6", net.UDPAddrFromAddrPort(ap))
	if err != nil {
		return nil, err
	}
	return &udpConn{c}, nil
}

func (c *udpConn) read(timeout time.Duration) ([]byte, error) {
	if err := c.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	buf := make([]byte, 1500)
	n, err := c.Read(buf)
	return buf[:n], err
}

func sendUDP(to netip.AddrPort, b []byte) error {
	c, err := net.DialUDP("udp6", nil, net.UDPAddrFromAddrPort(to))
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Write(b)
	return err
}
