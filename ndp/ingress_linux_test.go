package ndp

import (
	"bytes"
	"encoding/binary"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/v6bridge/v6bridge/internal/nettest"
	"github.com/v6bridge/v6bridge/ndp/ingress"
	"github.com/v6bridge/v6bridge/ndp/internal/ndptest"
	"github.com/v6bridge/v6bridge/ndp/ndpproto"
)

// stackSolicitations reads how many Neighbor Solicitations the host's
// IPv6 stack received.
func (e *env) stackSolicitations(t *testing.T) uint64 {
	t.Helper()
	for _, f := range e.procNet(t, "snmp6") {
		if len(f) == 2 && f[0] == "Icmp6InNeighborSolicits" {
			n, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				t.Fatalf("read snmp6: %v", err)
			}
			return n
		}
	}
	return 0
}

// ingressTables lists the host's netdev tables named for an uplink.
func (e *env) ingressTables(t *testing.T) []string {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(int(e.host)))
	if err != nil {
		t.Fatal(err)
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyNetdev)
	if err != nil {
		t.Fatalf("list netdev tables: %v", err)
	}
	var out []string
	for _, tb := range tables {
		if strings.HasPrefix(tb.Name, "v6bridge-ndp-") {
			out = append(out, tb.Name)
		}
	}
	return out
}

// TestPrivilegedIngressFilter: solicitations for addresses of the /64
// nobody answers for never reach the host's stack, even when they share a
// solicited-node group with a live address; the live address, the host's
// own address and an address the host gains later are still answered; the
// filter dies with the responder. Without the filter (the control) the
// stack sees every one.
func TestPrivilegedIngressFilter(t *testing.T) {
	// Same solicited-node group as LiveAddr (the last 24 bits).
	foreign := netip.MustParseAddr("2001:db8:1234:a1:7777::ab53")
	const n = 50
	for _, filtered := range []bool{true, false} {
		name := map[bool]string{true: "filtered", false: "unfiltered control"}[filtered]
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			r := e.answerLive(t, Config{NoIngressFilter: !filtered})
			if got := e.ingressTables(t); filtered != (len(got) == 1 && got[0] == ingress.Table("eth0")) {
				t.Fatalf("ingress tables %v with the filter %s", got, name)
			}
			before := e.stackSolicitations(t)
			for range n {
				e.solicit(t, "multicast", foreign)
			}
			time.Sleep(200 * time.Millisecond)
			seen := e.stackSolicitations(t) - before
			if filtered && seen >= n/5 {
				t.Errorf("the stack received %d of %d solicitations for %s: the ingress filter let them through", seen, n, foreign)
			}
			if !filtered && seen < n {
				t.Errorf("without the filter the stack received %d of %d solicitations: the test cannot tell", seen, n)
			}
			if s := r.Stats(); filtered && (s.IngressDropped < n || s.IngressProblem != "") {
				t.Errorf("stats: %d dropped at ingress (want >= %d), problem %q", s.IngressDropped, n, s.IngressProblem)
			}

			for _, a := range []netip.Addr{ndptest.LiveAddr, hostPrefix.Addr()} {
				since := e.solicit(t, "multicast", a)
				if _, ok := e.waitNA(a, true, since, 2*time.Second); !ok {
					t.Errorf("no advertisement for %s", a)
				}
			}
			// An address the host gains is answered by the kernel at once.
			gained := netip.MustParsePrefix("2001:db8:1234:a1::77/64")
			l, err := e.hostH.LinkByName("eth0")
			if err != nil {
				t.Fatal(err)
			}
			if err := e.hostH.AddrAdd(l, &netlink.Addr{IPNet: nettest.PrefixNet(gained), Flags: unix.IFA_F_NODAD}); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(3 * time.Second)
			for {
				since := e.solicit(t, "multicast", gained.Addr())
				if _, ok := e.waitNA(gained.Addr(), true, since, 200*time.Millisecond); ok {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the host's new address %s is not answered", gained.Addr())
				}
			}
			if filtered {
				// A responder that dies without Close leaves no filter.
				r.mu.Lock()
				err := r.nft.CloseLasting()
				r.mu.Unlock()
				if err != nil {
					t.Fatal(err)
				}
				if got := e.ingressTables(t); len(got) != 0 {
					t.Errorf("ingress tables left by a dead responder: %v", got)
				}
			}
		})
	}
}

