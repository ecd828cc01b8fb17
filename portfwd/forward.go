package portfwd

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/v6bridge/v6bridge/netspec"
)

var errAddrInUse = syscall.EADDRINUSE

// forward is one forward: bound and serving, or waiting to bind again.
type forward struct {
	p    *Forwarder
	k    key
	to   atomic.Pointer[netip.AddrPort]
	live *table

	// Guarded by p.mu.
	problem *Error // why it is not bound; nil when it is
	tries   int
	retry   *time.Timer
	closed  bool
	stop    context.CancelFunc // of the serving goroutines, when bound
	closer  io.Closer
	wg      sync.WaitGroup
}

func newForward(p *Forwarder, k key, to netip.AddrPort) *forward {
	max := p.lim.ConnsPerForward
	if k.proto == netspec.ProtoUDP {
		max = p.lim.FlowsPerForward
	}
	f := &forward{p: p, k: k, live: &table{max: max, sockets: p.sockets, set: map[*conn]struct{}{}}}
	f.to.Store(&to)
	return f
}

func (f *forward) forward() Forward { return Forward{f.k.proto, f.k.listen, *f.to.Load()} }

// bind listens on the forward's port and starts serving it.
func (f *forward) bind() error {
	var serve func(context.Context)
	switch f.k.proto {
	case netspec.ProtoTCP:
		ln, err := net.ListenTCP("tcp6", net.TCPAddrFromAddrPort(f.k.listen))
		if err != nil {
			return bindHint(err)
		}
		f.closer, serve = ln, func(ctx context.Context) { f.serveTCP(ctx, ln) }
	case netspec.ProtoUDP:
		pc, err := net.ListenUDP("udp6", net.UDPAddrFromAddrPort(f.k.listen))
		if err != nil {
			return bindHint(err)
		}
		f.closer, serve = pc, func(ctx context.Context) { f.serveUDP(ctx, pc) }
	default:
		return fmt.Errorf("protocol %s is not forwarded (tcp and udp are)", netspec.ProtoName(f.k.proto))
	}
	ctx, stop := context.WithCancel(context.Background())
	f.wg.Go(func() { serve(ctx) })
	f.stop = stop
	return nil
}

// bindHint adds what to do to a bind error that needs it.
func bindHint(err error) error {
	if errnoIs(err, syscall.EACCES) {
		return fmt.Errorf("%w: ports below 1024 need CAP_NET_BIND_SERVICE (the host service's unit and the managed plugin have it)", err)
	}
	return err
}

// close stops the forward: its retries, listener, connections and flows.
func (f *forward) close() {
	f.closed = true
	if f.retry != nil {
		f.retry.Stop()
	}
	if f.stop == nil {
		return
	}
	f.stop()
	_ = f.closer.Close()
	f.wg.Wait()
	f.live.closeAll()
}

// backoff is the next delay after a failure that came after delay.
func backoff(delay time.Duration) time.Duration {
	const first, most = 5 * time.Millisecond, time.Second
	return min(max(first, 2*delay), most)
}

// sleep waits d or until ctx ends; false when it ended.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// budget counts sockets all forwards hold together, those being closed
// included.
type budget struct {
	max     int64
	used    atomic.Int64
	closing atomic.Int64 // evicted connections not closed yet
}

func (b *budget) take(n int64) bool {
	for {
		u := b.used.Load()
		if u+n > b.max {
			return false
		}
		if b.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

func (b *budget) give(n int64) { b.used.Add(-n) }

// conn is a tcp connection or a udp flow a forward holds.
type conn struct {
	sockets int64
	last    atomic.Int64 // unix nanoseconds of the last traffic
	dead    atomic.Bool
	closeFn func()
}

func (c *conn) touch() { c.last.Store(time.Now().UnixNano()) }

func (c *conn) lastTime() time.Time { return time.Unix(0, c.last.Load()) }

func (c *conn) idle() time.Duration { return time.Since(c.lastTime()) }

// kill closes c's sockets once; its goroutines then end.
func (c *conn) kill() {
	if c.dead.CompareAndSwap(false, true) {
		c.closeFn()
	}
}

// table is the connections or flows of one forward, at most max, each
// holding sockets of the shared budget.
type table struct {
	mu      sync.Mutex
	set     map[*conn]struct{}
	max     int
	sockets *budget

	evicted, refused atomic.Uint64
}

// add makes room for c, closing the connections idle longest while the
// forward is at its cap or the budget is spent, and adds it; false when
// there is no room (the budget is spent and the forward holds nothing).
func (t *table) add(c *conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for len(t.set) >= t.max {
		t.evictLocked()
	}
	for !t.sockets.take(c.sockets) {
		// Sockets being closed come back soon: evicting more for them
		// would empty the forward.
		if t.sockets.closing.Load() > 0 || !t.evictLocked() {
			t.refused.Add(1)
			return false
		}
	}
	t.set[c] = struct{}{}
	return true
}

// evictLocked closes the connection idle longest; false when none is left.
func (t *table) evictLocked() bool {
	var old *conn
	for c := range t.set {
		if old == nil || c.last.Load() < old.last.Load() {
			old = c
		}
	}
	if old == nil {
		return false
	}
	// Closing waits for the goroutines reading the sockets to wake: not
	// under the lock, nor in the way of the next accept or datagram. The
	// sockets count until they are closed.
	delete(t.set, old)
	t.sockets.closing.Add(1)
	go func() {
		old.kill()
		t.sockets.give(old.sockets)
		t.sockets.closing.Add(-1)
	}()
	t.evicted.Add(1)
	return true
}

func (t *table) dropLocked(c *conn) {
	if _, ok := t.set[c]; ok {
		delete(t.set, c)
		t.sockets.give(c.sockets)
	}
}

// remove forgets c once it has ended.
func (t *table) remove(c *conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.dropLocked(c)
}

func (t *table) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.set)
}

func (t *table) closeAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for c := range t.set {
		t.dropLocked(c)
		c.kill()
	}
}

// Buffers: taken from a pool only once a socket is readable and given
// back after the write, so an idle connection or flow holds none.
var (
	tcpBufs = sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}
	udpBufs = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}
)

// readPooled waits, holding no buffer, until rc is readable (or its read
// deadline passes), then reads what is there into a buffer of pool, which
// the caller puts back. n == 0 is the end of a tcp stream, or an empty
// datagram.
func readPooled(rc syscall.RawConn, pool *sync.Pool) (*[]byte, int, error) {
	var (
		b    *[]byte
		n    int
		rerr error
	)
	err := rc.Read(func(fd uintptr) bool {
		b = pool.Get().(*[]byte)
		for {
			n, rerr = syscall.Read(int(fd), *b)
			if rerr != syscall.EINTR {
				break
			}
		}
		if rerr == syscall.EAGAIN {
			pool.Put(b)
			b = nil
			return false
		}
		return true
	})
	if err == nil && rerr != nil {
		err = rerr
	}
	if err != nil {
		if b != nil {
			pool.Put(b)
		}
		return nil, 0, err
	}
	return b, n, nil
}

// openFilesLimit is the process's soft descriptor limit (Go raises it to
// the hard limit at start).
func openFilesLimit() uint64 {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 1024
	}
	return r.Cur
}
