package ndp

import (
	"flag"
	"net"
	"net/netip"
	"testing"
	"time"

	mndp "github.com/mdlayher/ndp"
	"github.com/vishvananda/netlink"

	"github.com/v6bridge/v6bridge/internal/ndpflood"
	"github.com/v6bridge/v6bridge/ndp/internal/ndptest"
	"github.com/v6bridge/v6bridge/ndp/ndpproto"
)

var attackRate = flag.Int("ndp.attack-rate", 20000, "solicitations per second of TestPrivilegedRouterReserve's floods (half of them for live addresses)")

// withDefaultRoute gives the host a default route via the router's
// global address, as a provider's VPS has.
func (e *env) withDefaultRoute(t *testing.T) {
	t.Helper()
	l, err := e.hostH.LinkByName(e.hostIf)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.hostH.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Gw: net.IP(e.routerAddr.AsSlice())}); err != nil {
		t.Fatalf("default route via %s: %v", e.routerAddr, err)
	}
}

// waitRouter waits until r knows the uplink's default router, learned
// from the route and the neighbour cache (which r has the kernel fill).
func waitRouter(t *testing.T, r *Responder, mac net.HardwareAddr) ndpproto.RouterID {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r.mu.RLock()
		id := r.uplinks[0].router
		r.mu.RUnlock()
		if id.Known() && id.MAC == [6]byte(mac) {
			return id
		}
		if time.Now().After(deadline) {
			t.Fatalf("the responder does not know the default router (%v): %+v", mac, id)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestPrivilegedRouterFollowsTheDefaultRoute: the default route deleted
// and added again is followed through the uplink follower's changes (the
// router watch subscribes to no routes), well before the periodic resync.
func TestPrivilegedRouterFollowsTheDefaultRoute(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.withDefaultRoute(t)
	r := e.startResponder(t, Config{})
	waitRouter(t, r, e.routerMAC)
	l, err := e.hostH.LinkByName(e.hostIf)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.hostH.RouteDel(&netlink.Route{LinkIndex: l.Attrs().Index, Gw: net.IP(e.routerAddr.AsSlice())}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		r.mu.RLock()
		known := r.uplinks[0].router.Known()
		r.mu.RUnlock()
		if !known {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the default route is gone and the responder still reserves for its router")
		}
	}
	e.withDefaultRoute(t)
	waitRouter(t, r, e.routerMAC)
}

// TestPrivilegedRouterReserve, as the attacker on the /64, in the kernel
// and in the capture loop: a flood of
// solicitations for live addresses forging the router's source addresses
// (link-local, where its kernel's probes come from, and global) from
// another MAC, and one from random sources and MACs (more than the
// kernel's meter holds), each far over the shared budgets; meanwhile the
// router's kernel re-probes a live address every second: every probe is
// answered, from the router's reserve. The control (a host without a
// default route: no reserve) loses probes to the same forged flood. The
// budget per solicitor is small (100/s), so that a flood this machine
// sends (in bursts, with gaps that refill a bucket) is far over it.
func TestPrivilegedRouterReserve(t *testing.T) {
	for _, c := range []struct {
		name      string
		reserve   bool
		random    bool
		userspace bool // no answers in the kernel: the capture loop's budgets
	}{
		{name: "forged router source", reserve: true},
		{name: "forged router source, capture loop", reserve: true, userspace: true},
		{name: "random sources beyond the meter", reserve: true, random: true},
		{name: "control without a reserve", reserve: false},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			sysctl(t, e.router, "net/ipv6/neigh/up0/base_reachable_time_ms", "1000")
			sysctl(t, e.router, "net/ipv6/neigh/up0/delay_first_probe_time", "1")
			if c.reserve {
				e.withDefaultRoute(t)
			}
			e.startSniffer(t)
			r := e.startResponder(t, Config{SourceRate: 100})
			var others []netip.Addr // the flood's live targets; liveAddr is the router's
			for i := 1; i < 1000; i++ {
				others = append(others, ndptest.Nth(ndptest.ContainerNet.Addr(), 0x1000+i))
			}
			if err := r.SetTargets(append([]netip.Addr{ndptest.LiveAddr}, others...), nil); err != nil {
				t.Fatal(err)
			}
			if c.reserve {
				waitRouter(t, r, e.routerMAC)
			}
			if c.userspace { // as on a kernel without nft_dup_netdev
				r.mu.Lock()
				u := r.uplinks[0]
				u.ingress.noAnswer = true
				r.syncIngress(u)
				answers := u.ingress.answer != nil
				r.mu.Unlock()
				if answers {
					t.Fatal("the ingress filter still answers")
				}
			}
			stopFlood := startFlood(t, e, ndpflood.Config{
				Ifindex: e.routerIdx, MAC: ndptest.AttackerMAC, Source: e.routerLL, Sources: []netip.Addr{e.routerAddr}, RandomSources: c.random,
				Scan: netip.MustParsePrefix("2001:db8:1234:a1::/64"), Rate: *attackRate, Live: others, LiveEvery: 2,
			})
			res := runTraffic(t, e, 12*time.Second)
			sent := stopFlood()
			s := r.Stats()
			t.Logf("flood: %d sent; router: %d unicast probes, %d unanswered, %d failed; kernel answered %d, over budget %v, ignored %v",
				sent, res.unicastProbes, res.unanswered, res.failed, s.KernelAnswered, s.Limited, s.IgnoredReasons)
			over := s.Limited[ndpproto.ReasonSourceLimit] + s.Limited[ndpproto.ReasonTotalLimit] + s.Limited[ndpproto.ReasonOverflowLimit]
			if over*4 < sent/2 {
				t.Errorf("%d of the flood's %d solicitations for live addresses over budget: the flood did not use the shared budgets up", over, sent/2)
			}
			if !c.reserve {
				// Lost probes fail the router's entry, which then
				// resolves by multicast: fewer unicast probes.
				if res.unicastProbes == 0 || res.unanswered+res.failed == 0 {
					t.Errorf("without a reserve %d probes, %d unanswered, %d failed states: the flood cannot tell", res.unicastProbes, res.unanswered, res.failed)
				}
				return
			}
			if res.unicastProbes < 3 {
				t.Fatalf("the router sent %d unicast probes: the test proves nothing", res.unicastProbes)
			}
			if res.unanswered > 0 || res.failed > 0 {
				t.Errorf("%d of the router's %d probes unanswered, %d failed neighbour states under the flood", res.unanswered, res.unicastProbes, res.failed)
			}
			if s.Limited[ndpproto.ReasonRouterLimit] > 0 {
				t.Errorf("the flood spent the router's reserve: %d over it", s.Limited[ndpproto.ReasonRouterLimit])
			}
			if c.random && s.Limited[ndpproto.ReasonOverflowLimit] == 0 {
				t.Errorf("%d random sources, none over the overflow budget: a full meter let them through unmetered", sent/2)
			}
		})
	}
}

