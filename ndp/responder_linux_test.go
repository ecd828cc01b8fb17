package ndp

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/v6bridge/v6bridge/internal/ndpflood"
	"github.com/v6bridge/v6bridge/internal/nettest"
	"github.com/v6bridge/v6bridge/ndp/internal/ndptest"
	"github.com/v6bridge/v6bridge/ndp/ndpproto"
)

var soak = flag.Bool("ndp.soak", false, "run the 60 s NDP soak test (router base_reachable_time_ms=1000, continuous traffic)")

// maxLatency is how fast a solicitation must be answered.
const maxLatency = 10 * time.Millisecond

// checkAnswers sends each kind of solicitation for a live, a removed and a
// never-used address and checks that only the live one is answered, each
// within maxLatency, with the host's MAC. The kernel (native false) clears
// Override for proxied addresses and leaves the target link-layer option
// out of unicast answers; those checks are for the native responder.
func checkAnswers(t *testing.T, e *env, native bool, kinds []string) {
	t.Helper()
	for _, kind := range kinds {
		for _, tc := range []struct {
			addr netip.Addr
			want bool
		}{{ndptest.LiveAddr, true}, {removedAddr, false}, {unusedAddr, false}} {
			solicited := kind != "dad"
			sent := e.solicit(t, kind, tc.addr)
			timeout := 300 * time.Millisecond
			got, ok := e.waitNA(tc.addr, solicited, sent, timeout)
			if ok != tc.want {
				t.Errorf("%s solicitation for %s: answered %v, want %v (%+v)", kind, tc.addr, ok, tc.want, got.na)
				continue
			}
			if !ok {
				continue
			}
			if lat := got.at.Sub(sent); lat > maxLatency {
				t.Errorf("%s solicitation for %s answered after %v, want within %v", kind, tc.addr, lat, maxLatency)
			}
			if mac := got.tlla(); !bytes.Equal(mac, e.hostMAC) && (native || mac != nil) {
				t.Errorf("%s answer for %s carries %v, want the host's %v", kind, tc.addr, mac, e.hostMAC)
			}
			if native && !got.na.Override {
				t.Errorf("%s answer for %s: Override clear", kind, tc.addr)
			}
			if got.na.Router {
				t.Errorf("%s answer for %s: Router set", kind, tc.addr)
			}
			wantDst := e.routerAddr
			if kind == "dad" {
				wantDst = ndpproto.AllNodes
			}
			if got.dst != wantDst {
				t.Errorf("%s answer for %s sent to %s, want %s", kind, tc.addr, got.dst, wantDst)
			}
		}
	}
}

// checkRouterNeighbour makes the router's kernel resolve the live address
// with real traffic and checks its neighbour table shows the host's MAC,
// while the never-used address does not resolve.
func checkRouterNeighbour(t *testing.T, e *env) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		e.sendTraffic(t, ndptest.LiveAddr)
		n, ok := e.neighbour(t, ndptest.LiveAddr)
		if ok && bytes.Equal(n.HardwareAddr, e.hostMAC) && n.State&(netlink.NUD_REACHABLE|netlink.NUD_STALE|netlink.NUD_DELAY|netlink.NUD_PROBE) != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("router's neighbour entry for %s = %+v (found %v), want the host's MAC %v", ndptest.LiveAddr, n, ok, e.hostMAC)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The router gives up on the never-used address once its solicitations
	// (mcast_solicit, 3, retrans_time_ms apart) go unanswered: wait for that
	// rather than for a fixed time.
	sysctl(t, e.router, "net/ipv6/neigh/up0/retrans_time_ms", "100")
	e.sendTraffic(t, unusedAddr)
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		n, ok := e.neighbour(t, unusedAddr)
		if ok && len(n.HardwareAddr) > 0 {
			t.Errorf("router resolved the never-used %s to %v", unusedAddr, n.HardwareAddr)
			return
		}
		if ok && n.State&netlink.NUD_FAILED != 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("router's neighbour entry for the never-used %s = %+v (found %v) after 3 s, want failed", unusedAddr, n, ok)
			return
		}
	}
}

