package ndp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mndp "github.com/mdlayher/ndp"
	"github.com/mdlayher/socket"
	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/net/bpf"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// Timings of the responder.
const (
	// unsolicitedCount advertisements are sent per new address,
	// unsolicitedInterval apart (RFC 4861 7.2.6: a few, spaced).
	unsolicitedCount    = 3
	unsolicitedInterval = time.Second
	// resyncInterval re-reads the uplinks and re-applies the kernel state
	// in case a netlink notification was lost.
	resyncInterval = 30 * time.Second
)

// Responder answers Neighbor Solicitations on the uplinks for the current
// targets. It acts in the network namespace it was created in.
//
// Native mode, and why: an ICMPv6 socket sees multicast solicitations but
// never the unicast reachability probes (RFC 4861 7.3) routers send to the
// target address itself, because the kernel routes those towards the
// bridge. Missing them makes the router's entry fail every few tens of
// seconds (ndppd issue 6). So each uplink gets an AF_PACKET socket
// (SOCK_DGRAM, ETH_P_IPV6) with a classic BPF filter passing only ICMPv6
// Neighbor Solicitations (also behind a hop-by-hop header): it sees every
// solicitation that reaches the interface, multicast and unicast, before
// routing. Answers are built here (Decide) and sent on the same socket
// straight to the solicitor's MAC, so they need no neighbour resolution
// and may use any source address (Config.Source). The forwarded copy of a
// unicast probe reaches the container with hop limit 254 and is dropped
// there, as RFC 4861 7.1.1 requires. Kernel proxy entries were the other
// choice; they are ModeKernel, but leave the source address, the Override
// flag and the delay to the kernel, and outlive the process.
//
// For multicast solicitations to reach the uplink at all through
// MLD-snooping switches and NIC filters, the responder joins the
// solicited-node group of each address on the uplink with a
// mdlayher/ndp Conn (which sends the MLD reports), reference-counted,
// sharded over more sockets when one runs out of option memory. Ranges
// are too wide for joins: the packet socket turns on ALLMULTI instead.
//
// Kernel mode adds one proxy-neighbour entry (NTF_PROXY) per address on
// its uplink, sets proxy_ndp=1 on the uplink and on "all" (the forwarding
// path checks "all" before handing unicast probes to ndisc) and
// proxy_delay=0. The entries on the uplinks are taken as the responder's
// own: the first SetTargets removes those for other addresses, so nothing
// answers for an address that no container holds after a restart. Close
// leaves them in place, so answers continue while the plugin restarts.
//
// Both modes send unsolicited advertisements for each new address and
// again when an uplink comes up or changes its MAC.
type Responder struct {
	cfg Config
	log logrus.FieldLogger
	ns  netns.NsHandle
	own bool // ns is the process's namespace: plain netlink handles and subscriptions
	h   *netlink.Handle

	mu      sync.RWMutex
	targets Targets
	dirty   bool // the last reconcile failed somewhere: redo it
	adopted bool // kernel mode: existing proxy entries were read
	uplinks []*uplink
	closed  bool

	annMu   sync.Mutex
	pending map[netip.Addr]*announcement
	kick    chan struct{}

	running atomic.Bool
	runWG   sync.WaitGroup
	done    chan struct{}
	once    sync.Once

	solicitations, answered, answeredUnicast, answeredDAD atomic.Uint64
	ignored, unsolicited                                  atomic.Uint64
	reasonMu                                              sync.Mutex
	reasons                                               map[string]uint64
}

// uplink is one interface the responder answers on. Fields below mu are
// guarded by Responder.mu.
type uplink struct {
	name  string
	index int
	pc    *socket.Conn // packet socket: capture (native) and send

	mac       net.HardwareAddr
	up        bool
	linkLocal netip.Addr
	global    netip.Addr
	onLink    []netip.Prefix
	addrs     map[netip.Addr]struct{} // answered here
	ranges    []netip.Prefix          // answered here
	allmulti  bool
	groups    map[netip.Addr]*mndp.Conn // joined solicited-node groups
	groupRefs map[netip.Addr]int        // addresses of addrs per solicited-node group (native)
	conns     []*mndp.Conn              // join sockets (shards)
	proxies   map[netip.Addr]struct{}   // kernel proxy entries installed
}

