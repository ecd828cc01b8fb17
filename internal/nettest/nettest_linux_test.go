package nettest

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// TestNewNSSkipsUnlessAsked: without V6B_KERNEL=1 a kernel test skips
// before it creates a namespace, whatever the uid (go test ./... as root is
// a unit run).
func TestNewNSSkipsUnlessAsked(t *testing.T) {
	for _, v := range []string{"", "0", "true"} {
		t.Setenv(KernelEnv, v)
		var skipped, created bool
		t.Run(fmt.Sprintf("%s=%q", KernelEnv, v), func(t *testing.T) {
			defer func() { skipped = t.Skipped() }()
			NewNS(t)
			created = true
		})
		if !skipped || created {
			t.Errorf("%s=%q: skipped %v, namespace created %v; want a skip before any namespace", KernelEnv, v, skipped, created)
		}
	}
}

func TestPrivilegedNewNSIsFresh(t *testing.T) {
	ns := NewNS(t)
	if in, err := threadIn(ns); err != nil || in {
		t.Fatalf("NewNS left the thread inside the new namespace: %v, %v", in, err)
	}

	links, err := Handle(t, ns).LinkList()
	if err != nil {
		t.Fatal(err)
	}
	if len(links) != 1 || links[0].Attrs().Name != "lo" {
		t.Fatalf("fresh namespace has links %v, want only lo", names(links))
	}
	if links[0].Attrs().Flags&net.FlagUp == 0 {
		t.Error("lo is not up")
	}
}

func TestPrivilegedDoRunsInside(t *testing.T) {
	ns := NewNS(t)
	var inside bool
	err := Do(t, ns, func() (err error) {
		inside, err = threadIn(ns)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !inside {
		t.Error("fn did not run inside the namespace")
	}
	if in, err := threadIn(ns); err != nil || in {
		t.Errorf("Do left the thread inside the namespace: %v, %v", in, err)
	}
}

// threadIn reports whether the calling thread is in ns.
func threadIn(ns netns.NsHandle) (bool, error) {
	cur, err := netns.Get()
	if err != nil {
		return false, err
	}
	defer cur.Close()
	return cur.Equal(ns), nil
}

func TestPrivilegedConnect(t *testing.T) {
	a, b := NewNS(t), NewNS(t)
	aAddr := netip.MustParsePrefix("2001:db8:1::1/64")
	bAddr := netip.MustParsePrefix("2001:db8:1::2/64")
	Connect(t, a, "va", aAddr, b, "vb", bAddr)

	for _, end := range []struct {
		ns   netns.NsHandle
		name string
		addr netip.Prefix
	}{{a, "va", aAddr}, {b, "vb", bAddr}} {
		h := Handle(t, end.ns)
		l, err := h.LinkByName(end.name)
		if err != nil {
			t.Fatalf("%s: %v", end.name, err)
		}
		if l.Attrs().Flags&net.FlagUp == 0 {
			t.Errorf("%s is not up", end.name)
		}
		addrs, err := h.AddrList(l, netlink.FAMILY_V6)
		if err != nil {
			t.Fatal(err)
		}
		var found bool
		for _, ad := range addrs {
			if ad.IP.String() == end.addr.Addr().String() {
				found = true
				if ad.Flags&unix.IFA_F_NODAD == 0 {
					t.Errorf("%s on %s lacks nodad: flags %#x", end.addr, end.name, ad.Flags)
				}
			}
		}
		if !found {
			t.Errorf("%s lacks %s: %v", end.name, end.addr, addrs)
		}
	}

	// Traffic flows: a UDP datagram from b reaches a.
	var conn *udpConn
	if err := Do(t, a, func() error {
		var err error
		conn, err = listenUDP(netip.AddrPortFrom(aAddr.Addr(), 9999))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := Do(t, b, func() error {
		return sendUDP(netip.AddrPortFrom(aAddr.Addr(), 9999), []byte("hi"))
	}); err != nil {
		t.Fatal(err)
	}
	got, err := conn.read(3 * time.Second)
	if err != nil {
		t.Fatalf("no datagram from b: %v", err)
	}
	if string(got) != "hi" {
		t.Errorf("got %q, want %q", got, "hi")
	}
}

func names(links []netlink.Link) []string {
	var s []string
	for _, l := range links {
		s = append(s, l.Attrs().Name)
	}
	return s
}
