package ra

import (
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/v6bridge/v6bridge/internal/nettest"
)

// TestPrivilegedContainerLearnsDefaultRoute: a "container" behind a bridge,
// as engines before 28 leave it (accept_ra=1, forwarding=0, no default
// route), learns a default route through the bridge from the advertiser.
func TestPrivilegedContainerLearnsDefaultRoute(t *testing.T) {
	host := nettest.NewNS(t)
	ctr := nettest.NewNS(t)
	hh := nettest.Handle(t, host)
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "v6b-ra"}}
	if err := hh.LinkAdd(br); err != nil {
		t.Fatal(err)
	}
	if err := hh.LinkSetUp(br); err != nil {
		t.Fatal(err)
	}
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
	nettest.Connect(t, host, "v6h-ra", netip.Prefix{}, ctr, "eth0", netip.MustParsePrefix("fd00:1::5/64"))
	port, err := hh.LinkByName("v6h-ra")
	if err != nil {
		t.Fatal(err)
	}
	if err := hh.LinkSetMaster(port, br); err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetLevel(logrus.PanicLevel)
	a := NewIn(host, log)
	defer a.Close()
	a.SetBridges([]string{"v6b-ra"})

	hc := nettest.Handle(t, ctr)
	deadline := time.Now().Add(15 * time.Second)
	for {
		routes, err := hc.RouteListFiltered(unix.AF_INET6, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, r := range routes {
			if (r.Dst == nil || r.Dst.String() == "::/0") && r.Gw != nil && r.Gw.IsLinkLocalUnicast() && r.Protocol == unix.RTPROT_RA {
				found = true
			}
		}
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no default route from a router advertisement in the container: %v", routes)
		}
		time.Sleep(200 * time.Millisecond)
	}
	a.SetBridges(nil)
	a.Close()
}