type announcement struct {
	left int
	due  time.Time
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
		cfg:     cfg,
		log:     cfg.Log,
		pending: map[netip.Addr]*announcement{},
		kick:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		reasons: map[string]uint64{},
	}
	if cfg.Mode == ModeOff {
		r.ns = netns.None()
		return r, nil
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
		if err := r.refreshUplink(u); err != nil {
			return nil, err
		}
	}
	if cfg.Mode == ModeKernel {
		if err := r.kernelSysctls(); err != nil {
			return nil, err
		}
	}
	ok = true
	return r, nil
}

func (r *Responder) openUplink(name string) (*uplink, error) {
	l, err := r.h.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("ndp uplink %q: %w", name, err)
	}
	u := &uplink{
		name:    name,
		index:   l.Attrs().Index,
		addrs:   map[netip.Addr]struct{}{},
		groups:  map[netip.Addr]*mndp.Conn{},
		proxies: map[netip.Addr]struct{}{},
	}
	// Protocol 0: the socket receives nothing until bound, so no frame
	// slips in before the filter.
	pc, err := socket.Socket(unix.AF_PACKET, unix.SOCK_DGRAM, 0, "ndp-"+name, nil)
	if err != nil {
		return nil, fmt.Errorf("ndp uplink %q: packet socket: %w", name, err)
	}
	u.pc = pc
	if r.cfg.Mode != ModeNative {
		return u, nil // kernel mode only sends on it
	}
	prog, err := bpf.Assemble(solicitationFilter)
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("ndp uplink %q: assemble filter: %w", name, err)
	}
	if err := pc.SetBPF(prog); err != nil {
		pc.Close()
		return nil, fmt.Errorf("ndp uplink %q: attach filter: %w", name, err)
	}
	if err := pc.Bind(&unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IPV6), Ifindex: u.index}); err != nil {
		pc.Close()
		return nil, fmt.Errorf("ndp uplink %q: bind packet socket: %w", name, err)
	}
	return u, nil
}

// solicitationFilter passes IPv6 packets (offsets from the IPv6 header, as
// a SOCK_DGRAM packet socket sees them) that are ICMPv6 Neighbor
// Solicitations or start with a hop-by-hop header (parsed in Go).
var solicitationFilter = []bpf.Instruction{
	bpf.LoadAbsolute{Off: 6, Size: 1},                                          // 0: next header
	bpf.JumpIf{Cond: bpf.JumpEqual, Val: protoHopByHop, SkipTrue: 3},           // 1: -> accept
	bpf.JumpIf{Cond: bpf.JumpEqual, Val: protoICMPv6, SkipFalse: 3},            // 2: -> drop
	bpf.LoadAbsolute{Off: ipv6HeaderLen, Size: 1},                              // 3: icmpv6 type
	bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(typeNeighSolic), SkipFalse: 1}, // 4: -> drop
	bpf.RetConstant{Val: 1 << 16},                                              // 5: accept
	bpf.RetConstant{Val: 0},                                                    // 6: drop
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// kernelSysctls turns on proxy answering for the uplinks (kernel mode).
func (r *Responder) kernelSysctls() error {
	set := []string{"net/ipv6/conf/all/proxy_ndp"}
	for _, u := range r.uplinks {
		set = append(set, "net/ipv6/conf/"+u.name+"/proxy_ndp")
	}
	for _, key := range set {
		if err := r.writeSysctl(key, "1"); err != nil {
			return err
		}
	}
	for _, u := range r.uplinks {
		if err := r.writeSysctl("net/ipv6/neigh/"+u.name+"/proxy_delay", "0"); err != nil {
			return err
		}
		b, err := os.ReadFile(filepath.Join(r.cfg.ProcSys, "net/ipv6/conf", u.name, "forwarding"))
		if err == nil && strings.TrimSpace(string(b)) == "0" {
			r.log.WithField("iface", u.name).Warn("ndp kernel mode: forwarding is off on the uplink, the kernel will not answer as a proxy")
		}
	}
	return nil
}

func (r *Responder) writeSysctl(key, value string) error {
	p := filepath.Join(r.cfg.ProcSys, key)
	if err := os.WriteFile(p, []byte(value), 0o644); err != nil {
		return fmt.Errorf("ndp kernel mode: set %s=%s: %w", strings.ReplaceAll(key, "/", "."), value, err)
	}
	return nil
}

// refreshUplink re-reads u's MAC, state and addresses. It reports whether
// the uplink came up or changed its MAC (so neighbours need telling).
func (r *Responder) refreshUplink(u *uplink) error {
	_, err := r.refreshUplinkChanged(u)
	return err
}

