package ndp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/nftables"
	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/v6bridge/v6bridge/internal/netnsdo"
	"github.com/v6bridge/v6bridge/ndp/ingress"
	"github.com/v6bridge/v6bridge/ndp/ndpproto"
)

// Responder answers Neighbor Solicitations on the uplinks for the current
// targets. It acts in the network namespace it was created in. Its parts:
//
//   - the planner (ndpproto/plan.go, pure) turns targets into per-uplink
//     changes;
//   - a backend per mode applies them: native joins solicited-node groups
//     (groups_linux.go) and loads the capture filter, kernel installs
//     proxy-neighbour entries (proxy_linux.go), off does nothing;
//   - the capture loop (capture_linux.go) reads solicitations in batches
//     and answers them with the allocation-free fast path
//     (ndpproto/fast.go) within the budgets (ndpproto/limits.go);
//   - the announcer (announce_linux.go) paces unsolicited advertisements
//     and router priming;
//   - the ingress filter (ndpproto/ingress.go plans it, package ingress
//     builds its rules, ingress_linux.go applies them) drops the
//     solicitations for addresses nobody answers for at the uplink's
//     ingress, in both modes, and in native mode answers the common
//     solicitations for answered addresses there, in the kernel;
//   - the uplink (uplink_linux.go) is one interface answered on: its
//     sockets and the facts refreshUplink re-reads (MAC, state, addresses,
//     default router);
//   - the watcher (watch_linux.go) follows the uplinks' links and
//     addresses.
//
// Native mode, and why: an ICMPv6 socket sees multicast solicitations but
// never the unicast reachability probes (RFC 4861 7.3) routers send to the
// target address itself, because the kernel routes those towards the
// bridge. Missing them makes the router's entry fail every few tens of
// seconds (ndppd issue 6). So each uplink gets an AF_PACKET socket
// (SOCK_DGRAM, ETH_P_IPV6) with a classic BPF filter (ndpproto/filter.go) passing
// only Neighbor Solicitations whose target is one we answer for: it sees
// every such solicitation that reaches the interface, multicast and
// unicast, before routing, and the kernel drops everything else before a
// copy is made. Answers are sent on the same socket straight to the
// solicitor's MAC, so they need no neighbour resolution and may use any
// source address (Config.Source). The forwarded copy of a unicast probe
// reaches the container with hop limit 254 and is dropped there, as RFC
// 4861 7.1.1 requires.
//
// For multicast solicitations to reach the uplink at all through
// MLD-snooping switches and NIC filters, the responder joins the
// solicited-node group of each address on the uplink, reference-counted,
// sharded over more sockets when one runs out of option memory. Ranges
// are too wide for joins: the packet socket turns on ALLMULTI instead.
//
// Kernel mode adds one proxy-neighbour entry (NTF_PROXY) per address on
// its uplink, sets proxy_ndp=1 on the uplink and on "all" (the forwarding
// path checks "all" before handing unicast probes to ndisc) and
// proxy_delay=0. Proxy entries on the uplinks are taken as the
// responder's own in both modes: the first SetTargets removes those it
// does not want (native mode: all of them), so nothing answers for an
// address no container holds after a restart.
//
// CloseLeavingProxies hands answering over to the kernel while v6bridge is
// down (plugin disabled or upgraded, service stopped): proxy entries for
// every address, proxy_ndp on. Close leaves kernel mode's entries too.
//
// Both modes send unsolicited advertisements for each new address and
// again when an uplink comes up or changes its MAC.
type Responder struct {
	cfg     Config
	log     logrus.FieldLogger
	ns      netns.NsHandle
	own     bool // ns is the process's namespace: plain netlink handles and subscriptions, no setns
	h       *netlink.Handle
	nft     *nftables.Conn // owns the ingress filters; nil without them
	backend backend

	mu         sync.RWMutex
	targets    ndpproto.Targets
	dirty      bool // the last reconcile failed somewhere: redo it
	adopted    bool // existing proxy entries were read
	uplinks    []*uplink
	closed     bool
	ingressErr error // the ingress filters could not be set up at all
	// handingOver: CloseLeavingProxies started; keep every proxy entry
	handingOver bool
	takeBack    chan struct{}
	routerKick  chan struct{} // an uplink's default route changed (kickRouters)

	ann *announcer

	running atomic.Bool
	runWG   sync.WaitGroup
	done    chan struct{}
	once    sync.Once

	counters
}

