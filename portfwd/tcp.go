package portfwd

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// acceptor is what serveTCP needs of a *net.TCPListener.
type acceptor interface {
	AcceptTCP() (*net.TCPConn, error)
}

// retryAfter handles an accept or read error of op: false when the
// forward ends (ctx done, the socket closed), else true after waiting the
// next backoff (*delay); the first error of a run is logged.
func (f *forward) retryAfter(ctx context.Context, err error, op string, delay *time.Duration) bool {
	if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
		return false
	}
	if *delay == 0 {
		f.p.log.WithError(err).WithField("forward", f.forward()).Warn(op + ": retrying with backoff")
	}
	*delay = backoff(*delay)
	return sleep(ctx, *delay)
}

// serveTCP accepts until ctx ends. An accept error (EMFILE, ENFILE,
// ENOBUFS, an aborted connection) is retried with backoff: only closing
// the listener ends the forward.
func (f *forward) serveTCP(ctx context.Context, ln acceptor) {
	var conns sync.WaitGroup
	defer conns.Wait()
	var delay time.Duration
	for {
		c, err := ln.AcceptTCP()
		if err != nil {
			if !f.retryAfter(ctx, err, "accept", &delay) {
				return
			}
			continue
		}
		delay = 0
		cctx, cancel := context.WithCancel(ctx)
		var up atomic.Pointer[net.TCPConn]
		e := &conn{sockets: 2, closeFn: func() {
			cancel()
			_ = c.Close()
			if u := up.Load(); u != nil {
				_ = u.Close()
			}
		}}
		e.touch()
		if !f.live.add(e) {
			e.kill()
			continue
		}
		to := *f.to.Load()
		conns.Go(func() {
			defer f.live.remove(e)
			defer e.kill()
			f.pipeTCP(cctx, e, c, &up, to)
		})
	}
}

// pipeTCP copies both ways between the client and a new connection to the
// container, passing half-closes on, until both directions end, one fails
// or stays idle too long, or ctx ends.
//
// The connection to the container is stored in upp, for e's closeFn.
func (f *forward) pipeTCP(ctx context.Context, e *conn, c *net.TCPConn, upp *atomic.Pointer[net.TCPConn], to netip.AddrPort) {
	d := net.Dialer{Timeout: dialTimeout}
	upc, err := d.DialContext(ctx, "tcp6", to.String())
	if err != nil {
		f.p.log.WithError(err).WithField("to", to).Debug("forward: connect to the container")
		return
	}
	up := upc.(*net.TCPConn)
	upp.Store(up)
	defer up.Close()
	if e.dead.Load() {
		return // killed while dialing, before up was stored
	}
	stop := context.AfterFunc(ctx, e.kill)
	defer stop()
	var half atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() { f.copyHalf(e, up, c, &half) })
	f.copyHalf(e, c, up, &half)
	wg.Wait()
}

// copyHalf copies src to dst until src ends (then it half-closes dst, and
// the other direction has TCPHalfClosed to finish) or fails.
func (f *forward) copyHalf(e *conn, dst, src *net.TCPConn, half *atomic.Bool) {
	rc, err := src.SyscallConn()
	if err != nil {
		e.kill()
		return
	}
	limit := func() time.Duration {
		if half.Load() {
			return f.p.lim.TCPHalfClosed
		}
		return f.p.lim.TCPIdle
	}
	for {
		// Idle counts from the last traffic either way.
		_ = src.SetReadDeadline(e.lastTime().Add(limit()))
		b, n, err := readPooled(rc, &tcpBufs)
		if errors.Is(err, os.ErrDeadlineExceeded) && e.idle() < limit() {
			continue // the other direction moves
		}
		if err != nil {
			e.kill()
			return
		}
		if n == 0 {
			tcpBufs.Put(b)
			half.Store(true)
			_ = dst.CloseWrite()
			// The other direction reads dst: shorten its wait.
			_ = dst.SetReadDeadline(time.Now().Add(f.p.lim.TCPHalfClosed))
			return
		}
		e.touch()
		_ = dst.SetWriteDeadline(time.Now().Add(limit()))
		_, werr := dst.Write((*b)[:n])
		tcpBufs.Put(b)
		if werr != nil {
			e.kill()
			return
		}
	}
}

// errnoIs reports whether err is the system error no.
func errnoIs(err error, no syscall.Errno) bool { return errors.Is(err, no) }
