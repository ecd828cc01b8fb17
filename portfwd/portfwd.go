// Package portfwd forwards ports published on the host's loopback address
// (docker run -p [::1]:5432:5432) to containers, in userspace.
//
// Such a port is meant for the host itself, and nftables cannot deliver it:
// a connection from ::1 that DNAT sends to a container leaves the loopback
// device with a loopback source, which IPv6 never routes (there is no
// route_localnet for IPv6). Docker's own bridge driver needs its userland
// proxy for the same reason. The forwarder listens on the loopback address
// itself and opens a connection of its own to the container for each one
// it accepts (tcp), or a socket of its own per client (udp); the container
// sees the gateway's address as the client.
//
// It runs inside the plugin, beside the API the engine calls, so every
// forward is bounded (Limits): connections and flows per forward and all
// together, with the one idle longest closed for a new one; idle and
// half-close timeouts; pooled buffers held only while data moves; accept
// errors retried with backoff. A port another program holds fails only
// its own forward, which binds by itself once the port is free.
package portfwd

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/v6bridge/v6bridge/netspec"
)

// MaxPorts is the most host ports on a loopback address one container may
// publish (-p [::1]:8000-8255:8000-8255 is 256): each is a listener of the
// plugin's own.
const MaxPorts = 256

// dialTimeout bounds the connection to the container.
const dialTimeout = 5 * time.Second

// Limits bound what the forwards hold. The zero value of a field means its
// default (DefaultLimits).
type Limits struct {
	// ConnsPerForward is the most tcp connections of one forward; a new
	// one closes the one idle longest.
	ConnsPerForward int
	// FlowsPerForward is the most udp clients of one forward, each with a
	// socket of its own towards the container; a new one closes the one
	// idle longest.
	FlowsPerForward int
	// Sockets is the most sockets towards clients and containers of all
	// forwards together (a tcp connection holds two, a udp flow one), so
	// that the plugin's API always has descriptors left.
	Sockets int
	// TCPIdle closes a tcp connection without traffic either way;
	// TCPHalfClosed one that one side has finished, without traffic the
	// other way; UDPIdle a udp flow without traffic.
	TCPIdle, TCPHalfClosed, UDPIdle time.Duration
}

// DefaultLimits returns the limits New uses for zero fields: 512
// connections and 512 flows per forward, sockets for all forwards from
// the descriptor limit (half of it beyond 256 kept for the API, at most
// 4,096), an hour idle, two minutes half-closed, one minute for udp.
func DefaultLimits() Limits {
	return Limits{ConnsPerForward: 512, FlowsPerForward: 512, Sockets: socketBudget(openFilesLimit()),
		TCPIdle: time.Hour, TCPHalfClosed: 2 * time.Minute, UDPIdle: time.Minute}
}

// socketBudget is the share of a descriptor limit the forwards may use.
func socketBudget(nofile uint64) int {
	const reserve, most, least = 256, 4096, 64
	if nofile <= reserve+2*least {
		return least
	}
	return int(min((nofile-reserve)/2, most))
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	pick := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	pickD := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	pick(&l.ConnsPerForward, d.ConnsPerForward)
	pick(&l.FlowsPerForward, d.FlowsPerForward)
	pick(&l.Sockets, d.Sockets)
	pickD(&l.TCPIdle, d.TCPIdle)
	pickD(&l.TCPHalfClosed, d.TCPHalfClosed)
	pickD(&l.UDPIdle, d.UDPIdle)
	return l
}

// Forward is one forwarded port: what arrives at Listen goes to To.
type Forward struct {
	Proto  uint8 // netspec.ProtoTCP or netspec.ProtoUDP
	Listen netip.AddrPort
	To     netip.AddrPort
}

// String is the forward as logs and status show it: "tcp [::1]:5432->[fd00::5]:5432".
func (f Forward) String() string {
	return fmt.Sprintf("%s %s->%s", netspec.ProtoName(f.Proto), f.Listen, f.To)
}

// Error is why one forward does not run.
type Error struct {
	Forward Forward
	// Holder names who holds the port when it is taken: "pid 812
	// (postgres)", or "another program" when the holder is not visible.
	Holder string
	Err    error
}

// Error names the forward, the port and, when taken, its holder.
func (e *Error) Error() string {
	port := fmt.Sprintf("port %s/%s", e.Forward.Listen, netspec.ProtoName(e.Forward.Proto))
	if e.Holder != "" {
		return fmt.Sprintf("forward %s: %s is held by %s: stop it or publish another host port (%v)", e.Forward, port, e.Holder, e.Err)
	}
	return fmt.Sprintf("forward %s: %s: %v", e.Forward, port, e.Err)
}

// Unwrap returns the bind error (syscall.EADDRINUSE for a taken port).
func (e *Error) Unwrap() error { return e.Err }