// NewResponder creates a responder for the network namespace of the
// calling thread (callers switching namespaces lock their OS thread). It
// opens the sockets and, in kernel mode, writes the sysctls; answering
// starts with SetTargets, reading with Run.
func NewResponder(cfg Config) (*Responder, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	r := &Responder{
		cfg:        cfg,
		log:        cfg.Log,
		done:       make(chan struct{}),
		takeBack:   make(chan struct{}, 1),
		routerKick: make(chan struct{}, 1),
	}
	r.counters.init()
	r.ann = newAnnouncer(r)
	switch cfg.Mode {
	case ndpproto.ModeOff:
		r.ns = netns.None()
		r.backend = offBackend{}
		return r, nil
	case ndpproto.ModeKernel:
		r.backend = kernelBackend{r}
	default:
		r.backend = nativeBackend{r}
	}
	ok := false
	defer func() {
		if !ok {
			r.Close()
		}
	}()
	if r.ns, err = netns.Get(); err != nil {
		return nil, fmt.Errorf("ndp responder: get network namespace: %w", err)
	}
	// In the process's own namespace (the plugin) plain handles and
	// subscriptions need no setns, so no CAP_SYS_ADMIN; NewHandleAt and
	// Namespace: enter it even so. Tests run the responder elsewhere.
	r.own = processNS(r.ns)
	if r.own {
		r.h, err = netlink.NewHandle()
	} else {
		r.h, err = netlink.NewHandleAt(r.ns)
	}
	if err != nil {
		return nil, fmt.Errorf("ndp responder: netlink handle: %w", err)
	}
	for _, name := range cfg.Uplinks {
		u, err := r.openUplink(name)
		if err != nil {
			return nil, err
		}
		r.uplinks = append(r.uplinks, u)
		if _, err := r.refreshUplink(u); err != nil {
			return nil, err
		}
	}
	if cfg.Mode == ndpproto.ModeKernel {
		if err := r.proxySysctls(); err != nil {
			return nil, err
		}
	}
	if !cfg.NoIngressFilter {
		if err := r.openIngress(); err != nil {
			r.log.WithError(err).Warn("ndp: no ingress filter")
			r.ingressErr = err
		}
	}
	ok = true
	return r, nil
}

func (r *Responder) states() []*ndpproto.UplinkState {
	out := make([]*ndpproto.UplinkState, len(r.uplinks))
	for i, u := range r.uplinks {
		out[i] = u.st
	}
	return out
}

