package portfwd

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"
)

// flow is one udp client of a forward: datagrams from it leave on up, the
// container's replies come back from the listening address.
type flow struct {
	conn
	up *net.UDPConn
}

// serveUDP reads datagrams until ctx ends, keeping a flow per client.
func (f *forward) serveUDP(ctx context.Context, pc *net.UDPConn) {
	var mu sync.Mutex
	flows := map[netip.AddrPort]*flow{}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer f.live.closeAll()
	bp := udpBufs.Get().(*[]byte)
	defer udpBufs.Put(bp)
	buf := *bp
	var delay time.Duration
	for {
		n, from, err := pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			if !f.retryAfter(ctx, err, "read", &delay) {
				return
			}
			continue
		}
		delay = 0
		mu.Lock()
		fl := flows[from]
		mu.Unlock()
		if fl == nil || fl.dead.Load() {
			if fl = f.newFlow(pc, from); fl == nil {
				continue
			}
			mu.Lock()
			flows[from] = fl
			mu.Unlock()
			wg.Go(func() {
				f.replies(pc, fl, from)
				mu.Lock()
				if flows[from] == fl {
					delete(flows, from)
				}
				mu.Unlock()
			})
		}
		fl.touch()
		_, _ = fl.up.Write(buf[:n])
	}
}

// newFlow opens a socket towards the container for a new client; nil when
// it cannot or there is no room.
func (f *forward) newFlow(pc *net.UDPConn, from netip.AddrPort) *flow {
	to := *f.to.Load()
	up, err := net.DialUDP("udp6", nil, net.UDPAddrFromAddrPort(to))
	if err != nil {
		f.p.log.WithError(err).WithField("to", to).Debug("forward: socket to the container")
		return nil
	}
	fl := &flow{up: up}
	fl.sockets = 1
	fl.closeFn = func() { _ = up.Close() }
	fl.touch()
	if !f.live.add(&fl.conn) {
		fl.kill()
		return nil
	}
	return fl
}

// replies sends the container's datagrams on fl back to the client until
// the flow is idle UDPIdle, fails, or is closed.
func (f *forward) replies(pc *net.UDPConn, fl *flow, to netip.AddrPort) {
	defer f.live.remove(&fl.conn)
	defer fl.kill()
	rc, err := fl.up.SyscallConn()
	if err != nil {
		return
	}
	for {
		_ = fl.up.SetReadDeadline(fl.lastTime().Add(f.p.lim.UDPIdle))
		b, n, err := readPooled(rc, &udpBufs)
		if errors.Is(err, os.ErrDeadlineExceeded) && fl.idle() < f.p.lim.UDPIdle {
			continue // the client still sends
		}
		if err != nil {
			return
		}
		fl.touch()
		_, _ = pc.WriteToUDPAddrPort((*b)[:n], to)
		udpBufs.Put(b)
	}
}
