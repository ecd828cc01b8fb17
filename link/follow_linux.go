package link

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/v6bridge/v6bridge/internal/nlretry"
)

// FollowConfig configures a Follower.
type FollowConfig struct {
	// Uplinks are the names of the interfaces to follow.
	Uplinks []string
	// NetNS is the namespace they are in; netns.None() (or 0): the
	// process's own. The caller keeps ownership.
	NetNS netns.NsHandle
	// Settle is how long a burst of changes may go on before the parts are
	// told (a link created, then its addresses and routes, is one change);
	// DefaultSettle if 0.
	Settle time.Duration
	// ReceiveBuffer is each subscription socket's receive buffer in
	// bytes; 0: the kernel's default. Should it overflow (a burst of
	// changes while a part is slow), the follower subscribes again.
	ReceiveBuffer int
	// Reattached, if set, is called after each part's re-attachment to a
	// new link, and Changed for each change with its kinds (metrics).
	Reattached func(part string, err error)
	Changed    func(kinds []string)
	Log        logrus.FieldLogger
}

// DefaultSettle lets a burst of netlink changes end before the parts are
// told: `ip link add` with its addresses and routes takes a few
// milliseconds.
const DefaultSettle = 50 * time.Millisecond

// Follower follows the uplinks through netlink subscriptions (links,
// addresses, routes): addresses added and removed, the link going down and
// up, deleted and created again under the same name with a new index. It
// tells the parts bound to the uplink (Part) of every change, in the
// order they were added, from one goroutine (Run). Should a subscription
// fail (the kernel dropped messages: ENOBUFS), it subscribes again and
// re-reads every uplink, so no change is lost. No polling.
type Follower struct {
	cfg   FollowConfig
	h     *netlink.Handle
	addrs *AddrDumper // the uplinks' addresses, without every veth's
	own   bool        // the process's namespace: subscriptions without setns
	parts []Part

	mu       sync.Mutex
	state    map[string]*followed
	byIndex  map[int]string // index -> uplink name, of the current links
	resubbed int            // subscriptions made again after a failure (tests)
}

type followed struct {
	st       UplinkState
	attached int // the index the parts are attached to
	changes  int
	last     time.Time
	reattach map[string]*Reattachment
}

// NewFollower reads the uplinks' state; Run follows them from then on.
// An uplink missing now is followed too and reported absent.
func NewFollower(cfg FollowConfig) (*Follower, error) {
	if cfg.Settle == 0 {
		cfg.Settle = DefaultSettle
	}
	if cfg.Log == nil {
		cfg.Log = logrus.StandardLogger()
	}
	if cfg.NetNS == 0 {
		cfg.NetNS = netns.None()
	}
	f := &Follower{cfg: cfg, own: !cfg.NetNS.IsOpen(), state: map[string]*followed{}, byIndex: map[int]string{}}
	var err error
	if f.own {
		f.h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
	} else {
		f.h, err = netlink.NewHandleAt(cfg.NetNS, unix.NETLINK_ROUTE)
	}
	if err != nil {
		return nil, fmt.Errorf("follow uplinks: netlink handle: %w", err)
	}
	f.addrs = NewAddrDumper(cfg.NetNS, f.h)
	for _, name := range cfg.Uplinks {
		if err := validName(name); err != nil {
			f.Close()
			return nil, fmt.Errorf("follow uplinks: %w", err)
		}
		st, err := f.read(name)
		if err != nil {
			f.Close()
			return nil, err
		}
		f.state[name] = &followed{st: st, attached: st.Index, reattach: map[string]*Reattachment{}}
		if st.Index != 0 {
			f.byIndex[st.Index] = name
		}
	}
	return f, nil
}

// Tell adds a part to tell of changes; call it before Run.
func (f *Follower) Tell(p Part) { f.parts = append(f.parts, p) }

// Close releases the netlink handle; call it after Run returned.
func (f *Follower) Close() {
	f.addrs.Close()
	f.h.Close()
}

// State returns the uplink's state as last read.
func (f *Follower) State(name string) (UplinkState, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.state[name]
	if !ok {
		return UplinkState{}, false
	}
	return s.st, true
}