// SetTargets makes the responder answer for exactly addrs and ranges from
// now on: new addresses are answered (and announced) before it returns,
// dropped ones are no longer answered once it returns. The same set again
// is a no-op. In kernel mode ranges give ErrRangeUnsupported.
func (r *Responder) SetTargets(addrs []netip.Addr, ranges []netip.Prefix) error {
	t, err := ndpproto.NewTargets(addrs, ranges)
	if err != nil {
		return fmt.Errorf("set ndp targets: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errors.New("set ndp targets: responder closed")
	}
	var rangeErr error
	if ranges := t.Ranges(); r.cfg.Mode == ndpproto.ModeKernel && len(ranges) > 0 {
		rangeErr = fmt.Errorf("set ndp targets %v: %w", ranges, ErrRangeUnsupported)
	}
	if t.Equal(r.targets) && !r.dirty {
		return rangeErr
	}
	r.targets = t
	return errors.Join(r.reconcileLocked(), rangeErr)
}

// UpdateTargets adds single addresses to the targets and removes others,
// with SetTargets' guarantees for them, at the cost of what changes: it
// touches only those addresses' uplink entries, solicited-node groups or
// proxy entries, however many targets there are. An address in both lists
// ends up added. Removing an address that is no target is a no-op.
func (r *Responder) UpdateTargets(add, remove []netip.Addr) error {
	add = slices.Clone(add)
	for i, a := range add {
		add[i] = a.WithZone("")
		if err := ndpproto.CheckTarget(add[i]); err != nil {
			return fmt.Errorf("update ndp targets: %w", err)
		}
	}
	remove = slices.Clone(remove)
	for i, a := range remove {
		remove[i] = a.WithZone("")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errors.New("update ndp targets: responder closed")
	}
	r.targets.Update(add, remove)
	if r.dirty || r.cfg.Mode == ndpproto.ModeOff || !r.adopted {
		return r.reconcileLocked()
	}
	err := r.applyLocked(ndpproto.PlanUpdate(r.cfg.Mode, add, remove, r.states()))
	r.dirty = err != nil
	return err
}

// reconcileLocked moves every uplink to the state the targets ask for.
// Failed steps leave r.dirty set so the next call or resync retries them.
func (r *Responder) reconcileLocked() error {
	if r.cfg.Mode == ndpproto.ModeOff {
		r.dirty = false
		return nil
	}
	var errs []error
	if !r.adopted {
		if err := r.adoptProxiesLocked(); err != nil {
			errs = append(errs, err)
		} else {
			r.adopted = true
		}
	}
	errs = append(errs, r.applyLocked(ndpproto.PlanTargets(r.cfg.Mode, r.targets, r.states())))
	err := errors.Join(errs...)
	r.dirty = err != nil
	return err
}

// applyLocked carries a plan out: every uplink stops answering for its
// dropped addresses first (so a moved address is never answered twice),
// then the backend changes the kernel and the new addresses are queued
// for announcement.
func (r *Responder) applyLocked(p ndpproto.Plan) error {
	for i, u := range r.uplinks {
		for _, a := range p.Uplinks[i].Stop {
			r.log.WithFields(logrus.Fields{"addr": a, "iface": u.name}).Info("ndp: stop answering")
		}
		u.st.ApplyAddrs(ndpproto.UplinkPlan{Stop: p.Uplinks[i].Stop, Ranges: u.st.Ranges})
	}
	var errs []error
	for i, u := range r.uplinks {
		up := p.Uplinks[i]
		for _, a := range up.Start {
			r.log.WithFields(logrus.Fields{"addr": a, "iface": u.name, "mode": r.cfg.Mode}).Info("ndp: start answering")
		}
		for _, q := range up.Ranges {
			if !slices.Contains(u.st.Ranges, q) {
				r.log.WithFields(logrus.Fields{"addr": q, "iface": u.name, "mode": r.cfg.Mode}).Info("ndp: start answering range")
			}
		}
		for _, q := range u.st.Ranges {
			if !slices.Contains(up.Ranges, q) {
				r.log.WithFields(logrus.Fields{"addr": q, "iface": u.name}).Info("ndp: stop answering range")
			}
		}
		u.st.ApplyAddrs(ndpproto.UplinkPlan{Start: up.Start, Ranges: up.Ranges})
		r.syncIngressUpdate(u, up.Start, p.Uplinks[i].Stop) // before the new addresses are answered: the capture sees what ingress passes
		errs = append(errs, r.backend.apply(u, up)...)
	}
	r.ann.queue(p.Announce)
	return errors.Join(errs...)
}

// Run reads solicitations and sends advertisements until ctx ends or the
// responder is closed. It also follows the uplinks' link and address
// changes. It returns nil when stopped, also when the responder was closed
// before it started.
func (r *Responder) Run(ctx context.Context) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	if !r.running.CompareAndSwap(false, true) {
		r.mu.Unlock()
		return errors.New("ndp responder: already running")
	}
	r.runWG.Add(1)
	r.mu.Unlock()
	defer r.runWG.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-r.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	if r.cfg.Mode == ndpproto.ModeOff {
		<-ctx.Done()
		return nil
	}

	var wg sync.WaitGroup
	if r.cfg.Mode == ndpproto.ModeNative {
		for _, u := range r.uplinks {
			wg.Go(func() { r.captureLoop(ctx, u) })
		}
		wg.Go(func() { r.takeBackLoop(ctx) })
		wg.Go(func() { r.routerLoop(ctx) })
		r.kickTakeBack()
	}
	wg.Go(func() { r.ann.run(ctx) })
	wg.Go(func() { r.watchLoop(ctx) })
	wg.Wait()
	return nil
}

// debug reports whether Debug lines are logged, so the per-packet path
// builds no fields for nothing under a flood.
func (r *Responder) debug() bool {
	switch l := r.log.(type) {
	case *logrus.Logger:
		return l.IsLevelEnabled(logrus.DebugLevel)
	case *logrus.Entry:
		return l.Logger.IsLevelEnabled(logrus.DebugLevel)
	}
	return true
}