func (r *Responder) refreshUplinkChanged(u *uplink) (bool, error) {
	l, err := r.h.LinkByIndex(u.index)
	if err != nil {
		return false, fmt.Errorf("ndp uplink %q: %w", u.name, err)
	}
	addrs, err := r.h.AddrList(l, netlink.FAMILY_V6)
	if err != nil {
		return false, fmt.Errorf("ndp uplink %q: list addresses: %w", u.name, err)
	}
	var ll, global, deprecated netip.Addr
	var onLink []netip.Prefix
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok || !ip.Is6() || a.Flags&unix.IFA_F_TENTATIVE != 0 {
			continue
		}
		ones, _ := a.Mask.Size()
		switch {
		case ip.IsLinkLocalUnicast():
			if !ll.IsValid() {
				ll = ip
			}
		case ip.IsGlobalUnicast():
			switch {
			case a.Flags&unix.IFA_F_DEPRECATED != 0:
				if !deprecated.IsValid() {
					deprecated = ip
				}
			case !global.IsValid():
				global = ip
			}
			if ones < 128 {
				onLink = append(onLink, netip.PrefixFrom(ip, ones).Masked())
			}
		}
	}
	if !global.IsValid() {
		global = deprecated
	}
	up := l.Attrs().Flags&net.FlagUp != 0 && l.Attrs().OperState != netlink.OperDown
	mac := slices.Clone(l.Attrs().HardwareAddr)

	r.mu.Lock()
	defer r.mu.Unlock()
	changed := (up && !u.up) || (u.mac != nil && !slices.Equal(mac, u.mac))
	moved := !slices.Equal(onLink, u.onLink)
	u.mac, u.up, u.linkLocal, u.global, u.onLink = mac, up, ll, global, onLink
	if moved {
		r.dirty = true
	}
	return changed, nil
}

// decideConfig is the uplink as Decide sees it. Callers hold r.mu.
func (r *Responder) decideConfig(u *uplink) DecideConfig {
	return DecideConfig{
		LinkAddr:  u.mac,
		Router:    r.cfg.Router,
		Source:    r.cfg.Source,
		LinkLocal: u.linkLocal,
		Global:    u.global,
	}
}