// TestPrivilegedKernelAnswers: the ingress filter answers the router's
// address resolution and reachability probes in the kernel with the very
// bytes the capture loop sends (the control: the same solicitation
// answered with the filter off), for each source mode; what it does not
// answer (duplicate address detection, a solicitation without the
// source's link-layer address) the capture loop still does; the budgets
// hold in the kernel too.
func TestPrivilegedKernelAnswers(t *testing.T) {
	for _, source := range []string{ndpproto.SourceLinkLocal, ndpproto.SourceTarget, ndpproto.SourceGlobal} {
		t.Run(source, func(t *testing.T) {
			t.Parallel()
			answers := map[bool]map[string][]byte{}
			for _, filtered := range []bool{true, false} {
				e := newEnv(t)
				e.startSniffer(t)
				r := e.answerLive(t, Config{Source: source, NoIngressFilter: !filtered})
				time.Sleep(2*unsolicitedInterval + 200*time.Millisecond) // the announcements go by
				drain(e.sniffed)
				answers[filtered] = map[string][]byte{}
				for _, kind := range []string{"multicast", "unicast"} {
					e.solicit(t, kind, ndptest.LiveAddr)
					na, ok := e.sniffedNA(ndptest.LiveAddr, time.Second)
					if !ok {
						t.Fatalf("filtered=%v: no advertisement for a %s solicitation", filtered, kind)
					}
					if !bytes.Equal(na.linkSrc, e.hostMAC) {
						t.Errorf("filtered=%v %s: frame from %v, want the host's %v", filtered, kind, na.linkSrc, e.hostMAC)
					}
					if c := ndpproto.Checksum(netip.AddrFrom16([16]byte(na.raw[8:24])), netip.AddrFrom16([16]byte(na.raw[24:40])), na.raw[40:]); c != 0 {
						t.Errorf("filtered=%v %s: advertisement with a bad checksum: %x", filtered, kind, na.raw)
					}
					// The host's link-local and global differ per namespace:
					// compare what does not depend on them.
					answers[filtered][kind] = normalizeNA(na.raw, e)
				}
				s := r.Stats() // the capture loop counts after its send returns
				for end := time.Now().Add(time.Second); s.Answered < 2 && time.Now().Before(end); s = r.Stats() {
					time.Sleep(10 * time.Millisecond)
				}
				wantKernel := uint64(0)
				if filtered {
					wantKernel = 2
				}
				if s.KernelAnswered != wantKernel || s.Answered != 2 || s.AnsweredUnicast != 1 {
					t.Errorf("filtered=%v: stats %d answered (%d unicast), %d of them in the kernel; want 2 (1), %d",
						filtered, s.Answered, s.AnsweredUnicast, s.KernelAnswered, wantKernel)
				}
				if filtered {
					// Not of the kernel's shape: the capture loop answers.
					e.solicit(t, "dad", ndptest.LiveAddr)
					if _, ok := e.waitNA(ndptest.LiveAddr, false, time.Now().Add(-time.Second), time.Second); !ok {
						t.Errorf("no defence against duplicate address detection")
					}
					sent := e.sendNS(t, e.routerAddr, ndptest.LiveAddr, ndptest.LiveAddr, 255, e.hostMAC, nil)
					if _, ok := e.waitNA(ndptest.LiveAddr, true, sent, time.Second); !ok {
						t.Errorf("a unicast solicitation without a link-layer address option is not answered")
					}
					s := r.Stats()
					for end := time.Now().Add(time.Second); s.Answered < 4 && time.Now().Before(end); s = r.Stats() {
						time.Sleep(10 * time.Millisecond)
					}
					if s.KernelAnswered != 2 || s.Answered != 4 {
						t.Errorf("after dad and an option-less probe: %d answered, %d in the kernel; want 4, 2", s.Answered, s.KernelAnswered)
					}
				}
			}
			for kind, want := range answers[false] {
				if got := answers[true][kind]; !bytes.Equal(got, want) {
					t.Errorf("%s: the kernel's advertisement\n%x\ndiffers from the capture loop's\n%x", kind, got, want)
				}
			}
		})
	}

	t.Run("budget", func(t *testing.T) {
		e := newEnv(t)
		r := e.answerLive(t, Config{SourceRate: 5, TotalRate: 1000})
		const n = 40
		for range n {
			e.solicit(t, "multicast", ndptest.LiveAddr)
		}
		time.Sleep(300 * time.Millisecond)
		s := r.Stats()
		// A burst of twice the rate, and what a second refills.
		if s.KernelAnswered < 10 || s.KernelAnswered > 16 || s.Limited[ndpproto.ReasonSourceLimit] < n-16 {
			t.Errorf("%d solicitations at a budget of 5/s: %d answered in the kernel, %d over the solicitor's budget", n, s.KernelAnswered, s.Limited[ndpproto.ReasonSourceLimit])
		}
	})
}