func TestPrivilegedNativeAnswers(t *testing.T) {
	e := newEnv(t)
	r := e.startResponder(t, Config{})

	if err := r.SetTargets([]netip.Addr{ndptest.LiveAddr, removedAddr}, nil); err != nil {
		t.Fatal(err)
	}
	sent := e.solicit(t, "multicast", removedAddr)
	if _, ok := e.waitNA(removedAddr, true, sent, time.Second); !ok {
		t.Fatalf("%s not answered while live", removedAddr)
	}
	if err := r.SetTargets([]netip.Addr{ndptest.LiveAddr}, nil); err != nil {
		t.Fatal(err)
	}
	// Let the unsolicited advertisements for the live address go by, so
	// they cannot be mistaken for the DAD defence.
	time.Sleep(2*unsolicitedInterval + 200*time.Millisecond)

	checkAnswers(t, e, true, []string{"multicast", "unicast", "dad"})
	checkRouterNeighbour(t, e)

	// Solicitations for the removed and the unused address never reach
	// userspace: the capture filter drops them in the kernel.
	s := r.Stats()
	if s.Answered == 0 || s.AnsweredUnicast == 0 || s.AnsweredDAD == 0 || s.Ignored != 0 || s.Solicitations != s.Answered {
		t.Errorf("stats do not show answers only: %+v", s)
	}
	if !slices.Equal(s.Addrs, []netip.Addr{ndptest.LiveAddr}) {
		t.Errorf("Stats.Addrs = %v, want [%s]", s.Addrs, ndptest.LiveAddr)
	}
}

// TestPrivilegedNativeUnicastNUD lets the router re-verify the live
// address with unicast probes (the NUD trap an ICMPv6 socket misses): they
// must be answered and the entry must never fail.
func TestPrivilegedNativeUnicastNUD(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sysctl(t, e.router, "net/ipv6/neigh/up0/base_reachable_time_ms", "1000")
	sysctl(t, e.router, "net/ipv6/neigh/up0/delay_first_probe_time", "1")
	e.startSniffer(t)
	r := e.answerLive(t, Config{})
	res := runTraffic(t, e, 6*time.Second)
	t.Logf("%d unicast probes, %d unanswered, %d failed neighbour states", res.unicastProbes, res.unanswered, res.failed)
	if res.unicastProbes == 0 {
		t.Fatal("the router sent no unicast probe: the test proves nothing")
	}
	if res.unanswered != 0 || res.failed != 0 {
		t.Errorf("%d of %d unicast probes unanswered, %d failed neighbour states", res.unanswered, res.unicastProbes, res.failed)
	}
	if s := r.Stats(); s.AnsweredUnicast == 0 {
		t.Errorf("responder answered no unicast probe: %+v", s)
	}
}

type trafficResult struct {
	unicastProbes, unanswered, failed int
}