// owns reports whether u answers for a. Callers hold r.mu.
func (u *uplink) owns(a netip.Addr) bool {
	if _, ok := u.addrs[a]; ok {
		return true
	}
	for _, p := range u.ranges {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// SetTargets makes the responder answer for exactly addrs and ranges from
// now on: new addresses are answered (and announced) before it returns,
// dropped ones are no longer answered once it returns. The same set again
// is a no-op. In kernel mode ranges give ErrRangeUnsupported.
func (r *Responder) SetTargets(addrs []netip.Addr, ranges []netip.Prefix) error {
	t, err := NewTargets(addrs, ranges)
	if err != nil {
		return fmt.Errorf("set ndp targets: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errors.New("set ndp targets: responder closed")
	}
	var rangeErr error
	if r.cfg.Mode == ModeKernel && len(t.ranges) > 0 {
		rangeErr = fmt.Errorf("set ndp targets %v: %w", t.ranges, ErrRangeUnsupported)
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
	for i, a := range add {
		add[i] = a.WithZone("")
		if err := checkTarget(add[i]); err != nil {
			return fmt.Errorf("update ndp targets: %w", err)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errors.New("update ndp targets: responder closed")
	}
	if r.targets.addrs == nil {
		r.targets.addrs = map[netip.Addr]struct{}{}
	}
	for _, a := range remove {
		delete(r.targets.addrs, a.WithZone(""))
	}
	for _, a := range add {
		r.targets.addrs[a] = struct{}{}
	}
	if r.dirty || r.cfg.Mode == ModeOff || (r.cfg.Mode == ModeKernel && !r.adopted) {
		return r.reconcileLocked()
	}
	var errs []error
	for _, a := range remove {
		a = a.WithZone("")
		if _, ok := r.targets.addrs[a]; ok {
			continue // added again
		}
		for _, u := range r.uplinks {
			if _, ok := u.addrs[a]; !ok {
				continue
			}
			delete(u.addrs, a)
			r.log.WithFields(logrus.Fields{"addr": a, "iface": u.name}).Info("ndp: stop answering")
			errs = append(errs, r.dropAddrLocked(u, a)...)
		}
	}
	onLink := make([][]netip.Prefix, len(r.uplinks))
	for i, u := range r.uplinks {
		onLink[i] = u.onLink
	}
	var announce []netip.Addr
	for _, a := range add {
		if len(r.uplinks) == 0 {
			break
		}
		u := r.uplinks[Assign(netip.PrefixFrom(a, 128), onLink)]
		if _, ok := u.addrs[a]; ok {
			continue
		}
		u.addrs[a] = struct{}{}
		announce = append(announce, a)
		r.log.WithFields(logrus.Fields{"addr": a, "iface": u.name, "mode": r.cfg.Mode}).Info("ndp: start answering")
		errs = append(errs, r.addAddrLocked(u, a)...)
	}
	r.queueAnnouncements(announce)
	err := errors.Join(errs...)
	r.dirty = err != nil
	return err
}

// addAddrLocked joins the solicited-node group of a (native) or adds its
// proxy entry (kernel) on u, as a full reconcile would.
func (r *Responder) addAddrLocked(u *uplink, a netip.Addr) []error {
	switch r.cfg.Mode {
	case ModeNative:
		g, err := mndp.SolicitedNodeMulticast(a)
		if err != nil {
			return nil
		}
		if u.groupRefs == nil {
			u.groupRefs = map[netip.Addr]int{}
		}
		u.groupRefs[g]++
		if _, ok := u.groups[g]; ok {
			return nil
		}
		if err := r.joinLocked(u, g); err != nil {
			return []error{err}
		}
	case ModeKernel:
		if _, ok := u.proxies[a]; ok {
			return nil
		}
		if err := r.h.NeighSet(proxyNeigh(u, a)); err != nil {
			return []error{fmt.Errorf("ndp uplink %q: add proxy entry %s: %w", u.name, a, err)}
		}
		u.proxies[a] = struct{}{}
	}
	return nil
}

// dropAddrLocked leaves a's solicited-node group when no other address of
// u is in it (native) or deletes its proxy entry (kernel).
func (r *Responder) dropAddrLocked(u *uplink, a netip.Addr) []error {
	switch r.cfg.Mode {
	case ModeNative:
		g, err := mndp.SolicitedNodeMulticast(a)
		if err != nil {
			return nil
		}
		if u.groupRefs[g]--; u.groupRefs[g] > 0 {
			return nil
		}
		delete(u.groupRefs, g)
		if c, ok := u.groups[g]; ok {
			if err := c.LeaveGroup(g); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) && !errors.Is(err, unix.ENODEV) {
				r.log.WithFields(logrus.Fields{"iface": u.name, "group": g}).WithError(err).Warn("ndp: leave group")
			}
			delete(u.groups, g)
		}
	case ModeKernel:
		if _, ok := u.proxies[a]; !ok {
			return nil
		}
		err := r.h.NeighDel(proxyNeigh(u, a))
		if err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENODEV) {
			return []error{fmt.Errorf("ndp uplink %q: delete proxy entry %s: %w", u.name, a, err)}
		}
		delete(u.proxies, a)
	}
	return nil
}

// reconcileLocked moves every uplink to the state the targets ask for.
// Failed steps leave r.dirty set so the next call or resync retries them.
func (r *Responder) reconcileLocked() error {
	if r.cfg.Mode == ModeOff {
		r.dirty = false
		return nil
	}
	var errs []error
	if r.cfg.Mode == ModeKernel && !r.adopted {
		if err := r.adoptProxiesLocked(); err != nil {
			errs = append(errs, err)
		} else {
			r.adopted = true
		}
	}
	onLink := make([][]netip.Prefix, len(r.uplinks))
	for i, u := range r.uplinks {
		onLink[i] = u.onLink
	}
	wantAddrs := make([]map[netip.Addr]struct{}, len(r.uplinks))
	wantRanges := make([][]netip.Prefix, len(r.uplinks))
	for i := range r.uplinks {
		wantAddrs[i] = map[netip.Addr]struct{}{}
	}
	for a := range r.targets.addrs {
		i := Assign(netip.PrefixFrom(a, 128), onLink)
		wantAddrs[i][a] = struct{}{}
	}
	if r.cfg.Mode == ModeNative {
		for _, p := range r.targets.ranges {
			i := Assign(p, onLink)
			wantRanges[i] = append(wantRanges[i], p)
		}
	}

	var announce []netip.Addr
	for i, u := range r.uplinks {
		// Stop first, so a moved address is never answered twice.
		for a := range u.addrs {
			if _, ok := wantAddrs[i][a]; !ok {
				delete(u.addrs, a)
				r.log.WithFields(logrus.Fields{"addr": a, "iface": u.name}).Info("ndp: stop answering")
			}
		}
		for _, p := range u.ranges {
			if !slices.Contains(wantRanges[i], p) {
				r.log.WithFields(logrus.Fields{"addr": p, "iface": u.name}).Info("ndp: stop answering range")
			}
		}
	}
	for i, u := range r.uplinks {
		for a := range wantAddrs[i] {
			if _, ok := u.addrs[a]; !ok {
				u.addrs[a] = struct{}{}
				announce = append(announce, a)
				r.log.WithFields(logrus.Fields{"addr": a, "iface": u.name, "mode": r.cfg.Mode}).Info("ndp: start answering")
			}
		}
		for _, p := range wantRanges[i] {
			if !slices.Contains(u.ranges, p) {
				r.log.WithFields(logrus.Fields{"addr": p, "iface": u.name, "mode": r.cfg.Mode}).Info("ndp: start answering range")
			}
		}
		u.ranges = wantRanges[i]
		switch r.cfg.Mode {
		case ModeNative:
			errs = append(errs, r.syncGroupsLocked(u)...)
		case ModeKernel:
			errs = append(errs, r.syncProxiesLocked(u)...)
		}
	}
	r.queueAnnouncements(announce)
	err := errors.Join(errs...)
	r.dirty = err != nil
	return err
}

// syncGroupsLocked joins the solicited-node groups of u's addresses and
// leaves the others; ALLMULTI follows whether u answers for ranges.
func (r *Responder) syncGroupsLocked(u *uplink) []error {
	var errs []error
	want := map[netip.Addr]bool{}
	u.groupRefs = map[netip.Addr]int{}
	for a := range u.addrs {
		g, err := mndp.SolicitedNodeMulticast(a)
		if err == nil {
			want[g] = true
			u.groupRefs[g]++
		}
	}
	for g, c := range u.groups {
		if want[g] {
			continue
		}
		if err := c.LeaveGroup(g); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) && !errors.Is(err, unix.ENODEV) {
			r.log.WithFields(logrus.Fields{"iface": u.name, "group": g}).WithError(err).Warn("ndp: leave group")
		}
		delete(u.groups, g)
	}
	for g := range want {
		if _, ok := u.groups[g]; ok {
			continue
		}
		if err := r.joinLocked(u, g); err != nil {
			errs = append(errs, err)
		}
	}
	if wantAll := len(u.ranges) > 0; wantAll != u.allmulti {
		opt := unix.PACKET_DROP_MEMBERSHIP
		if wantAll {
			opt = unix.PACKET_ADD_MEMBERSHIP
		}
		mreq := &unix.PacketMreq{Ifindex: int32(u.index), Type: unix.PACKET_MR_ALLMULTI}
		if err := u.pc.SetsockoptPacketMreq(unix.SOL_PACKET, opt, mreq); err != nil {
			errs = append(errs, fmt.Errorf("ndp uplink %q: allmulti %v: %w", u.name, wantAll, err))
		} else {
			u.allmulti = wantAll
		}
	}
	return errs
}

// joinLocked joins g on u on the newest join socket, opening another one
// when the kernel runs out of per-socket option memory.
func (r *Responder) joinLocked(u *uplink, g netip.Addr) error {
	for attempt := 0; attempt < 2; attempt++ {
		if len(u.conns) == 0 || attempt > 0 {
			c, err := r.openJoinConn(u)
			if err != nil {
				return err
			}
			u.conns = append(u.conns, c)
		}
		c := u.conns[len(u.conns)-1]
		err := c.JoinGroup(g)
		switch {
		case err == nil, errors.Is(err, unix.EADDRINUSE):
			u.groups[g] = c
			return nil
		case errors.Is(err, unix.ENOMEM) || errors.Is(err, unix.ENOBUFS):
			continue
		default:
			return fmt.Errorf("ndp uplink %q: join %s: %w", u.name, g, err)
		}
	}
	return fmt.Errorf("ndp uplink %q: join %s: out of socket option memory", u.name, g)
}

// openJoinConn opens an ICMPv6 socket in the responder's namespace that is
// used only for group membership: its filter blocks every message.
func (r *Responder) openJoinConn(u *uplink) (*mndp.Conn, error) {
	var c *mndp.Conn
	err := r.inNS(func() error {
		var err error
		ifi := &net.Interface{Index: u.index, Name: u.name, MTU: 1280}
		c, _, err = mndp.Listen(ifi, mndp.Unspecified)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ndp uplink %q: open join socket: %w", u.name, err)
	}
	var f ipv6.ICMPFilter
	f.SetAll(true)
	if err := c.SetICMPFilter(&f); err != nil {
		c.Close()
		return nil, fmt.Errorf("ndp uplink %q: filter join socket: %w", u.name, err)
	}
	return c, nil
}

// processNS reports whether ns is the network namespace of the process
// (of its main thread), where sockets opened by any goroutine live.
func processNS(ns netns.NsHandle) bool {
	p, err := netns.GetFromPath("/proc/self/ns/net")
	if err != nil {
		return false
	}
	defer p.Close()
	return p.Equal(ns)
}

// inNS runs fn on a locked thread inside the responder's namespace.
func (r *Responder) inNS(fn func() error) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("get network namespace: %w", err)
	}
	defer orig.Close()
	if orig.Equal(r.ns) {
		defer runtime.UnlockOSThread()
		return fn()
	}
	if err := netns.Set(r.ns); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter network namespace: %w", err)
	}
	ferr := fn()
	if err := netns.Set(orig); err != nil {
		// The thread stays locked and dies with the goroutine.
		return errors.Join(ferr, fmt.Errorf("leave network namespace: %w", err))
	}
	runtime.UnlockOSThread()
	return ferr
}