// inNS runs fn inside the responder's namespace: on a locked thread that
// entered it, or, in the process's own namespace, right here (no setns).
func (r *Responder) inNS(fn func() error) error {
	if r.own {
		return fn()
	}
	return netnsdo.Do(r.ns, fn)
}

// sysctlNS is the namespace for link's sysctl helpers: none (the calling
// thread's, no setns) in the process's own namespace.
func (r *Responder) sysctlNS() netns.NsHandle {
	if r.own {
		return netns.None()
	}
	return r.ns
}

// processNS reports whether ns is the network namespace of every thread of
// the process, so code on any goroutine acts in it without setns. Not just
// the main thread's: a caller that entered ns on a locked thread (the
// kernel tests) may be running on the main thread, and sysctls or sockets
// would then land in the namespace the other threads are in.
func processNS(ns netns.NsHandle) bool {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return false
	}
	seen := 0
	for _, t := range tasks {
		h, err := netns.GetFromPath("/proc/self/task/" + t.Name() + "/ns/net")
		if err != nil {
			continue // the thread is gone
		}
		same := h.Equal(ns)
		h.Close()
		if !same {
			return false
		}
		seen++
	}
	return seen > 0
}

// Stats returns the counters and the addresses answered for.
func (r *Responder) Stats() Stats {
	s := r.counters.stats()
	if r.cfg.Mode != ndpproto.ModeOff {
		r.mu.RLock()
		s.Addrs, s.Ranges = r.targets.Addrs(), r.targets.Ranges()
		for _, u := range r.uplinks {
			s.SocketDrops += r.socketDropsLocked(u)
			s.FilterCoarse = s.FilterCoarse || u.coarse
			n := r.ingressCounters(u)
			s.IngressDropped += n[ingress.TagDrop]
			kernelStats(&s, n)
			if u.ingress.err != nil {
				s.IngressProblem = u.ingress.err.Error()
			}
		}
		if r.ingressErr != nil {
			s.IngressProblem = r.ingressErr.Error()
		}
		r.mu.RUnlock()
	}
	s.AnnouncePending, s.AnnouncePeakRate = r.ann.status()
	return s
}

// kernelStats adds an ingress filter's counters (ingressCounters) to s:
// its answers, and what it did not answer by cause.
func kernelStats(s *Stats, n map[string]uint64) {
	kernel := n[ingress.TagAnswerMulticast] + n[ingress.TagAnswerUnicast]
	s.KernelAnswered += kernel
	s.Answered += kernel
	s.AnsweredUnicast += n[ingress.TagAnswerUnicast]
	s.Solicitations += kernel
	for tag, reason := range map[string]string{
		ingress.TagSourceLimit: ndpproto.ReasonSourceLimit, ingress.TagTotalLimit: ndpproto.ReasonTotalLimit,
		ingress.TagRouterLimit: ndpproto.ReasonRouterLimit, ingress.TagOverflowLimit: ndpproto.ReasonOverflowLimit,
		ingress.TagNonUnicast: ndpproto.ReasonNonUnicast,
	} {
		if n[tag] == 0 {
			continue
		}
		s.Solicitations += n[tag]
		s.Ignored += n[tag]
		if tag == ingress.TagNonUnicast {
			s.IgnoredReasons[reason] += n[tag]
		} else {
			s.Limited[reason] += n[tag]
		}
	}
}

// Close stops Run and closes the sockets, which leaves the joined groups.
// Kernel mode's proxy entries stay (see Responder). Close is idempotent.
func (r *Responder) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	r.once.Do(func() { close(r.done) })
	r.runWG.Wait() // Run's goroutines use the sockets and the handle

	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	for _, u := range r.uplinks {
		errs = append(errs, u.groups.close())
		if u.pc != nil {
			if err := u.pc.Close(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if r.nft != nil {
		for _, u := range r.uplinks {
			r.removeIngress(u)
		}
		if err := r.nft.CloseLasting(); err != nil {
			errs = append(errs, err)
		}
	}
	if r.h != nil {
		r.h.Close()
	}
	if r.ns.IsOpen() {
		r.ns.Close()
	}
	return errors.Join(errs...)
}

// resyncInterval re-reads the uplinks and re-applies the kernel state in
// case a netlink notification was lost.
const resyncInterval = 30 * time.Second