// normalizeNA zeroes what differs between two runs' namespaces in an
// advertisement (the host's link-local or global source, its MAC in the
// option) and recomputes the checksum, so two runs compare; a target
// source stays as it is.
func normalizeNA(b []byte, e *env) []byte {
	b = slices.Clone(b)
	if src := netip.AddrFrom16([16]byte(b[8:24])); src == e.hostLL || src == hostPrefix.Addr() {
		copy(b[8:24], make([]byte, 16))
	}
	if bytes.Equal(b[66:72], e.hostMAC) {
		copy(b[66:72], make([]byte, 6))
	}
	b[42], b[43] = 0, 0
	c := ndpproto.Checksum(netip.AddrFrom16([16]byte(b[8:24])), netip.AddrFrom16([16]byte(b[24:40])), b[40:])
	binary.BigEndian.PutUint16(b[42:44], c)
	return b
}

func drain[T any](c chan T) {
	for {
		select {
		case <-c:
		default:
			return
		}
	}
}

// sniffedNA waits for an advertisement for target on the router's wire.
func (e *env) sniffedNA(target netip.Addr, timeout time.Duration) (sniffedPacket, bool) {
	deadline := time.After(timeout)
	for {
		select {
		case p := <-e.sniffed:
			if !p.outgoing && p.icmpType == ndpproto.TypeNeighAdv && p.target == target {
				return p, true
			}
		case <-deadline:
			return sniffedPacket{}, false
		}
	}
}

// TestPrivilegedIngressUpdates: endpoints coming and going change only the
// elements of the ingress filter's sets (the table is not rebuilt), and
// after every step the kernel's allow and answer sets hold what
// PlanIngress plans for the responder's state.
func TestPrivilegedIngressUpdates(t *testing.T) {
	e := newEnv(t)
	r := e.startResponder(t, Config{})
	var pool []netip.Addr
	for i := range 12 {
		pool = append(pool, netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0x12, 0x34, 0, 0xa1, 0, 1, 15: byte(i + 1)}))
	}
	if err := r.SetTargets(pool[:3], nil); err != nil {
		t.Fatal(err)
	}
	c, err := nftables.New(nftables.WithNetNSFd(int(e.host)))
	if err != nil {
		t.Fatal(err)
	}
	elements := func(name string, keyLen int) map[netip.Addr]struct{} {
		t.Helper()
		set, err := c.GetSetByName(&nftables.Table{Family: nftables.TableFamilyNetdev, Name: ingress.Table("eth0")}, name)
		if err != nil {
			t.Fatalf("set %s: %v", name, err)
		}
		els, err := c.GetSetElements(set)
		if err != nil {
			t.Fatalf("elements of %s: %v", name, err)
		}
		out := map[netip.Addr]struct{}{}
		for _, el := range els {
			if len(el.Key) != keyLen {
				t.Fatalf("set %s: a key of %d bytes", name, len(el.Key))
			}
			out[netip.AddrFrom16([16]byte(el.Key[keyLen-16:]))] = struct{}{} // the target is last
		}
		return out
	}
	r.mu.Lock()
	table := r.uplinks[0].ingress.table
	r.mu.Unlock()
	live := map[netip.Addr]bool{pool[0]: true, pool[1]: true, pool[2]: true}
	rnd := rand.New(rand.NewPCG(7, 8))
	for step := range 40 {
		var add, remove []netip.Addr
		for range 1 + rnd.IntN(3) {
			a := pool[rnd.IntN(len(pool))]
			if slices.Contains(add, a) || slices.Contains(remove, a) {
				continue
			}
			if live[a] {
				remove = append(remove, a)
			} else {
				add = append(add, a)
			}
		}
		for _, a := range remove {
			delete(live, a)
		}
		for _, a := range add {
			live[a] = true
		}
		if err := r.UpdateTargets(add, remove); err != nil {
			t.Fatal(err)
		}
		r.mu.Lock()
		u := r.uplinks[0]
		want := ndpproto.PlanIngress(u.st, u.own, r.kernelAnswer(u))
		rebuilt := u.ingress.table != table
		r.mu.Unlock()
		if rebuilt {
			t.Fatalf("step %d: the table was rebuilt for an endpoint change", step)
		}
		if got := elements(ingress.AllowSet, 16); !maps.Equal(got, want.Allow) {
			t.Fatalf("step %d (+%v -%v): allow set %v, want %v", step, add, remove, got, want.Allow)
		}
		answered := elements(ingress.AnswerSet, 32) // two keys per address, the same target
		if want.Answer == nil || !maps.Equal(answered, want.Answered) || len(want.Answered) != len(live) {
			t.Fatalf("step %d: answer set targets %v, want %v (live %d)", step, answered, want.Answered, len(live))
		}
	}
}