// adoptProxiesLocked reads the proxy entries already on the uplinks, so
// reconciling removes those for addresses no longer in use.
func (r *Responder) adoptProxiesLocked() error {
	for _, u := range r.uplinks {
		list, err := r.h.NeighProxyList(u.index, netlink.FAMILY_V6)
		if err != nil {
			return fmt.Errorf("ndp uplink %q: list proxy entries: %w", u.name, err)
		}
		clear(u.proxies)
		for _, n := range list {
			if a, ok := netip.AddrFromSlice(n.IP); ok && n.Flags&netlink.NTF_PROXY != 0 {
				u.proxies[a] = struct{}{}
			}
		}
	}
	return nil
}

// syncProxiesLocked adds and removes u's kernel proxy entries.
func (r *Responder) syncProxiesLocked(u *uplink) []error {
	var errs []error
	for a := range u.proxies {
		if _, ok := u.addrs[a]; ok {
			continue
		}
		err := r.h.NeighDel(proxyNeigh(u, a))
		if err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENODEV) {
			errs = append(errs, fmt.Errorf("ndp uplink %q: delete proxy entry %s: %w", u.name, a, err))
			continue
		}
		delete(u.proxies, a)
	}
	for a := range u.addrs {
		if _, ok := u.proxies[a]; ok {
			continue
		}
		if err := r.h.NeighSet(proxyNeigh(u, a)); err != nil {
			errs = append(errs, fmt.Errorf("ndp uplink %q: add proxy entry %s: %w", u.name, a, err))
			continue
		}
		u.proxies[a] = struct{}{}
	}
	return errs
}