// TestPrivilegedNotAnswered, as the attacker: a solicitation naming a
// broadcast or group link-layer address, or with a wrong checksum, gets
// no advertisement the router takes, whether the kernel or the capture
// loop would answer its shape, and each is counted by cause; the same
// solicitation well formed is answered (the control).
func TestPrivilegedNotAnswered(t *testing.T) {
	e := newEnv(t)
	e.startSniffer(t)
	r := e.answerLive(t, Config{})
	time.Sleep(2*unsolicitedInterval + 200*time.Millisecond) // the announcements go by
	drain(e.sniffed)
	g := ndptest.SNM(ndptest.LiveAddr)
	src := e.routerAddr
	nonce := mndp.NewNonce()
	broadcast := net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	group := net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}
	bad := func(icmp []byte) []byte {
		icmp[2] ^= 0x10
		return icmp
	}
	for _, c := range []struct {
		name string
		icmp []byte
	}{
		{"broadcast option (kernel's shape)", ndptest.ICMPNS(t, src, g, ndptest.LiveAddr, ndptest.SLLAOpt(broadcast))},
		{"group option (kernel's shape)", ndptest.ICMPNS(t, src, g, ndptest.LiveAddr, ndptest.SLLAOpt(group))},
		{"broadcast option and a nonce (capture loop's shape)", ndptest.ICMPNS(t, src, g, ndptest.LiveAddr, ndptest.SLLAOpt(broadcast), nonce)},
		{"bad checksum (kernel's shape)", bad(ndptest.ICMPNS(t, src, g, ndptest.LiveAddr, ndptest.SLLAOpt(e.routerMAC)))},
		{"bad checksum and a nonce (capture loop's shape)", bad(ndptest.ICMPNS(t, src, g, ndptest.LiveAddr, ndptest.SLLAOpt(e.routerMAC), nonce))},
	} {
		sent := e.sendRaw(t, ndptest.IPv6Packet(src, g, 255, 0, nil, c.icmp), multicastMAC(g))
		if na, ok := e.waitNA(ndptest.LiveAddr, true, sent, 300*time.Millisecond); ok {
			t.Errorf("%s: answered from %s", c.name, na.src)
		}
		// What went out on the wire: nothing a receiver takes.
		for _, p := range drainSniffed(e.sniffed) {
			if p.outgoing || p.icmpType != ndpproto.TypeNeighAdv {
				continue
			}
			valid := ndpproto.Checksum(netip.AddrFrom16([16]byte(p.raw[8:24])), netip.AddrFrom16([16]byte(p.raw[24:40])), p.raw[40:]) == 0
			if valid || p.linkSrc[0]&1 != 0 {
				t.Errorf("%s: an advertisement on the wire (checksum valid %v): %x", c.name, valid, p.raw)
			}
		}
	}
	sent := e.solicit(t, "multicast", ndptest.LiveAddr)
	if _, ok := e.waitNA(ndptest.LiveAddr, true, sent, time.Second); !ok {
		t.Fatal("the well-formed solicitation is not answered: the test cannot tell")
	}
	s := r.Stats()
	for end := time.Now().Add(time.Second); s.IgnoredReasons[ndpproto.ReasonNonUnicast] < 3 && time.Now().Before(end); s = r.Stats() {
		time.Sleep(20 * time.Millisecond)
	}
	if s.IgnoredReasons[ndpproto.ReasonNonUnicast] != 3 || s.IgnoredReasons[ndpproto.ReasonBadChecksum] != 1 {
		t.Errorf("ignored %v: want %d %q (2 in the kernel, 1 in the capture loop) and 1 %q (the capture loop's)",
			s.IgnoredReasons, 3, ndpproto.ReasonNonUnicast, ndpproto.ReasonBadChecksum)
	}
}

func drainSniffed(c chan sniffedPacket) []sniffedPacket {
	time.Sleep(50 * time.Millisecond)
	var out []sniffedPacket
	for {
		select {
		case p := <-c:
			out = append(out, p)
		default:
			return out
		}
	}
}
