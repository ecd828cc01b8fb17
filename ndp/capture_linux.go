package ndp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"
	"unsafe"

	"github.com/mdlayher/socket"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/v6bridge/v6bridge/ndp/ndpproto"
)

// The capture loop: one per uplink (native mode). It reads up to
// captureBatch solicitations per recvmmsg call, decides each with the fast
// path under one read lock, and sends the answers with one sendmmsg call:
// two system calls per batch, no allocation per packet.

const (
	captureBatch  = 64
	captureSlot   = 512 // bytes per packet; longer ones are cut and counted malformed
	captureRcvBuf = 1 << 20
)

// openCapture opens u's packet socket. For capture (native mode) it gets a
// filter that drops everything until the first targets are set, then is
// bound to the uplink; otherwise it only sends.
func openCapture(u *uplink, capture bool) (*socket.Conn, error) {
	// Protocol 0: the socket receives nothing until bound, so no frame
	// slips in before the filter.
	pc, err := socket.Socket(unix.AF_PACKET, unix.SOCK_DGRAM, 0, "ndp-"+u.name, nil)
	if err != nil {
		return nil, fmt.Errorf("ndp uplink %q: packet socket: %w", u.name, err)
	}
	if !capture {
		return pc, nil
	}
	prog, _ := ndpproto.BuildFilter(nil, nil)
	if err := attachFilter(pc, prog); err != nil {
		pc.Close()
		return nil, fmt.Errorf("ndp uplink %q: %w", u.name, err)
	}
	// A deeper queue rides out bursts; best effort (rmem_max caps it).
	_ = pc.SetReadBuffer(captureRcvBuf)
	if err := pc.Bind(&unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IPV6), Ifindex: u.index}); err != nil {
		pc.Close()
		return nil, fmt.Errorf("ndp uplink %q: bind packet socket: %w", u.name, err)
	}
	return pc, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// mmsghdr is struct mmsghdr: Go pads it to the C size on every arch.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
}

// capture is a capture loop's buffers, reused for every batch.
type capture struct {
	in      [captureBatch][captureSlot]byte
	inIov   [captureBatch]unix.Iovec
	inName  [captureBatch]unix.RawSockaddrLinklayer
	inMsg   [captureBatch]mmsghdr
	out     [captureBatch][ndpproto.NALen]byte
	outIov  [captureBatch]unix.Iovec
	outName [captureBatch]unix.RawSockaddrLinklayer
	outMsg  [captureBatch]mmsghdr
	kind    [captureBatch]int
	lim     *ndpproto.Limiter
	ns      ndpproto.FastNS

	// results of the last system call, set by the raw callbacks
	n     int
	errno syscall.Errno
	recv  func(fd uintptr) bool
	send  func(fd uintptr) bool
	nsend int
}

func newCapture(lim *ndpproto.Limiter) *capture {
	c := &capture{lim: lim}
	for i := range captureBatch {
		c.inIov[i] = unix.Iovec{Base: &c.in[i][0]}
		c.inIov[i].SetLen(captureSlot)
		c.inMsg[i].hdr.Name = (*byte)(unsafe.Pointer(&c.inName[i]))
		c.inMsg[i].hdr.Iov = &c.inIov[i]
		c.inMsg[i].hdr.SetIovlen(1)
		c.outIov[i] = unix.Iovec{Base: &c.out[i][0]}
		c.outIov[i].SetLen(ndpproto.NALen)
		c.outMsg[i].hdr.Name = (*byte)(unsafe.Pointer(&c.outName[i]))
		c.outMsg[i].hdr.Namelen = unix.SizeofSockaddrLinklayer
		c.outMsg[i].hdr.Iov = &c.outIov[i]
		c.outMsg[i].hdr.SetIovlen(1)
	}
	// Made once: a closure per call would allocate.
	c.recv = func(fd uintptr) bool {
		for i := range captureBatch {
			c.inMsg[i].hdr.Namelen = unix.SizeofSockaddrLinklayer
			c.inMsg[i].hdr.Flags = 0
		}
		r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&c.inMsg[0])), captureBatch, unix.MSG_DONTWAIT, 0, 0)
		if e == unix.EAGAIN || e == unix.EINTR {
			return false
		}
		c.n, c.errno = int(r), e
		return true
	}
	c.send = func(fd uintptr) bool {
		r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&c.outMsg[0])), uintptr(c.nsend), unix.MSG_DONTWAIT, 0, 0)
		if e == unix.EAGAIN || e == unix.EINTR {
			return false
		}
		c.n, c.errno = int(r), e
		return true
	}
	return c
}

