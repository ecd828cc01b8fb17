// Package proxy forwards ports published on the host's loopback address
// (docker run -p [::1]:5432:5432) to containers, in userspace.
//
// Such a port is meant for the host itself, and nftables cannot deliver it:
// a connection from ::1 that DNAT sends to a container leaves the loopback
// device with a loopback source, which IPv6 never routes (there is no
// route_localnet for IPv6). Docker's own bridge driver needs its userland
// proxy for the same reason. The proxy listens on the loopback address
// itself and opens a connection of its own to the container for each one
// it accepts (tcp), or a socket of its own per client (udp); the container
// sees the gateway's address as the client.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/v6bridge/v6bridge/netspec"
)

// Timeouts of forwarded traffic.
const (
	// DialTimeout bounds the connection to the container.
	DialTimeout = 5 * time.Second
	// UDPIdle is how long a udp client's flow lives without traffic.
	UDPIdle = 60 * time.Second
)

// Forward is one forwarded port: what arrives at Listen goes to To.
type Forward struct {
	Proto  uint8 // netspec.ProtoTCP or netspec.ProtoUDP
	Listen netip.AddrPort
	To     netip.AddrPort
}

func (f Forward) String() string {
	return fmt.Sprintf("%s %s->%s", netspec.ProtoName(f.Proto), f.Listen, f.To)
}

// key is what a listener binds.
type key struct {
	proto  uint8
	listen netip.AddrPort
}

// Proxy runs the forwards it is given. The zero value is not usable; use
// New.
type Proxy struct {
	log     logrus.FieldLogger
	mu      sync.Mutex
	running map[key]*listener
}

// New returns a Proxy that forwards nothing.
func New(log logrus.FieldLogger) *Proxy {
	return &Proxy{log: log, running: map[key]*listener{}}
}

// Set makes the proxy run exactly fs: it stops the forwards left out,
// points the kept ones at their new container address (for new
// connections), and binds the new ones before it returns. A forward that
// cannot bind (the port is taken on the host) is not run and named in the
// error; the others run. Sets again with the same forwards retry it.
func (p *Proxy) Set(fs []Forward) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	want := make(map[key]netip.AddrPort, len(fs))
	for _, f := range fs {
		want[key{f.Proto, f.Listen}] = f.To
	}
	for k, l := range p.running {
		if _, ok := want[k]; !ok {
			l.close()
			delete(p.running, k)
			p.log.WithField("forward", l.forward()).Debug("stopped forwarding")
		}
	}
	var errs []error
	for k, to := range want {
		if l, ok := p.running[k]; ok {
			l.to.Store(&to)
			continue
		}
		l, err := p.start(k, to)
		if err != nil {
			errs = append(errs, fmt.Errorf("forward %s: %w", Forward{k.proto, k.listen, to}, err))
			continue
		}
		p.running[k] = l
		p.log.WithField("forward", l.forward()).Info("forwarding")
	}
	return errors.Join(errs...)
}

// Close stops every forward.
func (p *Proxy) Close() {
	if err := p.Set(nil); err != nil {
		p.log.WithError(err).Warn("stop forwards")
	}
}

// listener serves one forward until closed.
type listener struct {
	k      key
	to     atomic.Pointer[netip.AddrPort]
	stop   context.CancelFunc
	closer io.Closer
	wg     sync.WaitGroup
}

func (l *listener) forward() Forward { return Forward{l.k.proto, l.k.listen, *l.to.Load()} }

func (l *listener) close() {
	l.stop()
	_ = l.closer.Close()
	l.wg.Wait()
}

func (p *Proxy) start(k key, to netip.AddrPort) (*listener, error) {
	ctx, stop := context.WithCancel(context.Background())
	l := &listener{k: k, stop: stop}
	l.to.Store(&to)
	switch k.proto {
	case netspec.ProtoTCP:
		ln, err := net.ListenTCP("tcp6", net.TCPAddrFromAddrPort(k.listen))
		if err != nil {
			stop()
			return nil, err
		}
		l.closer = ln
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			p.serveTCP(ctx, l, ln)
		}()
	case netspec.ProtoUDP:
		pc, err := net.ListenUDP("udp6", net.UDPAddrFromAddrPort(k.listen))
		if err != nil {
			stop()
			return nil, err
		}
		l.closer = pc
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			p.serveUDP(ctx, l, pc)
		}()
	default:
		stop()
		return nil, fmt.Errorf("protocol %s is not forwarded (tcp and udp are)", netspec.ProtoName(k.proto))
	}
	return l, nil
}

