package link

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/v6bridge/v6bridge/internal/nettest"
)

var (
	upAddr    = netip.MustParsePrefix("2001:db8:1234:a1::1/64")
	upSecond  = netip.MustParsePrefix("2001:db8:1234:a1::2/64")
	upGateway = netip.MustParseAddr("2001:db8:1234:a1::fffe")
)

// addUplink creates the link name (a veth whose peer, name+"p", is up
// too) with addr, up.
func addUplink(t *testing.T, h *netlink.Handle, name string, addr netip.Prefix) int {
	t.Helper()
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: name + "p"}); err != nil {
		t.Fatalf("add %s: %v", name, err)
	}
	if p, err := h.LinkByName(name + "p"); err != nil || h.LinkSetUp(p) != nil {
		t.Fatalf("set %sp up: %v", name, err)
	}
	l, err := h.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.AddrAdd(l, &netlink.Addr{IPNet: nettest.PrefixNet(addr), Flags: unix.IFA_F_NODAD}); err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetUp(l); err != nil {
		t.Fatal(err)
	}
	return l.Attrs().Index
}

// follow runs a Follower of "up0" in ns with two parts: one records every
// change, one refuses every re-attachment.
func follow(t *testing.T, ns netns.NsHandle) (*Follower, chan Change, chan string) {
	t.Helper()
	log := logrus.New()
	log.SetLevel(logrus.DebugLevel)
	log.SetOutput(testLog{t})
	reattached := make(chan string, 64)
	f, err := NewFollower(FollowConfig{Uplinks: []string{"up0"}, NetNS: ns, Log: log,
		Reattached: func(part string, err error) { reattached <- part }})
	if err != nil {
		t.Fatal(err)
	}
	changes := make(chan Change, 64)
	f.Tell(Part{Name: "recorder", Changed: func(c Change) error { changes <- c; return nil }})
	f.Tell(Part{Name: "refuser", Changed: func(c Change) error {
		if c.Reattach() {
			return errors.New("refused")
		}
		return nil
	}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; f.Close() })
	return f, changes, reattached
}

type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) { w.t.Logf("%s", p); return len(p), nil }

// next waits for the change that satisfies want, failing after 5 s.
func next(t *testing.T, changes chan Change, what string, want func(Change) bool) Change {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case c := <-changes:
			if want(c) {
				return c
			}
		case <-timeout:
			t.Fatalf("the parts were not told: %s", what)
		}
	}
}

// TestPrivilegedFollower: the parts are told of each way the host changes
// its uplink, as it happens: an address added and removed, a default route,
// down and up, the link deleted, and created again under the same name
// (the parts re-attach to the new index), also in one burst; status
// counts each part's re-attachments and shows the failed one's error.
func TestPrivilegedFollower(t *testing.T) {
	ns := nettest.NewNS(t)
	h := nettest.Handle(t, ns)
	index := addUplink(t, h, "up0", upAddr)
	f, changes, reattached := follow(t, ns)
	if st, _ := f.State("up0"); st.Index != index || !slices.Contains(st.Addrs, upAddr) {
		t.Fatalf("initial state %+v, want index %d with %s", st, index, upAddr)
	}
	l, err := h.LinkByName("up0")
	if err != nil {
		t.Fatal(err)
	}

	if err := h.AddrAdd(l, &netlink.Addr{IPNet: nettest.PrefixNet(upSecond), Flags: unix.IFA_F_NODAD}); err != nil {
		t.Fatal(err)
	}
	c := next(t, changes, "second address added", func(c Change) bool { return slices.Contains(c.New.Global(), upSecond.Addr()) })
	if c.Reattach() || !c.AddrsChanged() || c.New.Index != index {
		t.Errorf("address added: %+v: reattach %v, addrs changed %v", c, c.Reattach(), c.AddrsChanged())
	}
	if err := h.AddrDel(l, &netlink.Addr{IPNet: nettest.PrefixNet(upSecond)}); err != nil {
		t.Fatal(err)
	}
	next(t, changes, "second address removed", func(c Change) bool {
		return !slices.Contains(c.New.Global(), upSecond.Addr()) && slices.Contains(c.New.Global(), upAddr.Addr())
	})
	if err := h.RouteAdd(&netlink.Route{LinkIndex: index, Dst: nettest.PrefixNet(netip.MustParsePrefix("::/0")), Gw: upGateway.AsSlice()}); err != nil {
		t.Fatal(err)
	}
	next(t, changes, "default route", func(c Change) bool { return c.New.Gateway == upGateway })
	if err := h.LinkSetDown(l); err != nil {
		t.Fatal(err)
	}
	next(t, changes, "down", func(c Change) bool { return !c.New.Up && c.New.Index == index })
	if err := h.LinkSetUp(l); err != nil {
		t.Fatal(err)
	}
	next(t, changes, "up", func(c Change) bool { return c.New.Up && c.New.Index == index })

	if err := h.LinkDel(l); err != nil {
		t.Fatal(err)
	}
	c = next(t, changes, "deleted", func(c Change) bool { return c.Gone() })
	if c.Reattach() {
		t.Errorf("deleted: reattach %v", c.Reattach())
	}
	newIndex := addUplink(t, h, "up0", upAddr)
	c = next(t, changes, "created again", func(c Change) bool { return c.Reattach() })
	if c.New.Index != newIndex || c.Attached != index {
		t.Errorf("created again: %+v, want index %d (was %d)", c, newIndex, index)
	}
	if !slices.Contains(c.New.Addrs, upAddr) { // told of the link before its address
		next(t, changes, "the re-created link's address", func(c Change) bool { return slices.Contains(c.New.Addrs, upAddr) })
	}
	index = newIndex

	// Deleted and created again faster than a settle: one change.
	l, _ = h.LinkByName("up0")
	if err := h.LinkDel(l); err != nil {
		t.Fatal(err)
	}
	newIndex = addUplink(t, h, "up0", upAddr)
	c = next(t, changes, "deleted and created again at once", func(c Change) bool { return c.Reattach() && c.New.Index == newIndex })
	if c.Attached != index {
		t.Errorf("re-created in one burst: attached %d, want %d", c.Attached, index)
	}

	// Both parts were told before status is read.
	for n := 0; n < 4; n++ {
		select {
		case <-reattached:
		case <-time.After(5 * time.Second):
			t.Fatalf("%d re-attachments counted, want 4", n)
		}
	}
	st := f.Status()
	if len(st) != 1 || st[0].Index != newIndex || !st[0].Up {
		t.Fatalf("status %+v", st)
	}
	want := []Reattachment{{Part: "recorder", Count: 2}, {Part: "refuser", Count: 2, Error: "refused"}}
	for i, r := range st[0].Reattachment {
		r.Last = time.Time{}
		if i >= len(want) || r != want[i] {
			t.Errorf("re-attachments %+v, want %+v", st[0].Reattachment, want)
			break
		}
	}
}