func proxyNeigh(u *uplink, a netip.Addr) *netlink.Neigh {
	flags := netlink.NTF_PROXY
	return &netlink.Neigh{
		LinkIndex: u.index,
		Family:    netlink.FAMILY_V6,
		Flags:     flags,
		State:     netlink.NUD_PERMANENT,
		IP:        a.AsSlice(),
	}
}

// queueAnnouncements schedules unsolicited advertisements for addrs.
func (r *Responder) queueAnnouncements(addrs []netip.Addr) {
	if len(addrs) == 0 {
		return
	}
	now := time.Now()
	r.annMu.Lock()
	for _, a := range addrs {
		r.pending[a] = &announcement{left: unsolicitedCount, due: now}
	}
	r.annMu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Run reads solicitations and sends advertisements until ctx ends or the
// responder is closed. It also follows the uplinks' link and address
// changes. It returns nil when stopped.
func (r *Responder) Run(ctx context.Context) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return errors.New("ndp responder: closed")
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
	if r.cfg.Mode == ModeOff {
		<-ctx.Done()
		return nil
	}

	var wg sync.WaitGroup
	if r.cfg.Mode == ModeNative {
		for _, u := range r.uplinks {
			wg.Go(func() { r.readLoop(ctx, u) })
		}
	}
	wg.Go(func() { r.announceLoop(ctx) })
	wg.Go(func() { r.watchLoop(ctx) })
	wg.Wait()
	return nil
}

// readLoop answers the solicitations captured on u.
func (r *Responder) readLoop(ctx context.Context, u *uplink) {
	buf := make([]byte, 9216)
	backoff := 10 * time.Millisecond
	for {
		n, sa, err := u.pc.Recvfrom(ctx, buf, 0)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrClosed) {
				return
			}
			if errors.Is(err, unix.ENETDOWN) {
				// The uplink went down; the socket resumes when it comes up.
				r.log.WithField("iface", u.name).Debug("ndp: uplink down")
				continue
			}
			r.log.WithField("iface", u.name).WithError(err).Warn("ndp: read solicitation")
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 10 * time.Millisecond
		sll, ok := sa.(*unix.SockaddrLinklayer)
		if !ok || sll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		var src net.HardwareAddr
		if sll.Halen == 6 {
			src = net.HardwareAddr(sll.Addr[:6])
		}
		r.handle(ctx, u, buf[:n], src)
	}
}

