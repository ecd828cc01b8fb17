package ra

import (
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/v6bridge/v6bridge/internal/nettest"
)

// container is a namespace behind the bridge as engines before 28 leave
// it: accept_ra=1, forwarding=0, no default route.
func container(t *testing.T, host netns.NsHandle, br netlink.Link, port string, addr netip.Prefix) *netlink.Handle {
	t.Helper()
	ctr := nettest.NewNS(t)
	if err := nettest.Do(t, ctr, func() error {
		for _, f := range []string{"/proc/sys/net/ipv6/conf/default/accept_ra", "/proc/sys/net/ipv6/conf/all/accept_ra"} {
			if err := os.WriteFile(f, []byte("1"), 0o644); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	nettest.Connect(t, host, port, netip.Prefix{}, ctr, "eth0", addr)
	hh := nettest.Handle(t, host)
	l, err := hh.LinkByName(port)
	if err != nil {
		t.Fatal(err)
	}
	if err := hh.LinkSetMaster(l, br); err != nil {
		t.Fatal(err)
	}
	return nettest.Handle(t, ctr)
}

// raRoute reports whether the namespace has a default route learnt from a
// router advertisement.
func raRoute(t *testing.T, h *netlink.Handle) bool {
	t.Helper()
	routes, err := h.RouteListFiltered(unix.AF_INET6, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		if (r.Dst == nil || r.Dst.String() == "::/0") && r.Gw != nil && r.Gw.IsLinkLocalUnicast() && r.Protocol == unix.RTPROT_RA {
			return true
		}
	}
	return false
}

func waitRoute(t *testing.T, h *netlink.Handle, what string) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); !raRoute(t, h); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: no default route from a router advertisement", what)
		}
	}
}

// TestPrivilegedOnlyTargetsLearnTheRouter: of two containers behind a
// bridge, only the targeted one learns a default route through it, at
// once; the other hears nothing (not even after its own router
// solicitation) until it becomes a target too.
func TestPrivilegedOnlyTargetsLearnTheRouter(t *testing.T) {
	host := nettest.NewNS(t)
	hh := nettest.Handle(t, host)
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "v6b-ra"}}
	if err := hh.LinkAdd(br); err != nil {
		t.Fatal(err)
	}
	if err := hh.LinkSetUp(br); err != nil {
		t.Fatal(err)
	}
	if err := hh.AddrAdd(br, &netlink.Addr{IPNet: nettest.PrefixNet(netip.MustParsePrefix("fd00:1::1/64")), Flags: unix.IFA_F_NODAD}); err != nil {
		t.Fatal(err)
	}
	one := container(t, host, br, "v6h-ra1", netip.MustParsePrefix("fd00:1::5/64"))
	two := container(t, host, br, "v6h-ra2", netip.MustParsePrefix("fd00:1::6/64"))
	log := logrus.New()
	log.SetLevel(logrus.PanicLevel)
	a := NewIn(host, log)
	defer a.Close()

	a.SetTargets(map[string][]netip.Addr{"v6b-ra": {netip.MustParseAddr("fd00:1::5")}})
	waitRoute(t, one, "the target")
	// Long enough for the other's router solicitation (sent at link up,
	// after rtr_solicit_delay) to have been ignored.
	time.Sleep(2 * time.Second)
	if raRoute(t, two) {
		t.Fatal("a container that is no target learnt the router")
	}
	a.SetTargets(map[string][]netip.Addr{"v6b-ra": {netip.MustParseAddr("fd00:1::5"), netip.MustParseAddr("fd00:1::6")}})
	waitRoute(t, two, "a new target")
	a.SetTargets(nil)
	a.Close()
}