// startFlood sends cfg's solicitations from the router's namespace until
// the returned stop is called; stop returns how many were sent and fails
// the test on a flooder error.
func startFlood(t *testing.T, e *env, cfg ndpflood.Config) (stop func() uint64) {
	t.Helper()
	var f *ndpflood.Flooder
	err := nettest.Do(t, e.router, func() error {
		var err error
		f, err = ndpflood.Open()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var sent uint64
	var floodErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		sent, floodErr = f.Run(ctx, cfg)
	}()
	return func() uint64 {
		t.Helper()
		cancel()
		<-done
		f.Close()
		if floodErr != nil {
			t.Fatal(floodErr)
		}
		return sent
	}
}

// runTraffic sends a datagram to the live address every 50 ms for d, while
// watching the router's neighbour entry and its unicast probes.
func runTraffic(t *testing.T, e *env, d time.Duration) trafficResult {
	t.Helper()
	var res trafficResult
	probes := map[time.Time]bool{} // probe time -> answered
	end := time.Now().Add(d)
	resolved := false
	for time.Now().Before(end) {
		e.sendTraffic(t, ndptest.LiveAddr)
		if n, ok := e.neighbour(t, ndptest.LiveAddr); ok {
			switch {
			case n.State&(netlink.NUD_REACHABLE|netlink.NUD_STALE|netlink.NUD_DELAY|netlink.NUD_PROBE) != 0:
				resolved = true
			case resolved && n.State&(netlink.NUD_FAILED|netlink.NUD_INCOMPLETE) != 0:
				res.failed++
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	for {
		select {
		case p := <-e.sniffed:
			if p.target != ndptest.LiveAddr {
				continue
			}
			if p.outgoing && p.icmpType == ndpproto.TypeNeighSolic && p.dst == ndptest.LiveAddr {
				probes[p.at] = false
			}
			if !p.outgoing && p.icmpType == ndpproto.TypeNeighAdv {
				for at, answered := range probes {
					if !answered && !p.at.Before(at) && p.at.Sub(at) < time.Second {
						probes[at] = true
					}
				}
			}
			continue
		default:
		}
		break
	}
	for _, answered := range probes {
		res.unicastProbes++
		if !answered {
			res.unanswered++
		}
	}
	return res
}

func TestPrivilegedSoak(t *testing.T) {
	if !*soak {
		t.Skip("soak test: run with -ndp.soak")
	}
	for _, mode := range []string{ndpproto.ModeNative, ndpproto.ModeKernel} {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t)
			sysctl(t, e.router, "net/ipv6/neigh/up0/base_reachable_time_ms", "1000")
			sysctl(t, e.router, "net/ipv6/neigh/up0/delay_first_probe_time", "1")
			e.startSniffer(t)
			r := e.answerLive(t, Config{Mode: mode})
			res := runTraffic(t, e, 60*time.Second)
			t.Logf("%s: %d unicast probes, %d unanswered, %d failed neighbour states; %+v", mode, res.unicastProbes, res.unanswered, res.failed, r.Stats())
			if res.unicastProbes == 0 || res.unanswered != 0 || res.failed != 0 {
				t.Errorf("%s: %d of %d unicast probes unanswered, %d failed neighbour states", mode, res.unanswered, res.unicastProbes, res.failed)
			}
		})
	}
}

func TestPrivilegedUnsolicited(t *testing.T) {
	e := newEnv(t)
	r := e.startResponder(t, Config{})
	start := time.Now()
	if err := r.SetTargets([]netip.Addr{ndptest.LiveAddr}, nil); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 200*time.Millisecond {
		t.Errorf("SetTargets blocked for %v", d)
	}
	var got []receivedNA
	for len(got) < unsolicitedCount {
		na, ok := e.waitNA(ndptest.LiveAddr, false, start, 3*unsolicitedInterval)
		if !ok {
			break
		}
		got = append(got, na)
	}
	if len(got) != unsolicitedCount {
		t.Fatalf("got %d unsolicited advertisements, want %d", len(got), unsolicitedCount)
	}
	for i, na := range got {
		if na.dst != ndpproto.AllNodes || !na.na.Override || na.na.Solicited || !bytes.Equal(na.tlla(), e.hostMAC) || na.src != e.hostLL {
			t.Errorf("advertisement %d: to %s from %s, %+v, tlla %v", i, na.dst, na.src, na.na, na.tlla())
		}
		if i > 0 {
			if gap := na.at.Sub(got[i-1].at); gap < unsolicitedInterval*8/10 {
				t.Errorf("advertisements %d and %d only %v apart", i-1, i, gap)
			}
		}
	}
	// The same set again is a no-op: nothing more is announced.
	if err := r.SetTargets([]netip.Addr{ndptest.LiveAddr}, nil); err != nil {
		t.Fatal(err)
	}
	if na, ok := e.waitNA(ndptest.LiveAddr, false, time.Now(), 1500*time.Millisecond); ok {
		t.Errorf("SetTargets with the same set announced again: %+v", na.na)
	}
	if s := r.Stats(); s.Unsolicited != unsolicitedCount {
		t.Errorf("Stats.Unsolicited = %d, want %d", s.Unsolicited, unsolicitedCount)
	}
}

// TestPrivilegedNativeSurvives: malformed packets, a bad hop limit, the
// uplink going down and up and changing its MAC do not stop the answers.
func TestPrivilegedNativeSurvives(t *testing.T) {
	e := newEnv(t)
	r := e.answerLive(t, Config{Source: ndpproto.SourceTarget})

	g := ndptest.SNM(ndptest.LiveAddr)
	src := e.routerAddr
	good := ndptest.IPv6Packet(src, g, 255, 0, nil, ndptest.ICMPNS(t, src, g, ndptest.LiveAddr, ndptest.SLLAOpt(e.routerMAC)))
	for _, bad := range [][]byte{
		good[:45],
		append(append([]byte(nil), good[:40]...), 135, 0, 0, 0),
		func() []byte { b := append([]byte(nil), good...); b[50] ^= 1; return b }(), // checksum
		ndptest.IPv6Packet(src, g, 254, 0, nil, ndptest.ICMPNS(t, src, g, ndptest.LiveAddr, ndptest.SLLAOpt(e.routerMAC))),
		ndptest.IPv6Packet(src, g, 255, 0, nil, ndptest.ICMPNS(t, src, g, ndptest.LiveAddr, ndptest.SLLAOpt(e.routerMAC), ndptest.SLLAOpt(e.routerMAC))),
		ndptest.IPv6Packet(src, g, 255, 0, nil, ndptest.ICMPNS(t, src, g, netip.MustParseAddr("ff02::1:ff00:ab53"))),
	} {
		e.sendRaw(t, bad, multicastMAC(g))
	}
	if na, ok := e.waitNA(ndptest.LiveAddr, true, time.Now().Add(-time.Second), 300*time.Millisecond); ok {
		t.Errorf("a malformed solicitation was answered: %+v", na.na)
	}
	sent := e.sendRaw(t, good, multicastMAC(g))
	na, ok := e.waitNA(ndptest.LiveAddr, true, sent, time.Second)
	if !ok {
		t.Fatal("not answered after malformed packets")
	}
	if na.src != ndptest.LiveAddr {
		t.Errorf("Source target: answer from %s, want %s", na.src, ndptest.LiveAddr)
	}
	// The truncated ones, the one whose checksum was broken in its target
	// and the one for a multicast target never pass the capture filter;
	// the duplicate option and the hop limit do.
	if s := r.Stats(); s.IgnoredReasons[ndpproto.ReasonMalformed] < 1 || s.IgnoredReasons[ndpproto.ReasonHopLimit] < 1 {
		t.Errorf("ignored reasons %v, want malformed >= 1 and hop limit >= 1", s.IgnoredReasons)
	}

	link := e.uplinkDown(t, 200*time.Millisecond)
	newMAC := net.HardwareAddr{0x02, 0x42, 0xac, 0x11, 0, 0x99}
	if err := e.hostH.LinkSetHardwareAddr(link, newMAC); err != nil {
		t.Fatal(err)
	}
	since := time.Now()
	if err := e.hostH.LinkSetUp(link); err != nil {
		t.Fatal(err)
	}
	e.hostMAC = newMAC
	// Coming up with a new MAC is announced by itself.
	if na, ok := e.waitNA(ndptest.LiveAddr, false, since, 3*time.Second); !ok || !bytes.Equal(na.tlla(), newMAC) {
		t.Errorf("no unsolicited advertisement with the new MAC after up (got %v, %v)", ok, na.tlla())
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		sent := e.solicit(t, "unicast", ndptest.LiveAddr)
		na, ok := e.waitNA(ndptest.LiveAddr, true, sent, 200*time.Millisecond)
		if ok && bytes.Equal(na.tlla(), newMAC) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after down/up and MAC change: answered %v with %v, want %v", ok, na.tlla(), newMAC)
		}
	}
	checkAnswers(t, e, true, []string{"multicast", "unicast"})
}