func (p *Proxy) serveTCP(ctx context.Context, l *listener, ln *net.TCPListener) {
	var conns sync.WaitGroup
	defer conns.Wait()
	for {
		c, err := ln.AcceptTCP()
		if err != nil {
			if ctx.Err() == nil {
				p.log.WithError(err).WithField("forward", l.forward()).Warn("accept")
			}
			return
		}
		conns.Add(1)
		go func() {
			defer conns.Done()
			p.pipeTCP(ctx, c, *l.to.Load())
		}()
	}
}

// pipeTCP copies both ways between the client and a new connection to the
// container, passing half-closes on, until both directions end or the
// forward stops.
func (p *Proxy) pipeTCP(ctx context.Context, c *net.TCPConn, to netip.AddrPort) {
	defer c.Close()
	d := net.Dialer{Timeout: DialTimeout}
	up, err := d.DialContext(ctx, "tcp6", to.String())
	if err != nil {
		p.log.WithError(err).WithField("to", to).Debug("forward: connect to the container")
		return
	}
	defer up.Close()
	stop := context.AfterFunc(ctx, func() { c.Close(); up.Close() })
	defer stop()
	var wg sync.WaitGroup
	half := func(dst, src *net.TCPConn) {
		defer wg.Done()
		_, _ = io.Copy(dst, src)
		_ = dst.CloseWrite()
	}
	wg.Add(2)
	go half(up.(*net.TCPConn), c)
	go half(c, up.(*net.TCPConn))
	wg.Wait()
}

// serveUDP keeps a socket to the container per client: datagrams from the
// client go out on it, replies come back from the listening address.
func (p *Proxy) serveUDP(ctx context.Context, l *listener, pc *net.UDPConn) {
	type flow struct {
		up   *net.UDPConn
		last atomic.Int64 // unix nanoseconds of the last datagram
	}
	var mu sync.Mutex
	flows := map[netip.AddrPort]*flow{}
	var wg sync.WaitGroup
	defer func() {
		mu.Lock()
		for _, f := range flows {
			f.up.Close()
		}
		mu.Unlock()
		wg.Wait()
	}()
	buf := make([]byte, 65535)
	for {
		n, from, err := pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			if ctx.Err() == nil {
				p.log.WithError(err).WithField("forward", l.forward()).Warn("read")
			}
			return
		}
		mu.Lock()
		f, ok := flows[from]
		if !ok {
			up, err := net.DialUDP("udp6", nil, net.UDPAddrFromAddrPort(*l.to.Load()))
			if err != nil {
				mu.Unlock()
				p.log.WithError(err).WithField("to", *l.to.Load()).Debug("forward: socket to the container")
				continue
			}
			f = &flow{up: up}
			flows[from] = f
			wg.Add(1)
			go func() {
				defer wg.Done()
				rb := make([]byte, 65535)
				for {
					_ = f.up.SetReadDeadline(time.Now().Add(UDPIdle))
					n, err := f.up.Read(rb)
					if err != nil {
						var ne net.Error
						if errors.As(err, &ne) && ne.Timeout() && time.Since(time.Unix(0, f.last.Load())) < UDPIdle {
							continue // the client still sends
						}
						break
					}
					f.last.Store(time.Now().UnixNano())
					_, _ = pc.WriteToUDPAddrPort(rb[:n], from)
				}
				mu.Lock()
				delete(flows, from)
				mu.Unlock()
				f.up.Close()
			}()
		}
		mu.Unlock()
		f.last.Store(time.Now().UnixNano())
		_, _ = f.up.Write(buf[:n])
	}
}