// handle decides on one captured packet and sends the answer.
func (r *Responder) handle(ctx context.Context, u *uplink, pkt []byte, linkSource net.HardwareAddr) {
	ns, err := ParsePacket(pkt, linkSource)
	if errors.Is(err, ErrNotSolicitation) {
		return
	}
	r.solicitations.Add(1)
	if err != nil {
		r.ignore(ReasonMalformed)
		if !r.debug() {
			return
		}
		r.log.WithFields(logrus.Fields{"iface": u.name, "from": linkSource.String()}).WithError(err).Debug("ndp: ignored malformed solicitation")
		return
	}
	r.mu.RLock()
	a, ok, reason := Decide(ns, r.decideConfig(u), u.owns)
	r.mu.RUnlock()
	if !ok {
		r.ignore(reason)
		return
	}
	if err := r.send(ctx, u, a); err != nil {
		r.log.WithFields(logrus.Fields{"addr": ns.Target, "iface": u.name}).WithError(err).Warn("ndp: send advertisement")
		return
	}
	r.answered.Add(1)
	kind := "multicast"
	defer func() {
		if r.debug() {
			r.log.WithFields(logrus.Fields{"addr": ns.Target, "iface": u.name, "to": ns.Source, "kind": kind}).Debug("ndp: answered solicitation")
		}
	}()
	switch {
	case ns.Source.IsUnspecified():
		r.answeredDAD.Add(1)
		kind = "dad"
	case ns.Destination == ns.Target:
		r.answeredUnicast.Add(1)
		kind = "unicast"
	}
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

func (r *Responder) ignore(reason string) {
	r.ignored.Add(1)
	r.reasonMu.Lock()
	r.reasons[reason]++
	r.reasonMu.Unlock()
}

// send puts a on the wire of u, addressed to a.LinkDestination.
func (r *Responder) send(ctx context.Context, u *uplink, a Answer) error {
	b, err := a.Packet()
	if err != nil {
		return err
	}
	to := &unix.SockaddrLinklayer{
		Protocol: htons(unix.ETH_P_IPV6),
		Ifindex:  u.index,
		Halen:    uint8(len(a.LinkDestination)),
	}
	copy(to.Addr[:], a.LinkDestination)
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := u.pc.Sendto(ctx, b, 0, to); err != nil {
		return fmt.Errorf("send to %s on %s: %w", a.Destination, u.name, err)
	}
	return nil
}

// announceLoop sends the queued unsolicited advertisements when due.
func (r *Responder) announceLoop(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next := r.sendDue(ctx)
		wait := time.Hour
		if !next.IsZero() {
			wait = max(time.Until(next), 0)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-r.kick:
		case <-timer.C:
		}
	}
}

// sendDue sends the advertisements due now and returns when the next is.
func (r *Responder) sendDue(ctx context.Context) time.Time {
	now := time.Now()
	var due []netip.Addr
	var next time.Time
	r.annMu.Lock()
	for a, an := range r.pending {
		if an.due.After(now) {
			if next.IsZero() || an.due.Before(next) {
				next = an.due
			}
			continue
		}
		due = append(due, a)
		an.left--
		an.due = now.Add(unsolicitedInterval)
		if an.left <= 0 {
			delete(r.pending, a)
		} else if next.IsZero() || an.due.Before(next) {
			next = an.due
		}
	}
	r.annMu.Unlock()

	for _, a := range due {
		r.mu.RLock()
		var u *uplink
		for _, c := range r.uplinks {
			if _, ok := c.addrs[a]; ok {
				u = c
			}
		}
		var na Answer
		var err error
		if u != nil {
			na, err = Unsolicited(a, r.decideConfig(u))
		}
		r.mu.RUnlock()
		if u == nil {
			continue // removed meanwhile: say nothing
		}
		if err == nil {
			err = r.send(ctx, u, na)
		}
		if err != nil {
			r.log.WithFields(logrus.Fields{"addr": a, "iface": u.name}).WithError(err).Debug("ndp: unsolicited advertisement")
			continue
		}
		r.unsolicited.Add(1)
	}
	return next
}