func TestPrivilegedKernelMode(t *testing.T) {
	e := newEnv(t)
	r := e.startResponder(t, Config{Mode: ndpproto.ModeKernel})
	if err := r.SetTargets([]netip.Addr{ndptest.LiveAddr, removedAddr}, nil); err != nil {
		t.Fatal(err)
	}
	if got := e.proxies(t); !slices.Equal(got, []netip.Addr{ndptest.LiveAddr, removedAddr}) {
		t.Fatalf("proxy entries %v, want [%s %s]", got, ndptest.LiveAddr, removedAddr)
	}
	if err := r.SetTargets([]netip.Addr{ndptest.LiveAddr}, nil); err != nil {
		t.Fatal(err)
	}
	if got := e.proxies(t); !slices.Equal(got, []netip.Addr{ndptest.LiveAddr}) {
		t.Fatalf("proxy entries %v, want [%s]", got, ndptest.LiveAddr)
	}
	time.Sleep(2*unsolicitedInterval + 200*time.Millisecond)
	checkAnswers(t, e, false, []string{"multicast", "unicast", "dad"})
	checkRouterNeighbour(t, e)

	// Down and up flushes the kernel's proxy entries; they come back.
	link := e.uplinkDown(t, 100*time.Millisecond)
	if err := e.hostH.LinkSetUp(link); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for !slices.Equal(e.proxies(t), []netip.Addr{ndptest.LiveAddr}) {
		if time.Now().After(deadline) {
			t.Fatalf("proxy entries after down/up: %v", e.proxies(t))
		}
		time.Sleep(50 * time.Millisecond)
	}

	for range 2 { // the same set again must fail the same way
		err := r.SetTargets([]netip.Addr{ndptest.LiveAddr}, []netip.Prefix{ndptest.ContainerNet})
		if !errors.Is(err, ErrRangeUnsupported) {
			t.Errorf("kernel mode with a range: %v, want ErrRangeUnsupported", err)
		}
	}
	if got := e.proxies(t); !slices.Equal(got, []netip.Addr{ndptest.LiveAddr}) {
		t.Errorf("proxy entries after a range was refused: %v", got)
	}
}