// Status returns each uplink's state and its parts' re-attachments, in
// the configured order.
func (f *Follower) Status() []UplinkStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]UplinkStatus, 0, len(f.cfg.Uplinks))
	for _, name := range f.cfg.Uplinks {
		s := f.state[name]
		us := UplinkStatus{UplinkState: s.st, Changes: s.changes, LastChange: s.last}
		for _, p := range f.parts {
			r := Reattachment{Part: p.Name}
			if got, ok := s.reattach[p.Name]; ok {
				r = *got
			}
			us.Reattachment = append(us.Reattachment, r)
		}
		out = append(out, us)
	}
	return out
}

// Run follows the uplinks until ctx ends.
func (f *Follower) Run(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		began := time.Now()
		err := f.follow(ctx)
		if ctx.Err() != nil {
			return
		}
		f.cfg.Log.WithError(err).Warn("uplink follower: subscribing again")
		if time.Since(began) > 10*time.Second {
			backoff = 100 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
		f.mu.Lock()
		f.resubbed++
		f.mu.Unlock()
	}
}

// follow subscribes, catches up with every uplink and then tells the
// parts of each change, until a subscription fails or ctx ends.
func (f *Follower) follow(ctx context.Context) error {
	done := make(chan struct{})
	links := make(chan netlink.LinkUpdate, 256)
	addrs := make(chan netlink.AddrUpdate, 256)
	routes := make(chan netlink.RouteUpdate, 256)
	defer func() {
		close(done)
		// The subscriptions' readers block on a full channel: drain
		// until they have seen the closed socket and closed theirs.
		go drain(links)
		go drain(addrs)
		go drain(routes)
	}()
	failed := make(chan error, 1)
	onErr := func(err error) {
		if errors.Is(err, netlink.ErrDumpInterrupted) {
			return
		}
		select {
		case failed <- err:
		default:
		}
	}
	var ns *netns.NsHandle
	if !f.own {
		ns = &f.cfg.NetNS
	}
	if err := netlink.LinkSubscribeWithOptions(links, done, netlink.LinkSubscribeOptions{Namespace: ns, ErrorCallback: onErr, ReceiveBufferSize: f.cfg.ReceiveBuffer}); err != nil {
		return fmt.Errorf("subscribe to link changes: %w", err)
	}
	if err := netlink.AddrSubscribeWithOptions(addrs, done, netlink.AddrSubscribeOptions{Namespace: ns, ErrorCallback: onErr, ReceiveBufferSize: f.cfg.ReceiveBuffer}); err != nil {
		return fmt.Errorf("subscribe to address changes: %w", err)
	}
	if err := netlink.RouteSubscribeWithOptions(routes, done, netlink.RouteSubscribeOptions{Namespace: ns, ErrorCallback: onErr, ReceiveBufferSize: f.cfg.ReceiveBuffer}); err != nil {
		return fmt.Errorf("subscribe to route changes: %w", err)
	}
	// Catch up with what changed before the subscriptions (at start, or
	// while a failed one was down).
	pending := map[string]bool{}
	for _, name := range f.cfg.Uplinks {
		pending[name] = true
	}
	settle := time.NewTimer(0)
	defer settle.Stop()
	armed := true
	mark := func(name string) {
		if name == "" {
			return
		}
		pending[name] = true
		if !armed {
			settle.Reset(f.cfg.Settle)
			armed = true
		}
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-failed:
			return err
		case lu, ok := <-links:
			if !ok {
				return errors.New("link subscription closed")
			}
			mark(f.linkName(lu))
		case au, ok := <-addrs:
			if !ok {
				return errors.New("address subscription closed")
			}
			mark(f.nameOf(au.LinkIndex))
		case ru, ok := <-routes:
			if !ok {
				return errors.New("route subscription closed")
			}
			mark(f.nameOf(ru.LinkIndex))
		case <-settle.C:
			armed = false
			for _, name := range f.cfg.Uplinks {
				if pending[name] {
					delete(pending, name)
					f.refresh(name)
				}
			}
		}
	}
}

func drain[T any](ch <-chan T) {
	for range ch {
	}
}

