package ndp

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/v6bridge/v6bridge/internal/nettest"
	"github.com/v6bridge/v6bridge/ndp/ingress"
	"github.com/v6bridge/v6bridge/ndp/internal/ndptest"
	"github.com/v6bridge/v6bridge/ndp/ndpproto"
)

// recreateUplink deletes the host's uplink and creates it again under the
// same name with the same addresses (its peer, the router's up0, too):
// what a hypervisor hot-plug or a re-created bond or VLAN does. The link
// gets a new index and, a veth, a new MAC.
func (e *env) recreateUplink(t *testing.T) {
	t.Helper()
	l, err := e.hostH.LinkByName(e.hostIf)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.hostH.LinkDel(l); err != nil {
		t.Fatalf("delete %s: %v", e.hostIf, err)
	}
	nettest.Connect(t, e.host, e.hostIf, hostPrefix, e.router, "up0", routerPrefix)
	e.routerIdx, e.routerMAC, e.routerLL = e.linkInfo(t, e.routerH, "up0")
	e.hostIdx, e.hostMAC, e.hostLL = e.linkInfo(t, e.hostH, e.hostIf)
	e.routerIfi.Index = e.routerIdx
	e.startReader(t) // the old one listens on the deleted up0
}

// joinedGroups lists the IPv6 multicast groups the host's link ifname
// has joined (/proc/net/igmp6).
func (e *env) joinedGroups(t *testing.T, ifname string) []netip.Addr {
	t.Helper()
	var out []netip.Addr
	for _, f := range e.procNet(t, "igmp6") {
		if len(f) < 3 || f[1] != ifname || len(f[2]) != 32 {
			continue
		}
		var a [16]byte
		for i := range a {
			fmt.Sscanf(f[2][2*i:2*i+2], "%02x", &a[i])
		}
		out = append(out, netip.AddrFrom16(a))
	}
	return out
}

// answersOnUplink checks that multicast and unicast solicitations for
// LiveAddr are answered with the uplink's MAC (no timing: checkAnswers
// measures that), and one for unusedAddr is not.
func (e *env) answersOnUplink(t *testing.T, when string) {
	t.Helper()
	for _, kind := range []string{"multicast", "unicast"} {
		sent := e.solicit(t, kind, ndptest.LiveAddr)
		na, ok := e.waitNA(ndptest.LiveAddr, true, sent, time.Second)
		if !ok {
			t.Errorf("%s: %s solicitation for %s not answered", when, kind, ndptest.LiveAddr)
			continue
		}
		if mac := na.tlla(); mac != nil && !bytes.Equal(mac, e.hostMAC) {
			t.Errorf("%s: %s answer for %s carries %v, want the uplink's %v", when, kind, ndptest.LiveAddr, mac, e.hostMAC)
		}
	}
	sent := e.solicit(t, "multicast", unusedAddr)
	if na, ok := e.waitNA(unusedAddr, true, sent, 300*time.Millisecond); ok {
		t.Errorf("%s: %s answered, no container has it: %+v", when, unusedAddr, na.na)
	}
}

// TestPrivilegedReattach: the uplink deleted and created again under its
// name is answered on again, without a restart, in both modes: the
// responder follows the uplink itself, binds its capture socket to the new
// link, joins the solicited-node group there, puts kernel mode's proxy
// entries on it and makes the ingress filter anew, whose answers in the
// kernel go out of the new link. Before, it stayed bound to the deleted
// link's index and answered nothing until restarted (as ndppd does).
func TestPrivilegedReattach(t *testing.T) {
	for _, mode := range []string{ndpproto.ModeNative, ndpproto.ModeKernel} {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t)
			r := e.answerLive(t, Config{Mode: mode})
			native := mode == ndpproto.ModeNative
			e.answersOnUplink(t, "before")
			old := e.hostIdx

			for round := range 2 { // a second time: nothing was left half moved
				answered := r.Stats().KernelAnswered
				e.recreateUplink(t)
				if e.hostIdx == old {
					t.Fatalf("the re-created uplink kept index %d: the test cannot tell", old)
				}
				old = e.hostIdx
				deadline := time.Now().Add(5 * time.Second)
				for {
					sent := e.solicit(t, "multicast", ndptest.LiveAddr)
					if _, ok := e.waitNA(ndptest.LiveAddr, true, sent, 200*time.Millisecond); ok {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("round %d: %s is not answered on the re-created uplink (index %d)", round, ndptest.LiveAddr, e.hostIdx)
					}
				}
				if native {
					// Multicast solicitations with the solicitor's MAC are
					// answered at the ingress: on the new link's index, once
					// the responder saw the new link up (the capture loop
					// may answer the first ones: the link came up before
					// the responder heard of it).
					for before := r.Stats().KernelAnswered; ; {
						sent := e.solicit(t, "multicast", ndptest.LiveAddr)
						e.waitNA(ndptest.LiveAddr, true, sent, 200*time.Millisecond)
						if r.Stats().KernelAnswered > before {
							break
						}
						if time.Now().After(deadline) {
							t.Fatalf("round %d: no answer from the ingress filter on the new link", round)
						}
					}
				}
				e.answersOnUplink(t, fmt.Sprintf("round %d", round))
				if native {
					if g := e.joinedGroups(t, e.hostIf); !slices.Contains(g, ndptest.SNM(ndptest.LiveAddr)) {
						t.Errorf("round %d: the new %s has groups %v, not %s", round, e.hostIf, g, ndptest.SNM(ndptest.LiveAddr))
					}
				} else if got := e.proxies(t); !slices.Equal(got, []netip.Addr{ndptest.LiveAddr}) {
					t.Errorf("round %d: proxy entries on the new link %v, want [%s]", round, got, ndptest.LiveAddr)
				}
				if got := e.ingressTables(t); !slices.Equal(got, []string{ingress.Table(e.hostIf)}) {
					t.Errorf("round %d: ingress tables %v", round, got)
				}
				if s := r.Stats(); s.IngressProblem != "" {
					t.Errorf("round %d: ingress problem %q", round, s.IngressProblem)
				}
				if got := r.Stats().KernelAnswered; native && got <= answered {
					// The filter was made anew for the new link: its
					// counters start at 0, the total must not.
					t.Errorf("round %d: kernel answers counted %d, %d before the uplink was re-created", round, got, answered)
				}
			}
		})
	}
}