// proxies lists the host's proxy-neighbour entries on eth0, sorted.
func (e *env) proxies(t *testing.T) []netip.Addr {
	t.Helper()
	list, err := e.hostH.NeighProxyList(e.hostIdx, netlink.FAMILY_V6)
	if err != nil {
		t.Fatal(err)
	}
	var out []netip.Addr
	for _, n := range list {
		if a, ok := netip.AddrFromSlice(n.IP); ok {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

func TestPrivilegedOffMode(t *testing.T) {
	e := newEnv(t)
	r := e.answerLive(t, Config{Mode: ndpproto.ModeOff})
	sent := e.solicit(t, "multicast", ndptest.LiveAddr)
	if na, ok := e.waitNA(ndptest.LiveAddr, true, sent, 300*time.Millisecond); ok {
		t.Errorf("off mode answered: %+v", na.na)
	}
	if s := r.Stats(); len(s.Addrs) != 0 || s.Unsolicited != 0 {
		t.Errorf("off mode stats %+v, want nothing answered", s)
	}
}

func TestPrivilegedRange(t *testing.T) {
	e := newEnv(t)
	r := e.startResponder(t, Config{})
	if err := r.SetTargets(nil, []netip.Prefix{ndptest.ContainerNet}); err != nil {
		t.Fatal(err)
	}
	for _, a := range []netip.Addr{ndptest.LiveAddr, unusedAddr} {
		sent := e.solicit(t, "multicast", a)
		if _, ok := e.waitNA(a, true, sent, time.Second); !ok {
			t.Errorf("%s in range %s not answered", a, ndptest.ContainerNet)
		}
	}
	outside := netip.MustParseAddr("2001:db8:1234:a1:2::1")
	sent := e.solicit(t, "multicast", outside)
	if _, ok := e.waitNA(outside, true, sent, 300*time.Millisecond); ok {
		t.Errorf("%s outside the range answered", outside)
	}
}

// TestPrivilegedMultipleUplinks: each address is answered only on the
// uplink whose on-link prefix holds it; an address no uplink's prefix
// holds goes to the first.
func TestPrivilegedMultipleUplinks(t *testing.T) {
	t.Parallel()
	e0 := newEnv(t)
	e1 := attachRouter(t, e0.host, "eth1", netip.MustParsePrefix("2001:db8:5678::1/64"), netip.MustParsePrefix("2001:db8:5678::fffe/64"))
	on1 := netip.MustParseAddr("2001:db8:5678:0:1::7")
	nowhere := netip.MustParseAddr("2001:db8:9999::5")
	r := e0.startResponder(t, Config{Uplinks: []string{"eth0", "eth1"}})
	if err := r.SetTargets([]netip.Addr{ndptest.LiveAddr, on1, nowhere}, nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		addr     netip.Addr
		e        *env
		answered bool
	}{
		{ndptest.LiveAddr, e0, true}, {ndptest.LiveAddr, e1, false},
		{on1, e0, false}, {on1, e1, true},
		{nowhere, e0, true}, {nowhere, e1, false},
	} {
		sent := tc.e.solicit(t, "multicast", tc.addr)
		na, ok := tc.e.waitNA(tc.addr, true, sent, 300*time.Millisecond)
		if ok != tc.answered {
			t.Errorf("%s on %s: answered %v, want %v", tc.addr, tc.e.hostIf, ok, tc.answered)
			continue
		}
		if ok && !bytes.Equal(na.tlla(), tc.e.hostMAC) {
			t.Errorf("%s on %s: answered with %v, want %v", tc.addr, tc.e.hostIf, na.tlla(), tc.e.hostMAC)
		}
	}
}

// TestPrivilegedManyTargets joins more solicited-node groups than one
// socket's option memory holds, and answers for all of them.
func TestPrivilegedManyTargets(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.startResponder(t, Config{})
	var many []netip.Addr
	base := ndptest.ContainerNet.Addr().As16()
	for i := 1; i <= 4000; i++ {
		b := base
		b[14], b[15] = byte(i>>8), byte(i)
		many = append(many, netip.AddrFrom16(b))
	}
	start := time.Now()
	if err := r.SetTargets(many, nil); err != nil {
		t.Fatal(err)
	}
	t.Logf("SetTargets with %d addresses took %v", len(many), time.Since(start))
	r.mu.RLock()
	groups, conns := len(r.uplinks[0].st.Groups), len(r.uplinks[0].groups.conns)
	r.mu.RUnlock()
	if groups != len(many) {
		t.Errorf("%d groups joined, want %d", groups, len(many))
	}
	t.Logf("%d groups over %d sockets", groups, conns)
	// Let the burst of unsolicited advertisements pass first.
	time.Sleep(2*unsolicitedInterval + 500*time.Millisecond)
	for _, a := range []netip.Addr{many[0], many[len(many)/2], many[len(many)-1]} {
		sent := e.solicit(t, "multicast", a)
		if _, ok := e.waitNA(a, true, sent, time.Second); !ok {
			t.Errorf("%s not answered", a)
		}
	}
	if err := r.SetTargets(many[:1], nil); err != nil {
		t.Fatal(err)
	}
	r.mu.RLock()
	groups = len(r.uplinks[0].st.Groups)
	r.mu.RUnlock()
	if groups != 1 {
		t.Errorf("%d groups joined after shrinking to one address", groups)
	}
}

// Responder satisfies the driver's Neighbors interface (declared there;
// restated here so ndp does not import the driver).
var _ interface {
	SetTargets(addrs []netip.Addr, ranges []netip.Prefix) error
	UpdateTargets(add, remove []netip.Addr) error
} = (*Responder)(nil)

// uplinkView is what reconciling decides for an uplink.
type uplinkView struct {
	Addrs, Groups, Proxies []netip.Addr
	Refs                   map[netip.Addr]int
}

func viewUplinks(r *Responder) []uplinkView {
	var out []uplinkView
	for _, u := range r.uplinks {
		v := uplinkView{Refs: map[netip.Addr]int{}}
		v.Addrs = slices.SortedFunc(maps.Keys(u.st.Addrs), netip.Addr.Compare)
		v.Groups = slices.SortedFunc(maps.Keys(u.st.Groups), netip.Addr.Compare)
		v.Proxies = slices.SortedFunc(maps.Keys(u.st.Proxies), netip.Addr.Compare)
		if r.cfg.Mode == ndpproto.ModeNative {
			maps.Copy(v.Refs, u.st.Refs)
		}
		out = append(out, v)
	}
	return out
}

// TestPrivilegedUpdateTargetsEqualsReconcile: after random UpdateTargets,
// in both modes, a full reconcile of the same targets changes nothing, and
// the targets are what the updates say.
func TestPrivilegedUpdateTargetsEqualsReconcile(t *testing.T) {
	for _, mode := range []string{ndpproto.ModeNative, ndpproto.ModeKernel} {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t)
			r := e.answerLive(t, Config{Mode: mode})
			want := map[netip.Addr]bool{ndptest.LiveAddr: true}
			base := ndptest.ContainerNet.Addr().As16()
			rnd := rand.New(rand.NewPCG(1, 2))
			pick := func() netip.Addr {
				b := base
				// Few distinct low bytes: solicited-node groups are shared.
				b[13], b[15] = byte(rnd.IntN(3)), byte(1+rnd.IntN(5))
				return netip.AddrFrom16(b)
			}
			for step := 0; step < 60; step++ {
				var add, remove []netip.Addr
				for range rnd.IntN(3) {
					add = append(add, pick())
				}
				for range rnd.IntN(3) {
					remove = append(remove, pick())
				}
				if err := r.UpdateTargets(add, remove); err != nil {
					t.Fatal(err)
				}
				for _, a := range remove {
					delete(want, a)
				}
				for _, a := range add {
					want[a] = true
				}
				r.mu.Lock()
				got := r.targets.Addrs()
				before := viewUplinks(r)
				err := r.reconcileLocked()
				after := viewUplinks(r)
				r.mu.Unlock()
				if err != nil {
					t.Fatal(err)
				}
				if w := slices.SortedFunc(maps.Keys(want), netip.Addr.Compare); !slices.Equal(got, w) {
					t.Fatalf("step %d: targets %v, want %v", step, got, w)
				}
				if diff := cmp.Diff(after, before, cmpopts.EquateComparable(netip.Addr{}), cmpopts.EquateEmpty()); diff != "" {
					t.Fatalf("step %d: a full reconcile changed the uplinks (-reconciled +updated):\n%s", step, diff)
				}
			}
		})
	}
}