// linkName returns the uplink a link update concerns, or "".
func (f *Follower) linkName(lu netlink.LinkUpdate) string {
	name := lu.Attrs().Name
	if slices.Contains(f.cfg.Uplinks, name) {
		return name
	}
	return f.nameOf(int(lu.Index)) // renamed away
}

// nameOf returns the uplink that has index now, or "".
func (f *Follower) nameOf(index int) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.byIndex[index]
}

// read reads one uplink's state; a missing link is an absent uplink.
func (f *Follower) read(name string) (UplinkState, error) {
	st := UplinkState{Name: name}
	l, err := f.h.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return st, nil
		}
		return st, fmt.Errorf("uplink %q: %w", name, err)
	}
	st.Index = l.Attrs().Index
	st.Up = l.Attrs().Flags&net.FlagUp != 0 && l.Attrs().OperState != netlink.OperDown
	addrs, err := f.addrs.List(l, netlink.FAMILY_V6)
	if err != nil {
		return st, fmt.Errorf("uplink %q: list addresses: %w", name, err)
	}
	for _, a := range addrs {
		if a.Flags&unix.IFA_F_DADFAILED != 0 {
			continue
		}
		p, ok := addrPrefix(a)
		if !ok || !p.Addr().Is6() {
			continue
		}
		st.Addrs = append(st.Addrs, p)
		if a.Flags&unix.IFA_F_TENTATIVE != 0 {
			st.Tentative = append(st.Tentative, p)
		}
	}
	slices.SortFunc(st.Addrs, comparePrefix)
	slices.SortFunc(st.Tentative, comparePrefix)
	routes, err := nlretry.Dump(func() ([]netlink.Route, error) { return f.h.RouteList(l, netlink.FAMILY_V6) })
	if err != nil {
		return st, fmt.Errorf("uplink %q: list routes: %w", name, err)
	}
	for _, r := range routes {
		if (r.Dst == nil || r.Dst.IP.IsUnspecified()) && r.Gw != nil {
			st.Gateway, _ = netip.AddrFromSlice(r.Gw)
			break
		}
	}
	return st, nil
}

// refresh reads the uplink again and, if it changed, tells the parts.
func (f *Follower) refresh(name string) {
	st, err := f.read(name)
	if err != nil {
		f.cfg.Log.WithError(err).WithField("iface", name).Warn("uplink follower: read the uplink")
		return
	}
	f.mu.Lock()
	s := f.state[name]
	if st.Equal(s.st) {
		f.mu.Unlock()
		return
	}
	c := Change{Old: s.st, New: st, Attached: s.attached}
	delete(f.byIndex, s.st.Index)
	if st.Index != 0 {
		f.byIndex[st.Index] = name
		s.attached = st.Index
	}
	s.st = st
	s.changes++
	s.last = time.Now()
	f.mu.Unlock()

	kinds := c.Kinds()
	f.cfg.Log.WithFields(logrus.Fields{"iface": name, "index": st.Index, "up": st.Up, "addrs": st.Addrs, "changed": kinds}).Info("uplink changed")
	if f.cfg.Changed != nil {
		f.cfg.Changed(kinds)
	}
	for _, p := range f.parts {
		err := p.Changed(c)
		if err != nil {
			f.cfg.Log.WithError(err).WithFields(logrus.Fields{"iface": name, "part": p.Name}).Warn("uplink follower: a part could not follow the change")
		}
		if !c.Reattach() {
			continue
		}
		f.mu.Lock()
		r, ok := s.reattach[p.Name]
		if !ok {
			r = &Reattachment{Part: p.Name}
			s.reattach[p.Name] = r
		}
		r.Count++
		r.Last = time.Now()
		r.Error = ""
		if err != nil {
			r.Error = err.Error()
		}
		f.mu.Unlock()
		if err == nil {
			f.cfg.Log.WithFields(logrus.Fields{"iface": name, "part": p.Name, "index": st.Index, "was": c.Attached}).Info("re-attached to the new uplink")
		}
		if f.cfg.Reattached != nil {
			f.cfg.Reattached(p.Name, err)
		}
	}
}