// Status is one forward as `v6bridge status` shows it.
type Status struct {
	Forward string
	Bound   bool
	// Problem is why the forward is not bound (it retries by itself).
	Problem string `json:",omitempty"`
	// Conns are its live tcp connections or udp flows; Evicted those
	// closed for a newer one, Refused those turned away with no room.
	Conns            int
	Evicted, Refused uint64
}

// key is what a listener binds.
type key struct {
	proto  uint8
	listen netip.AddrPort
}

// Forwarder runs the forwards it is given. Use New.
type Forwarder struct {
	log     logrus.FieldLogger
	lim     Limits
	sockets *budget
	mu      sync.Mutex
	fwds    map[key]*forward
}

// New returns a Forwarder that forwards nothing, bounded by lim (zero
// fields: DefaultLimits).
func New(log logrus.FieldLogger, lim Limits) *Forwarder {
	lim = lim.withDefaults()
	return &Forwarder{log: log, lim: lim, sockets: &budget{max: int64(lim.Sockets)}, fwds: map[key]*forward{}}
}

// Retry delays of a forward that could not bind.
const (
	retryFirst = time.Second
	retryMost  = 15 * time.Second
)

// Set makes the forwarder run exactly fs: it stops the forwards left out,
// points the kept ones at their new container address (for new
// connections), and binds the new ones before it returns. A forward that
// cannot bind (the port is taken on the host) is kept and bound again by
// itself, with backoff, once the port is free; the others run. The error
// names only the forwards new in fs that could not bind (each an *Error),
// so the request that asked for one fails and no other; Status names
// every forward not bound.
func (p *Forwarder) Set(fs []Forward) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	want := make(map[key]netip.AddrPort, len(fs))
	for _, f := range fs {
		want[key{f.Proto, f.Listen}] = f.To
	}
	for k, f := range p.fwds {
		if _, ok := want[k]; !ok {
			f.close()
			delete(p.fwds, k)
			p.log.WithField("forward", f.forward()).Debug("stopped forwarding")
		}
	}
	var errs []error
	for k, to := range want {
		if f, ok := p.fwds[k]; ok {
			f.to.Store(&to)
			continue
		}
		f := newForward(p, k, to)
		p.fwds[k] = f
		if err := p.bindLocked(f); err != nil {
			errs = append(errs, err)
			p.retryLater(f)
			continue
		}
		p.log.WithField("forward", f.forward()).Info("forwarding")
	}
	return errors.Join(errs...)
}

// bindLocked binds f and starts serving it, or records why not.
func (p *Forwarder) bindLocked(f *forward) error {
	if err := f.bind(); err != nil {
		f.problem = bindError(f, err)
		return f.problem
	}
	f.problem = nil
	return nil
}

// bindError is f's bind error, naming the holder of a taken port. It
// reads /proc: call it without p.mu where it can wait.
func bindError(f *forward, err error) *Error {
	e := &Error{Forward: f.forward(), Err: err}
	if errors.Is(err, errAddrInUse) {
		e.Holder = holder(f.k.proto, f.k.listen)
	}
	return e
}

// retryLater binds f again after a delay that doubles each try. Looking
// for the holder of a port still taken happens without p.mu, so joins and
// status do not wait for it.
func (p *Forwarder) retryLater(f *forward) {
	d := min(retryFirst<<min(f.tries, 8), retryMost)
	f.tries++
	waiting := func() bool { return p.fwds[f.k] == f && f.problem != nil && !f.closed }
	f.retry = time.AfterFunc(d, func() {
		p.mu.Lock()
		if !waiting() {
			p.mu.Unlock()
			return
		}
		err := f.bind()
		if err == nil {
			f.problem = nil
			p.mu.Unlock()
			p.log.WithFields(logrus.Fields{"forward": f.forward(), "tries": f.tries}).Info("forwarding: the port is free again")
			return
		}
		p.mu.Unlock()
		e := bindError(f, err)
		p.mu.Lock()
		defer p.mu.Unlock()
		if waiting() {
			f.problem = e
			p.retryLater(f)
		}
	})
}

// Close stops every forward.
func (p *Forwarder) Close() {
	if err := p.Set(nil); err != nil {
		p.log.WithError(err).Warn("stop forwards")
	}
}

// Status returns every forward, sorted.
func (p *Forwarder) Status() []Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Status, 0, len(p.fwds))
	for _, f := range p.fwds {
		s := Status{Forward: f.forward().String(), Bound: f.problem == nil, Conns: f.live.count(),
			Evicted: f.live.evicted.Load(), Refused: f.live.refused.Load()}
		if f.problem != nil {
			s.Problem = f.problem.Error() + "; retrying"
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Forward < out[j].Forward })
	return out
}