// TestPrivilegedHandOver: a native responder stopped the way the plugin
// stops on SIGTERM leaves kernel proxy entries, so the router still
// resolves a live address while nothing runs; the next start removes
// them (also the entry of an address removed meanwhile) and answers
// natively again.
func TestPrivilegedHandOver(t *testing.T) {
	e := newEnv(t)
	r := e.startResponder(t, Config{})
	if err := r.SetTargets([]netip.Addr{ndptest.LiveAddr, removedAddr}, nil); err != nil {
		t.Fatal(err)
	}
	if got := e.proxies(t); len(got) != 0 {
		t.Fatalf("native mode installed proxy entries %v", got)
	}
	if err := r.CloseLeavingProxies(); err != nil {
		t.Fatal(err)
	}
	if got := e.proxies(t); !slices.Equal(got, []netip.Addr{ndptest.LiveAddr, removedAddr}) {
		t.Fatalf("after the hand-over: proxy entries %v, want [%s %s]", got, ndptest.LiveAddr, removedAddr)
	}
	// Nothing of v6bridge runs now: the kernel answers, multicast and
	// unicast probes alike, and the router resolves the address.
	for _, kind := range []string{"multicast", "unicast"} {
		sent := e.solicit(t, kind, ndptest.LiveAddr)
		if na, ok := e.waitNA(ndptest.LiveAddr, true, sent, time.Second); !ok || !bytes.Equal(na.tlla(), e.hostMAC) && na.tlla() != nil {
			t.Errorf("stopped responder: %s solicitation answered %v (%+v)", kind, ok, na.na)
		}
	}
	if err := e.routerH.NeighDel(&netlink.Neigh{LinkIndex: e.routerIdx, Family: netlink.FAMILY_V6, IP: ndptest.LiveAddr.AsSlice()}); err != nil && !errors.Is(err, unix.ENOENT) {
		t.Fatal(err)
	}
	resolved := false
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline) && !resolved; time.Sleep(50 * time.Millisecond) {
		e.sendTraffic(t, ndptest.LiveAddr)
		n, ok := e.neighbour(t, ndptest.LiveAddr)
		resolved = ok && bytes.Equal(n.HardwareAddr, e.hostMAC)
	}
	if !resolved {
		t.Fatalf("stopped responder: the router does not resolve %s", ndptest.LiveAddr)
	}

	// The next start takes over: entries gone, native answers, and the
	// address removed while stopped is no longer answered.
	r2 := e.answerLive(t, Config{})
	for deadline := time.Now().Add(3 * time.Second); len(e.proxies(t)) != 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after the restart: proxy entries %v left", e.proxies(t))
		}
	}
	time.Sleep(2*unsolicitedInterval + 200*time.Millisecond)
	checkAnswers(t, e, true, []string{"multicast", "unicast"})
	if s := r2.Stats(); s.AnsweredUnicast == 0 {
		t.Errorf("restarted responder did not answer the unicast probe itself: %+v", s)
	}
}

