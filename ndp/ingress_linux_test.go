package ndp

import (
	"bufio"
	"bytes"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/v6bridge/v6bridge/internal/nettest"
)

// stackSolicitations reads how many Neighbor Solicitations the host's
// IPv6 stack received.
func (e *env) stackSolicitations(t *testing.T) uint64 {
	t.Helper()
	var n uint64
	err := nettest.Do(t, e.host, func() error {
		b, err := os.ReadFile("/proc/thread-self/net/snmp6")
		if err != nil {
			return err
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == "Icmp6InNeighborSolicits" {
				n, err = strconv.ParseUint(f[1], 10, 64)
				return err
			}
		}
		return sc.Err()
	})
	if err != nil {
		t.Fatalf("read snmp6: %v", err)
	}
	return n
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
	// Same solicited-node group as liveAddr (the last 24 bits).
	foreign := netip.MustParseAddr("2001:db8:1234:a1:7777::ab53")
	const n = 50
	for _, filtered := range []bool{true, false} {
		name := map[bool]string{true: "filtered", false: "unfiltered control"}[filtered]
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			r := e.startResponder(t, Config{NoIngressFilter: !filtered})
			if err := r.SetTargets([]netip.Addr{liveAddr}, nil); err != nil {
				t.Fatal(err)
			}
			if got := e.ingressTables(t); filtered != (len(got) == 1 && got[0] == IngressTable("eth0")) {
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

			for _, a := range []netip.Addr{liveAddr, hostPrefix.Addr()} {
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