// captureLoop answers the solicitations captured on u until ctx ends.
func (r *Responder) captureLoop(ctx context.Context, u *uplink) {
	rc, err := u.pc.SyscallConn()
	if err != nil {
		r.log.WithField("iface", u.name).WithError(err).Warn("ndp: capture socket")
		return
	}
	stop := context.AfterFunc(ctx, func() { _ = u.pc.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	c := newCapture(ndpproto.NewLimiter(r.cfg.SourceRate, r.cfg.TotalRate, r.cfg.DADRate, r.cfg.RouterRate))
	backoff := 10 * time.Millisecond
	for {
		err := rc.Read(c.recv)
		if err == nil && c.errno != 0 {
			err = c.errno
		}
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrClosed) {
				return
			}
			if errors.Is(err, unix.ENETDOWN) {
				// The uplink went down; the socket resumes when it comes up.
				r.log.WithField("iface", u.name).Debug("ndp: uplink down")
				continue
			}
			r.log.WithField("iface", u.name).WithError(err).Warn("ndp: read solicitations")
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 10 * time.Millisecond
		if n := r.decideBatch(u, c, c.n); n > 0 {
			r.sendBatch(rc, u, c, n)
		}
	}
}

// decideBatch decides the first n packets of c and builds the answers
// into c's output slots; it returns how many.
func (r *Responder) decideBatch(u *uplink, c *capture, n int) int {
	now := time.Now().UnixNano()
	out := 0
	r.mu.RLock()
	defer r.mu.RUnlock()
	cfg := r.decideConfig(u)
	for i := range n {
		name := &c.inName[i]
		if name.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		var src []byte
		if name.Halen == 6 {
			src = (*[6]byte)(unsafe.Pointer(&name.Addr[0]))[:]
		}
		pkt := c.in[i][:min(int(c.inMsg[i].n), captureSlot)]
		switch ndpproto.ParseFast(pkt, src, &c.ns) {
		case ndpproto.FastNotNS:
			continue
		case ndpproto.FastMalformed:
			r.solicitations.Add(1)
			r.ignore(ndpproto.ReasonMalformed, false)
			continue
		case ndpproto.FastBadChecksum:
			r.solicitations.Add(1)
			r.ignore(ndpproto.ReasonBadChecksum, false)
			continue
		case ndpproto.FastSlow:
			s, err := ndpproto.ParsePacket(pkt, src)
			if errors.Is(err, ndpproto.ErrNotSolicitation) {
				continue
			}
			r.solicitations.Add(1)
			if err != nil {
				r.ignore(ndpproto.ReasonMalformed, false)
				continue
			}
			c.ns.FromSolicitation(s)
		default:
			r.solicitations.Add(1)
		}
		mac, kind, reason := ndpproto.DecideFast(&c.ns, &cfg, u.owns, &c.out[out])
		if reason != "" {
			r.ignore(reason, false)
			continue
		}
		if reason := c.lim.Allow(now, c.ns.Src, c.ns.Target, kind, u.router.Sent(&c.ns)); reason != "" {
			r.ignore(reason, true)
			continue
		}
		o := &c.outName[out]
		*o = unix.RawSockaddrLinklayer{Family: unix.AF_PACKET, Protocol: htons(unix.ETH_P_IPV6), Ifindex: int32(u.index), Halen: 6}
		copy(o.Addr[:], mac[:])
		c.kind[out] = kind
		out++
		if r.debug() {
			r.log.WithFields(logrus.Fields{"addr": c.ns.Target, "iface": u.name, "to": c.ns.Src}).Debug("ndp: answering solicitation")
		}
	}
	return out
}

// sendBatch sends the first n answers of c.
func (r *Responder) sendBatch(rc syscall.RawConn, u *uplink, c *capture, n int) {
	for sent := 0; sent < n; {
		// sendmmsg goes from the first message; move the rest up.
		if sent > 0 {
			copy(c.out[:], c.out[sent:n])
			copy(c.outName[:], c.outName[sent:n])
			copy(c.kind[:], c.kind[sent:n])
			n -= sent
			sent = 0
		}
		c.nsend = n
		err := rc.Write(c.send)
		if err == nil && c.errno != 0 {
			err = c.errno
		}
		if err != nil || c.n <= 0 {
			r.log.WithField("iface", u.name).WithError(err).Warn("ndp: send advertisements")
			return
		}
		for i := range c.n {
			r.answered.Add(1)
			switch c.kind[i] {
			case ndpproto.KindDAD:
				r.answeredDAD.Add(1)
			case ndpproto.KindUnicast:
				r.answeredUnicast.Add(1)
			}
		}
		sent = c.n
		if sent >= n {
			return
		}
	}
}

// socketDropsLocked adds the capture socket's queue overflows since the
// last call (the kernel resets its counter on every read) to u's total.
func (r *Responder) socketDropsLocked(u *uplink) uint64 {
	if r.cfg.Mode == ndpproto.ModeNative && u.pc != nil {
		if st, err := u.pc.GetsockoptTpacketStats(unix.SOL_PACKET, unix.PACKET_STATISTICS); err == nil {
			u.drops.Add(uint64(st.Drops))
		}
	}
	return u.drops.Load()
}

// send puts one advertisement on u's wire (unsolicited advertisements and
// priming: paced, so one system call each is fine).
func (r *Responder) sendPacket(ctx context.Context, u *uplink, pkt []byte, mac [6]byte) error {
	r.mu.RLock()
	index := u.index // Reattach moves it
	r.mu.RUnlock()
	to := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IPV6), Ifindex: index, Halen: 6}
	copy(to.Addr[:], mac[:])
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := u.pc.Sendto(ctx, pkt, 0, to); err != nil {
		return fmt.Errorf("send on %s: %w", u.name, err)
	}
	return nil
}