var floodRate = flag.Int("ndp.flood-rate", 100000, "solicitations per second of TestPrivilegedFloodSoak's flood")

// TestPrivilegedFloodSoak is the NUD soak with a flood beside it: for 30 s
// the router re-probes the live address every second (base reachable time
// 1 s) under continuous traffic, while a second sender on the router's
// link floods solicitations for random addresses of the /64 (100,000/s by
// default, -ndp.flood-rate). At most 1 % of the router's unicast probes
// may go unanswered and its entry must (almost) never fail. The flood
// never reaches userspace and almost none of it the host's stack: the
// ingress filter drops it at the uplink (the capture filter would too).
func TestPrivilegedFloodSoak(t *testing.T) {
	e := newEnv(t)
	sysctl(t, e.router, "net/ipv6/neigh/up0/base_reachable_time_ms", "1000")
	sysctl(t, e.router, "net/ipv6/neigh/up0/delay_first_probe_time", "1")
	e.startSniffer(t)
	r := e.startResponder(t, Config{})
	// 1,000 live addresses around the one probed, like a busy host.
	targets := []netip.Addr{ndptest.LiveAddr}
	for i := 1; i < 1000; i++ {
		targets = append(targets, ndptest.Nth(ndptest.ContainerNet.Addr(), 0x1000+i))
	}
	if err := r.SetTargets(targets, nil); err != nil {
		t.Fatal(err)
	}

	stopFlood := startFlood(t, e, ndpflood.Config{
		Ifindex: e.routerIdx, MAC: net.HardwareAddr{0x02, 0xba, 0xd0, 0, 0, 1},
		Source: netip.MustParseAddr("2001:db8:1234:a1::bad"), Scan: netip.MustParsePrefix("2001:db8:1234:a1::/64"), Rate: *floodRate,
	})
	start := time.Now()
	res := runTraffic(t, e, 30*time.Second)
	sent := stopFlood()
	s := r.Stats()
	t.Logf("flood: %d solicitations in %v (%.0f/s); router: %d unicast probes, %d unanswered, %d failed neighbour states; responder saw %d, answered %d, socket drops %d, dropped at ingress %d",
		sent, time.Since(start).Round(time.Millisecond), float64(sent)/time.Since(start).Seconds(), res.unicastProbes, res.unanswered, res.failed, s.Solicitations, s.Answered, s.SocketDrops, s.IngressDropped)
	if res.unicastProbes < 10 {
		t.Fatalf("the router sent %d unicast probes: the test proves nothing", res.unicastProbes)
	}
	if s.Solicitations*100 > sent {
		t.Errorf("the responder saw %d of %d flood solicitations: the capture filter let them through", s.Solicitations, sent)
	}
	if s.IngressDropped*10 < sent*9 {
		t.Errorf("the ingress filter dropped %d of %d flood solicitations (problem %q): the rest reached the host's stack", s.IngressDropped, sent, s.IngressProblem)
	}
	if res.unanswered*100 > res.unicastProbes || res.failed*100 > res.unicastProbes {
		t.Errorf("under the flood %d of %d unicast probes unanswered, %d failed neighbour states: more than 1 %%", res.unanswered, res.unicastProbes, res.failed)
	}
}