// TestPrivilegedFollowerAbsent: an uplink missing at start is followed and
// attached to once it appears.
func TestPrivilegedFollowerAbsent(t *testing.T) {
	ns := nettest.NewNS(t)
	h := nettest.Handle(t, ns)
	f, changes, _ := follow(t, ns)
	if st, _ := f.State("up0"); st.Index != 0 {
		t.Fatalf("state of a missing uplink %+v", st)
	}
	index := addUplink(t, h, "up0", upAddr)
	c := next(t, changes, "created", func(c Change) bool { return c.Reattach() })
	if c.New.Index != index {
		t.Errorf("created: %+v, want index %d", c, index)
	}
	if !slices.Contains(c.New.Global(), upAddr.Addr()) {
		next(t, changes, "its address", func(c Change) bool { return slices.Contains(c.New.Global(), upAddr.Addr()) })
	}
}

// TestPrivilegedFollowerResubscribes: a part busy while the host churns
// links (containers starting) makes the subscriptions overflow and the
// kernel drop changes; the follower subscribes again and reads the uplink
// again, so the change made meanwhile (an address removed) still reaches
// the parts.
func TestPrivilegedFollowerResubscribes(t *testing.T) {
	ns := nettest.NewNS(t)
	h := nettest.Handle(t, ns)
	// No duplicate address detection: its end would be a later change of
	// the uplink that tells the parts anyway.
	for _, conf := range []string{"all", "default"} {
		if err := nettest.Do(t, ns, func() error {
			return os.WriteFile("/proc/sys/net/ipv6/conf/"+conf+"/accept_dad", []byte("0"), 0o644)
		}); err != nil {
			t.Fatal(err)
		}
	}
	index := addUplink(t, h, "up0", upAddr)
	log := logrus.New()
	log.SetOutput(testLog{t})
	f, err := NewFollower(FollowConfig{Uplinks: []string{"up0"}, NetNS: ns, Log: log, ReceiveBuffer: 4096})
	if err != nil {
		t.Fatal(err)
	}
	release, blocked := make(chan struct{}), make(chan struct{}, 1)
	var once sync.Once
	changes := make(chan Change, 64)
	f.Tell(Part{Name: "slow", Changed: func(c Change) error {
		if slices.Contains(c.New.Global(), upSecond.Addr()) {
			select {
			case blocked <- struct{}{}:
			default:
			}
			<-release
		}
		changes <- c
		return nil
	}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.Run(ctx) }()
	t.Cleanup(func() { once.Do(func() { close(release) }); cancel(); <-done; f.Close() })

	l := &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Index: index}}
	if err := h.AddrAdd(l, &netlink.Addr{IPNet: nettest.PrefixNet(upSecond), Flags: unix.IFA_F_NODAD}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-blocked:
	case <-time.After(5 * time.Second):
		t.Fatal("the part was not told of the second address")
	}
	for i := range 200 {
		v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: fmt.Sprintf("x%d", i)}, PeerName: fmt.Sprintf("y%d", i)}
		if err := h.LinkAdd(v); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.AddrDel(l, &netlink.Addr{IPNet: nettest.PrefixNet(upSecond)}); err != nil {
		t.Fatal(err)
	}
	once.Do(func() { close(release) })
	next(t, changes, "the address removed during the burst", func(c Change) bool {
		return !slices.Contains(c.New.Global(), upSecond.Addr()) && slices.Contains(c.New.Global(), upAddr.Addr())
	})
	f.mu.Lock()
	n := f.resubbed
	f.mu.Unlock()
	if n == 0 {
		t.Error("no subscription overflowed: the test cannot tell")
	}
}