// watchLoop follows link and address changes of the uplinks, and resyncs
// periodically in case a notification was lost.
func (r *Responder) watchLoop(ctx context.Context) {
	for ctx.Err() == nil {
		r.watch(ctx)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func (r *Responder) watch(ctx context.Context) {
	done := make(chan struct{})
	defer close(done)
	links := make(chan netlink.LinkUpdate, 64)
	addrs := make(chan netlink.AddrUpdate, 64)
	linkOpts, addrOpts := netlink.LinkSubscribeOptions{}, netlink.AddrSubscribeOptions{}
	if !r.own {
		ns := r.ns
		linkOpts.Namespace, addrOpts.Namespace = &ns, &ns
	}
	if err := netlink.LinkSubscribeWithOptions(links, done, linkOpts); err != nil {
		r.log.WithError(err).Warn("ndp: subscribe to link changes")
		return
	}
	if err := netlink.AddrSubscribeWithOptions(addrs, done, addrOpts); err != nil {
		r.log.WithError(err).Warn("ndp: subscribe to address changes")
		return
	}
	// Catch up with what happened before the subscriptions.
	r.resync(ctx, false)
	tick := time.NewTicker(resyncInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			r.resync(ctx, true)
		case lu, ok := <-links:
			if !ok {
				return
			}
			r.linkChanged(int(lu.Index))
		case au, ok := <-addrs:
			if !ok {
				return
			}
			r.linkChanged(au.LinkIndex)
		}
	}
}

// linkChanged refreshes the uplink with that index, if it is one.
func (r *Responder) linkChanged(index int) {
	for _, u := range r.uplinks {
		if u.index != index {
			continue
		}
		r.mu.RLock()
		closed := r.closed
		r.mu.RUnlock()
		if closed {
			return
		}
		changed, err := r.refreshUplinkChanged(u)
		if err != nil {
			r.log.WithField("iface", u.name).WithError(err).Warn("ndp: refresh uplink")
			return
		}
		r.mu.Lock()
		if changed {
			r.log.WithFields(logrus.Fields{"iface": u.name, "mac": u.mac.String(), "up": u.up}).Info("ndp: uplink changed, announcing again")
			if r.cfg.Mode == ModeKernel {
				// Going down flushed the kernel's proxy entries.
				r.adopted = false
				r.dirty = true
			}
			var again []netip.Addr
			for a := range u.addrs {
				again = append(again, a)
			}
			r.queueAnnouncements(again)
		}
		if r.dirty && !r.closed {
			if err := r.reconcileLocked(); err != nil {
				r.log.WithField("iface", u.name).WithError(err).Warn("ndp: reconcile after uplink change")
			}
		}
		r.mu.Unlock()
	}
}

// resync re-reads every uplink and re-applies the state; full also
// re-reads the kernel's proxy entries.
func (r *Responder) resync(ctx context.Context, full bool) {
	for _, u := range r.uplinks {
		if ctx.Err() != nil {
			return
		}
		r.linkChanged(u.index)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	if full && r.cfg.Mode == ModeKernel {
		r.adopted = false
		r.dirty = true
	}
	if r.dirty {
		if err := r.reconcileLocked(); err != nil {
			r.log.WithError(err).Warn("ndp: resync")
		}
	}
}

// Stats returns the counters and the addresses answered for.
func (r *Responder) Stats() Stats {
	s := Stats{
		Solicitations:   r.solicitations.Load(),
		Answered:        r.answered.Load(),
		AnsweredUnicast: r.answeredUnicast.Load(),
		AnsweredDAD:     r.answeredDAD.Load(),
		Ignored:         r.ignored.Load(),
		Unsolicited:     r.unsolicited.Load(),
		IgnoredReasons:  map[string]uint64{},
	}
	r.reasonMu.Lock()
	for k, v := range r.reasons {
		s.IgnoredReasons[k] = v
	}
	r.reasonMu.Unlock()
	if r.cfg.Mode != ModeOff {
		r.mu.RLock()
		s.Addrs, s.Ranges = r.targets.Addrs(), r.targets.Ranges()
		r.mu.RUnlock()
	}
	return s
}

// Close stops Run and closes the sockets, which leaves the joined groups.
// Kernel proxy entries stay (see Responder). Close is idempotent.
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
		for _, c := range u.conns {
			if err := c.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		u.conns, u.groups = nil, map[netip.Addr]*mndp.Conn{}
		if u.pc != nil {
			if err := u.pc.Close(); err != nil {
				errs = append(errs, err)
			}
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