// TestPrivilegedPrimeRouter: with PrimeRouter a new address solicits the
// uplink's default router from itself, so the router holds an entry for it
// (with the host's MAC) before any traffic; without, it holds none.
func TestPrivilegedPrimeRouter(t *testing.T) {
	t.Parallel()
	for _, prime := range []bool{false, true} {
		t.Run(fmt.Sprint(prime), func(t *testing.T) {
			e := newEnv(t)
			l, err := e.hostH.LinkByName("eth0")
			if err != nil {
				t.Fatal(err)
			}
			if err := e.hostH.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Gw: e.routerAddr.AsSlice()}); err != nil {
				t.Fatalf("default route: %v", err)
			}
			r := e.startResponder(t, Config{PrimeRouter: prime})
			// The gateway is read with the uplink; a resync picks the route up.
			if _, err := r.refreshUplink(r.uplinks[0]); err != nil {
				t.Fatal(err)
			}
			if err := r.SetTargets([]netip.Addr{ndptest.LiveAddr}, nil); err != nil {
				t.Fatal(err)
			}
			time.Sleep(500 * time.Millisecond)
			n, ok := e.neighbour(t, ndptest.LiveAddr)
			primed := ok && bytes.Equal(n.HardwareAddr, e.hostMAC)
			if primed != prime {
				t.Errorf("router's entry for %s: %+v (found %v); want one with the host's MAC: %v", ndptest.LiveAddr, n, ok, prime)
			}
			if s := r.Stats(); (s.Primed > 0) != prime {
				t.Errorf("Stats.Primed = %d with PrimeRouter %v", s.Primed, prime)
			}
		})
	}
}

// TestPrivilegedProcessNS: a namespace entered on a locked thread, even the
// main one, is never taken for the process's own (sysctls and sockets
// would then land in the namespace of the other threads).
func TestPrivilegedProcessNS(t *testing.T) {
	ns := nettest.NewNS(t)
	for range 20 {
		err := nettest.Do(t, ns, func() error {
			h, err := netns.Get()
			if err != nil {
				return err
			}
			defer h.Close()
			if processNS(h) {
				return errors.New("a test namespace taken for the process's own")
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}
