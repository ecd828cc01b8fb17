package link

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"

	"github.com/v6bridge/v6bridge/driver"
	"github.com/v6bridge/v6bridge/internal/instance"
	"github.com/v6bridge/v6bridge/internal/nettest"
	"github.com/v6bridge/v6bridge/netspec"
)

var _ driver.Links = (*Kernel)(nil)

// env is a Kernel acting in a fresh namespace, with a netlink handle there
// to check its work and the log it wrote.
type env struct {
	ns   netns.NsHandle
	k    *Kernel
	h    *netlink.Handle
	logs *logtest.Hook
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ns := nettest.NewNS(t)
	log, hook := logtest.NewNullLogger()
	log.SetLevel(logrus.DebugLevel)
	k, err := New(Config{NetNS: ns, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	return &env{ns: ns, k: k, h: nettest.Handle(t, ns), logs: hook}
}

func (e *env) sysctl(t *testing.T, key string) string {
	t.Helper()
	var v string
	err := nettest.Do(t, e.ns, func() error {
		b, err := os.ReadFile("/proc/sys/" + key)
		v = strings.TrimSpace(string(b))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func (e *env) setSysctl(t *testing.T, key, val string) {
	t.Helper()
	err := nettest.Do(t, e.ns, func() error {
		return os.WriteFile("/proc/sys/"+key, []byte(val), 0)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (e *env) link(t *testing.T, name string) netlink.Link {
	t.Helper()
	l, err := e.h.LinkByName(name)
	if err != nil {
		t.Fatalf("link %s: %v", name, err)
	}
	return l
}

// other adds an up link of a type that is neither bridge nor veth (ifb:
// the test machine may lack the dummy module), with addresses.
func (e *env) other(t *testing.T, name string, addrs ...string) netlink.Link {
	t.Helper()
	attrs := netlink.NewLinkAttrs()
	attrs.Name = name
	if err := e.h.LinkAdd(&netlink.Ifb{LinkAttrs: attrs}); err != nil {
		t.Fatalf("add ifb %s: %v", name, err)
	}
	l := e.link(t, name)
	for _, a := range addrs {
		e.addAddr(t, l, a)
	}
	if err := e.h.LinkSetUp(l); err != nil {
		t.Fatal(err)
	}
	return e.link(t, name)
}

func (e *env) addAddr(t *testing.T, l netlink.Link, a string) {
	t.Helper()
	ad := &netlink.Addr{IPNet: ipNet(netip.MustParsePrefix(a)), Flags: unix.IFA_F_NODAD}
	if err := e.h.AddrAdd(l, ad); err != nil {
		t.Fatalf("add %s to %s: %v", a, l.Attrs().Name, err)
	}
}

// globalAddrs lists a link's global IPv6 addresses with their flags.
// ensureAgain calls ensure a second time: it must succeed, log no change
// and leave what look returns as it was (look may be nil).
func (e *env) ensureAgain(t *testing.T, ensure func() error, look func() any) {
	t.Helper()
	var before any
	if look != nil {
		before = look()
	}
	logged := len(e.logs.AllEntries())
	if err := ensure(); err != nil {
		t.Fatalf("second call: %v", err)
	}
	if n := len(e.logs.AllEntries()); n != logged {
		t.Errorf("second call logged changes: %v", e.logs.AllEntries()[logged:])
	}
	if look != nil {
		if diff := cmp.Diff(before, look()); diff != "" {
			t.Errorf("second call changed (-before +after):\n%s", diff)
		}
	}
}

func (e *env) globalAddrs(t *testing.T, name string) map[netip.Prefix]int {
	t.Helper()
	addrs, err := e.h.AddrList(e.link(t, name), netlink.FAMILY_V6)
	if err != nil {
		t.Fatal(err)
	}
	out := map[netip.Prefix]int{}
	for _, a := range addrs {
		if p, ok := addrPrefix(a); ok && a.Scope == unix.RT_SCOPE_UNIVERSE {
			out[p] = a.Flags
		}
	}
	return out
}

// linkState is what the tests compare of a link.
type linkState struct {
	Type     string
	MTU      int
	MAC      string
	Up       bool
	Master   int
	Isolated bool
	Hairpin  bool
}

func (e *env) state(t *testing.T, name string) linkState {
	t.Helper()
	l := e.link(t, name)
	a := l.Attrs()
	s := linkState{Type: l.Type(), MTU: a.MTU, MAC: a.HardwareAddr.String(), Up: a.Flags&net.FlagUp != 0, Master: a.MasterIndex}
	if a.MasterIndex != 0 {
		pi, err := e.h.LinkGetProtinfo(l)
		if err != nil {
			t.Fatal(err)
		}
		s.Isolated = pi.Isolated
		s.Hairpin = pi.Hairpin
	}
	return s
}

func TestPrivilegedEnsureBridge(t *testing.T) {
	e := newEnv(t)
	gw := netip.MustParsePrefix("2001:db8:1::1/64")
	spec := netspec.BridgeSpec{Name: "v6b-test", MTU: 1400, Gateway: gw}

	if err := e.k.EnsureBridge(spec); err != nil {
		t.Fatal(err)
	}
	st := e.state(t, "v6b-test")
	want := linkState{Type: "bridge", MTU: 1400, MAC: st.MAC, Up: true}
	if diff := cmp.Diff(want, st); diff != "" {
		t.Errorf("bridge (-want +got):\n%s", diff)
	}
	if got := e.sysctl(t, "net/ipv6/conf/v6b-test/accept_ra"); got != "0" {
		t.Errorf("accept_ra = %s, want 0", got)
	}
	addrs := e.globalAddrs(t, "v6b-test")
	if flags, ok := addrs[gw]; !ok || flags&unix.IFA_F_NODAD == 0 || len(addrs) != 1 {
		t.Errorf("addresses %v, want only %s with nodad", addrs, gw)
	}

	e.ensureAgain(t, func() error { return e.k.EnsureBridge(spec) }, func() any {
		return []any{e.state(t, "v6b-test"), e.globalAddrs(t, "v6b-test")}
	})
}

func TestPrivilegedEnsureBridgeRepairsReused(t *testing.T) {
	e := newEnv(t)
	attrs := netlink.NewLinkAttrs()
	attrs.Name = "v6b-old"
	if err := e.h.LinkAdd(&netlink.Bridge{LinkAttrs: attrs}); err != nil {
		t.Fatal(err)
	}
	br := e.link(t, "v6b-old")
	e.addAddr(t, br, "2001:db8:9::1/64") // a stale gateway
	e.addAddr(t, br, "fe80::99/64")

	gw := netip.MustParsePrefix("fd00:1::1/64")
	if err := e.k.EnsureBridge(netspec.BridgeSpec{Name: "v6b-old", Gateway: gw}); err != nil {
		t.Fatal(err)
	}
	addrs := e.globalAddrs(t, "v6b-old")
	if _, ok := addrs[gw]; !ok || len(addrs) != 1 {
		t.Errorf("global addresses %v, want only %s", addrs, gw)
	}
	if !e.state(t, "v6b-old").Up {
		t.Error("reused bridge not set up")
	}
	// Link-local addresses are not ours to remove.
	all, err := e.h.AddrList(e.link(t, "v6b-old"), netlink.FAMILY_V6)
	if err != nil {
		t.Fatal(err)
	}
	var ll bool
	for _, a := range all {
		ll = ll || a.IP.Equal(net.ParseIP("fe80::99"))
	}
	if !ll {
		t.Errorf("link-local fe80::99 was removed: %v", all)
	}
}

func TestPrivilegedEnsureBridgeRefusesOtherType(t *testing.T) {
	e := newEnv(t)
	e.other(t, "v6b-taken")
	err := e.k.EnsureBridge(netspec.BridgeSpec{Name: "v6b-taken", Gateway: netip.MustParsePrefix("2001:db8:1::1/64")})
	if err == nil || !strings.Contains(err.Error(), `"v6b-taken"`) || !strings.Contains(err.Error(), "not a bridge") {
		t.Fatalf("err = %v, want one naming v6b-taken as not a bridge", err)
	}
	if got := e.state(t, "v6b-taken").Type; got != "ifb" {
		t.Errorf("the ifb became a %s", got)
	}
	if err := e.k.DeleteBridge("v6b-taken"); err == nil {
		t.Error("DeleteBridge deleted an ifb")
	}
	if ok, _ := e.k.LinkExists("v6b-taken"); !ok {
		t.Error("the ifb is gone")
	}
}

func TestPrivilegedEnsureVeth(t *testing.T) {
	e := newEnv(t)
	if err := e.k.EnsureBridge(netspec.BridgeSpec{Name: "v6b-v", Gateway: netip.MustParsePrefix("2001:db8:1::1/64")}); err != nil {
		t.Fatal(err)
	}
	brMAC := e.state(t, "v6b-v").MAC
	mac := net.HardwareAddr{0x02, 0x42, 0x00, 0x00, 0x00, 0x01} // lower than any random bridge MAC
	spec := netspec.VethSpec{HostName: "v6h1", PeerName: "v6c1", Bridge: "v6b-v", MTU: 1380, MAC: mac, Isolated: true}
	if err := e.k.EnsureVeth(spec); err != nil {
		t.Fatal(err)
	}

	brIdx := e.link(t, "v6b-v").Attrs().Index
	host, peer := e.state(t, "v6h1"), e.state(t, "v6c1")
	wantHost := linkState{Type: "veth", MTU: 1380, MAC: host.MAC, Up: true, Master: brIdx, Isolated: true, Hairpin: true}
	if diff := cmp.Diff(wantHost, host); diff != "" {
		t.Errorf("host end (-want +got):\n%s", diff)
	}
	wantPeer := linkState{Type: "veth", MTU: 1380, MAC: mac.String()}
	if diff := cmp.Diff(wantPeer, peer); diff != "" {
		t.Errorf("peer end (-want +got):\n%s", diff)
	}
	if got := e.state(t, "v6b-v").MAC; got != brMAC {
		t.Errorf("bridge MAC changed from %s to %s when a port joined", brMAC, got)
	}

	e.ensureAgain(t, func() error { return e.k.EnsureVeth(spec) }, func() any { return e.state(t, "v6h1") })

	// Another peer name: another endpoint's pair, refused and kept.
	spec.PeerName = "v6c2"
	if err := e.k.EnsureVeth(spec); err == nil {
		t.Fatal("EnsureVeth with another peer name succeeded")
	}
	if ok, _ := e.k.LinkExists("v6c1"); !ok {
		t.Error("peer v6c1 was deleted")
	}

	if err := e.k.DeleteVeth("v6h1"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"v6h1", "v6c1"} {
		if ok, err := e.k.LinkExists(n); err != nil || ok {
			t.Errorf("LinkExists(%s) = %v, %v after delete; want false", n, ok, err)
		}
	}
}

func TestPrivilegedEnsureVethReplacesOtherType(t *testing.T) {
	e := newEnv(t)
	if err := e.k.EnsureBridge(netspec.BridgeSpec{Name: "v6b-v", Gateway: netip.MustParsePrefix("2001:db8:1::1/64")}); err != nil {
		t.Fatal(err)
	}
	e.other(t, "v6h1")
	if err := e.k.EnsureVeth(netspec.VethSpec{HostName: "v6h1", PeerName: "v6c1", Bridge: "v6b-v"}); err != nil {
		t.Fatal(err)
	}
	if got := e.state(t, "v6h1").Type; got != "veth" {
		t.Errorf("v6h1 is a %s, want veth", got)
	}
}

// TestPrivilegedEnsureVethKeepsOthersVeth: a veth of the same host name but
// another pair (a colliding endpoint's, its peer here or in a container) is
// refused, never deleted.
func TestPrivilegedEnsureVethKeepsOthersVeth(t *testing.T) {
	e := newEnv(t)
	if err := e.k.EnsureBridge(netspec.BridgeSpec{Name: "v6b-v", Gateway: netip.MustParsePrefix("2001:db8:1::1/64")}); err != nil {
		t.Fatal(err)
	}
	if err := e.k.EnsureVeth(netspec.VethSpec{HostName: "v6h1", PeerName: "v6c1", Bridge: "v6b-v"}); err != nil {
		t.Fatal(err)
	}
	before := e.link(t, "v6h1").Attrs().Index
	if err := e.k.EnsureVeth(netspec.VethSpec{HostName: "v6h1", PeerName: "v6c9", Bridge: "v6b-v"}); err == nil {
		t.Error("EnsureVeth over another pair's host end succeeded")
	}
	// The peer moves into a container, as the engine does on Join.
	ctr := nettest.NewNS(t)
	if err := e.h.LinkSetNsFd(e.link(t, "v6c1"), int(ctr)); err != nil {
		t.Fatal(err)
	}
	if err := e.k.EnsureVeth(netspec.VethSpec{HostName: "v6h1", PeerName: "v6c1", Bridge: "v6b-v"}); err == nil {
		t.Error("EnsureVeth over a pair whose peer is in a container succeeded")
	}
	if got := e.link(t, "v6h1").Attrs().Index; got != before {
		t.Errorf("v6h1 was replaced (index %d, was %d)", got, before)
	}
}

func TestPrivilegedEnsureVethFailureLeavesNothing(t *testing.T) {
	e := newEnv(t)
	if err := e.k.EnsureVeth(netspec.VethSpec{HostName: "v6h1", PeerName: "v6c1", Bridge: "v6b-none"}); err == nil {
		t.Error("EnsureVeth onto a missing bridge succeeded")
	}
	if err := e.k.EnsureBridge(netspec.BridgeSpec{Name: "v6b-v", Gateway: netip.MustParsePrefix("2001:db8:1::1/64")}); err != nil {
		t.Fatal(err)
	}
	// A multicast MAC is refused by the kernel.
	bad := net.HardwareAddr{0x01, 0, 0x5e, 0, 0, 1}
	if err := e.k.EnsureVeth(netspec.VethSpec{HostName: "v6h1", PeerName: "v6c1", Bridge: "v6b-v", MAC: bad}); err == nil {
		t.Error("EnsureVeth with a multicast MAC succeeded")
	}
	owned, err := e.k.OwnedLinks()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"v6h1", "v6c1"} {
		if ok, _ := e.k.LinkExists(n); ok {
			t.Errorf("%s left behind (owned links %v)", n, owned)
		}
	}
}

func TestPrivilegedIsolatedBridge(t *testing.T) {
	e := newEnv(t)
	spec := netspec.BridgeSpec{Name: "v6b-i", Gateway: netip.MustParsePrefix("2001:db8:1::1/64"), Isolated: true}
	if err := e.k.EnsureBridge(spec); err != nil {
		t.Fatal(err)
	}
	// The flag recorded on the bridge reaches ports whose spec lacks it.
	if err := e.k.EnsureVeth(netspec.VethSpec{HostName: "v6h1", PeerName: "v6c1", Bridge: "v6b-i"}); err != nil {
		t.Fatal(err)
	}
	if !e.state(t, "v6h1").Isolated {
		t.Error("port of an isolated bridge is not isolated")
	}
	// Turning isolation off reaches existing ports.
	spec.Isolated = false
	if err := e.k.EnsureBridge(spec); err != nil {
		t.Fatal(err)
	}
	if e.state(t, "v6h1").Isolated {
		t.Error("port still isolated after the bridge was ensured without isolation")
	}
}

func TestPrivilegedDeleteMissing(t *testing.T) {
	e := newEnv(t)
	if err := e.k.DeleteBridge("v6b-none"); err != nil {
		t.Errorf("DeleteBridge(missing) = %v", err)
	}
	if err := e.k.DeleteVeth("v6hnone"); err != nil {
		t.Errorf("DeleteVeth(missing) = %v", err)
	}
	if err := e.k.EnsureBridge(netspec.BridgeSpec{Name: "v6b-d", Gateway: netip.MustParsePrefix("2001:db8:1::1/64")}); err != nil {
		t.Fatal(err)
	}
	if err := e.k.DeleteBridge("v6b-d"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := e.k.LinkExists("v6b-d"); ok {
		t.Error("bridge still exists after DeleteBridge")
	}
}

func TestPrivilegedOwnedLinks(t *testing.T) {
	e := newEnv(t)
	gw := netip.MustParsePrefix("2001:db8:1::1/64")
	for _, b := range []string{"v6b-b", "v6b-a"} {
		if err := e.k.EnsureBridge(netspec.BridgeSpec{Name: b, Gateway: gw}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.k.EnsureVeth(netspec.VethSpec{HostName: "v6h1", PeerName: "v6c1", Bridge: "v6b-a"}); err != nil {
		t.Fatal(err)
	}
	e.other(t, "v6b-ifb")
	e.other(t, "v6hifb")
	attrs := netlink.NewLinkAttrs()
	attrs.Name = "br0"
	if err := e.h.LinkAdd(&netlink.Bridge{LinkAttrs: attrs}); err != nil {
		t.Fatal(err)
	}
	attrs = netlink.NewLinkAttrs()
	attrs.Name = "veth0"
	if err := e.h.LinkAdd(&netlink.Veth{LinkAttrs: attrs, PeerName: "veth1"}); err != nil {
		t.Fatal(err)
	}

	owned, err := e.k.OwnedLinks()
	if err != nil {
		t.Fatal(err)
	}
	want := []netspec.OwnedLink{{Name: "v6b-a", Bridge: true}, {Name: "v6b-b", Bridge: true}, {Name: "v6h1"}}
	if diff := cmp.Diff(want, owned); diff != "" {
		t.Errorf("owned links (-want +got):\n%s", diff)
	}
}

// A Kernel with a mark puts it on the bridges and host veths it makes and
// on those it ensures (made before marks, or by another instance's
// Kernel), and OwnedLinks reads it back.
func TestPrivilegedMarks(t *testing.T) {
	e := newEnv(t)
	gw := netip.MustParsePrefix("2001:db8:1::1/64")
	if err := e.k.EnsureBridge(netspec.BridgeSpec{Name: "v6b-old", Gateway: gw}); err != nil {
		t.Fatal(err)
	}
	mark := instance.Mark("0123456789abcdef", "/var/lib/v6bridge")
	k, err := New(Config{NetNS: e.ns, ProcSys: e.k.procSys, Mark: mark})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	for _, b := range []string{"v6b-new", "v6b-old"} {
		if err := k.EnsureBridge(netspec.BridgeSpec{Name: b, Gateway: gw}); err != nil {
			t.Fatal(err)
		}
	}
	if err := k.EnsureVeth(netspec.VethSpec{HostName: "v6h1", PeerName: "v6c1", Bridge: "v6b-new"}); err != nil {
		t.Fatal(err)
	}
	owned, err := k.OwnedLinks()
	if err != nil {
		t.Fatal(err)
	}
	var want []netspec.OwnedLink
	for _, n := range []string{"v6b-new", "v6b-old", "v6h1"} {
		want = append(want, netspec.OwnedLink{Name: n, Bridge: n != "v6h1", Instance: "0123456789abcdef", StateDir: "/var/lib/v6bridge"})
	}
	if diff := cmp.Diff(want, owned); diff != "" {
		t.Errorf("owned links (-want +got):\n%s", diff)
	}
}

func TestPrivilegedPrepareHost(t *testing.T) {
	e := newEnv(t)
	e.other(t, "up0")
	e.other(t, "up1")
	e.setSysctl(t, "net/ipv6/conf/up0/accept_ra", "1")
	e.setSysctl(t, "net/ipv6/conf/up1/accept_ra", "0")

	changed, err := e.k.PrepareHost([]string{"up0", "up1"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"net.ipv6.conf.up0.accept_ra: 1 -> 2", // before forwarding
		"net.ipv6.conf.all.forwarding: 0 -> 1",
	}
	if diff := cmp.Diff(want, changed); diff != "" {
		t.Errorf("changes (-want +got):\n%s", diff)
	}
	for key, want := range map[string]string{
		"net/ipv6/conf/up0/accept_ra":      "2",
		"net/ipv6/conf/up1/accept_ra":      "0",
		"net/ipv6/conf/all/forwarding":     "1",
		"net/ipv6/conf/default/forwarding": "1",
		"net/ipv6/conf/up0/forwarding":     "1",
	} {
		if got := e.sysctl(t, key); got != want {
			t.Errorf("%s = %s, want %s", key, got, want)
		}
	}

	changed, err = e.k.PrepareHost([]string{"up0", "up1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(changed) != 0 {
		t.Errorf("second call changed %v", changed)
	}

	if _, err := e.k.PrepareHost([]string{"nosuch0"}); err == nil || !strings.Contains(err.Error(), "nosuch0") {
		t.Errorf("missing uplink: err = %v, want one naming nosuch0", err)
	}
}

func TestPrivilegedPrepareHostDefaultOnly(t *testing.T) {
	e := newEnv(t)
	e.setSysctl(t, "net/ipv6/conf/all/forwarding", "1")
	e.setSysctl(t, "net/ipv6/conf/default/forwarding", "0")
	changed, err := e.k.PrepareHost(nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"net.ipv6.conf.default.forwarding: 0 -> 1"}, changed); diff != "" {
		t.Errorf("changes (-want +got):\n%s", diff)
	}
}

func TestPrivilegedHostAddrsAndUplink(t *testing.T) {
	e := newEnv(t)
	if _, err := e.k.DefaultRouteUplink(); !errors.Is(err, ErrNoDefaultRoute) {
		t.Errorf("DefaultRouteUplink without a route: err = %v, want ErrNoDefaultRoute", err)
	}
	up0 := e.other(t, "up0", "2001:db8:5::1/64", "fd00:5::1/64", "2001:db8:7::1/128", "fe80::5/64")
	up1 := e.other(t, "up1", "2001:db8:6::1/64")
	if err := e.k.EnsureBridge(netspec.BridgeSpec{Name: "v6b-x", Gateway: netip.MustParsePrefix("2001:db8:8::1/64")}); err != nil {
		t.Fatal(err)
	}

	got, err := e.k.HostAddrs()
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Addr{
		netip.MustParseAddr("2001:db8:5::1"),
		netip.MustParseAddr("2001:db8:6::1"),
		netip.MustParseAddr("2001:db8:7::1"),
		netip.MustParseAddr("fd00:5::1"),
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("HostAddrs (-want +got):\n%s", diff)
	}

	prefixes, err := e.k.UplinkPrefixes("up0")
	if err != nil {
		t.Fatal(err)
	}
	wantP := []netip.Prefix{netip.MustParsePrefix("2001:db8:5::/64"), netip.MustParsePrefix("fd00:5::/64")}
	if diff := cmp.Diff(wantP, prefixes, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("UplinkPrefixes (-want +got):\n%s", diff)
	}

	for _, r := range []*netlink.Route{
		{LinkIndex: up1.Attrs().Index, Gw: net.ParseIP("2001:db8:6::ff"), Priority: 200},
		{LinkIndex: up0.Attrs().Index, Gw: net.ParseIP("2001:db8:5::ff"), Priority: 100},
	} {
		if err := e.h.RouteAdd(r); err != nil {
			t.Fatalf("add default route: %v", err)
		}
	}
	uplink, err := e.k.DefaultRouteUplink()
	if err != nil {
		t.Fatal(err)
	}
	if uplink != "up0" {
		t.Errorf("DefaultRouteUplink = %q, want up0 (lowest metric)", uplink)
	}

	if gws, err := e.k.UplinkGateways("up0"); err != nil || len(gws) != 1 || gws[0] != netip.MustParseAddr("2001:db8:5::ff") {
		t.Errorf("UplinkGateways(up0) = %v, %v; want [2001:db8:5::ff]", gws, err)
	}
	if _, err := e.k.UplinkGateways("nosuch0"); err == nil {
		t.Error("UplinkGateways of a missing link succeeded")
	}

	if mtu, err := e.k.LinkMTU("up0"); err != nil || mtu != up0.Attrs().MTU {
		t.Errorf("LinkMTU(up0) = %d, %v; want %d", mtu, err, up0.Attrs().MTU)
	}
}

// TestPrivilegedGatewayReachable plays the engine: it moves the peer into
// a "container" namespace, addresses it from the bridge's subnet and pings
// the gateway at once, with no wait for the bridge to settle.
func TestPrivilegedGatewayReachable(t *testing.T) {
	e := newEnv(t)
	gw := netip.MustParsePrefix("fd00:db8:1::1/64")
	if err := e.k.EnsureBridge(netspec.BridgeSpec{Name: "v6b-dp", Gateway: gw}); err != nil {
		t.Fatal(err)
	}
	if err := e.k.EnsureVeth(netspec.VethSpec{HostName: "v6hdp", PeerName: "v6cdp", Bridge: "v6b-dp"}); err != nil {
		t.Fatal(err)
	}

	conn := e.container(t, "v6cdp", "eth0", netip.MustParsePrefix("fd00:db8:1::2/64"))
	if err := ping(conn.PacketConn, gw.Addr(), 2*time.Second); err != nil {
		t.Fatalf("ping gateway %s from the container: %v", gw.Addr(), err)
	}
}

// TestPrivilegedLinkLocalGateway: a bridge with gateway fe80::1/64 holds
// no global address, routes its subnet, survives a second call without a
// change and gets a deleted route back; a container with only a default
// route via fe80::1 reaches a host address off the bridge, whose reply
// finds it through that route.
func TestPrivilegedLinkLocalGateway(t *testing.T) {
	e := newEnv(t)
	subnet := netip.MustParsePrefix("2001:db8:1:1::/112")
	spec := netspec.BridgeSpec{Name: "v6b-ll", Gateway: netip.MustParsePrefix("fe80::1/64"), Subnet: subnet}
	e.other(t, "up0", "2001:db8:ff::1/64") // a host address that is not on the bridge
	if err := e.k.EnsureBridge(spec); err != nil {
		t.Fatal(err)
	}
	if addrs := e.globalAddrs(t, "v6b-ll"); len(addrs) != 0 {
		t.Errorf("global addresses %v, want none", addrs)
	}
	ll := func() (flags int, ok bool) {
		all, err := e.h.AddrList(e.link(t, "v6b-ll"), netlink.FAMILY_V6)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range all {
			if p, _ := addrPrefix(a); p == spec.Gateway {
				return a.Flags, true
			}
		}
		return 0, false
	}
	if flags, ok := ll(); !ok || flags&unix.IFA_F_NODAD == 0 {
		t.Errorf("fe80::1/64 on the bridge: present %v, flags %#x; want present with nodad", ok, flags)
	}
	routed := func() bool {
		rs, err := e.h.RouteListFiltered(netlink.FAMILY_V6, &netlink.Route{LinkIndex: e.link(t, "v6b-ll").Attrs().Index}, netlink.RT_FILTER_OIF)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if r.Dst != nil && r.Dst.String() == subnet.String() && r.Gw == nil {
				return true
			}
		}
		return false
	}
	if !routed() {
		t.Fatalf("no route %s dev v6b-ll", subnet)
	}
	e.ensureAgain(t, func() error { return e.k.EnsureBridge(spec) }, nil)
	if err := e.h.RouteDel(&netlink.Route{LinkIndex: e.link(t, "v6b-ll").Attrs().Index, Dst: ipNet(subnet)}); err != nil {
		t.Fatal(err)
	}
	if err := e.k.EnsureBridge(spec); err != nil {
		t.Fatal(err)
	}
	if !routed() {
		t.Fatalf("deleted route %s dev v6b-ll not repaired", subnet)
	}

	// A container: its address in the subnet, default via fe80::1.
	if err := e.k.EnsureVeth(netspec.VethSpec{HostName: "v6hll", PeerName: "v6cll", Bridge: "v6b-ll"}); err != nil {
		t.Fatal(err)
	}
	conn := e.container(t, "v6cll", "", netip.MustParsePrefix("2001:db8:1:1::1/112")) // the subnet's first address is free
	if err := conn.h.RouteAdd(&netlink.Route{LinkIndex: conn.link.Attrs().Index, Dst: ipNet(netip.MustParsePrefix("::/0")), Gw: net.ParseIP("fe80::1")}); err != nil {
		t.Fatal(err)
	}
	if err := ping(conn.PacketConn, netip.MustParseAddr("2001:db8:ff::1"), 3*time.Second); err != nil {
		t.Fatalf("ping a host address via fe80::1 from the container: %v", err)
	}
}

// ctrConn is an ICMPv6 socket in a "container" namespace, with the
// namespace's handle and the container's link.
type ctrConn struct {
	*icmp.PacketConn
	h    *netlink.Handle
	link netlink.Link
}

// container plays the engine: it moves the veth peer into a new namespace
// (renamed to ifname there unless empty), gives it addr without DAD, sets
// it up and opens an ICMPv6 socket on addr there.
func (e *env) container(t *testing.T, peer, ifname string, addr netip.Prefix) ctrConn {
	t.Helper()
	ctr := nettest.NewNS(t)
	if err := e.h.LinkSetNsFd(e.link(t, peer), int(ctr)); err != nil {
		t.Fatal(err)
	}
	c := ctrConn{h: nettest.Handle(t, ctr)}
	l, err := c.h.LinkByName(peer)
	if err != nil {
		t.Fatal(err)
	}
	if ifname != "" {
		if err := c.h.LinkSetName(l, ifname); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.h.AddrAdd(l, &netlink.Addr{IPNet: ipNet(addr), Flags: unix.IFA_F_NODAD}); err != nil {
		t.Fatal(err)
	}
	if err := c.h.LinkSetUp(l); err != nil {
		t.Fatal(err)
	}
	c.link = l
	if err := nettest.Do(t, ctr, func() error {
		var err error
		c.PacketConn, err = icmp.ListenPacket("ip6:ipv6-icmp", addr.Addr().String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// ping sends one echo request to dst and waits for its reply.
func ping(conn *icmp.PacketConn, dst netip.Addr, timeout time.Duration) error {
	const id, seq = 0x6b6, 1
	msg := icmp.Message{
		Type: ipv6.ICMPTypeEchoRequest,
		Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("v6bridge")},
	}
	b, err := msg.Marshal(nil) // the kernel fills in the checksum
	if err != nil {
		return err
	}
	to := &net.IPAddr{IP: dst.AsSlice()}
	if _, err := conn.WriteTo(b, to); err != nil {
		return err
	}
	if err := conn.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	buf := make([]byte, 1500)
	for {
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			return err
		}
		m, err := icmp.ParseMessage(58, buf[:n])
		if err != nil || m.Type != ipv6.ICMPTypeEchoReply {
			continue // NDP and other ICMPv6 seen by the raw socket
		}
		if echo, ok := m.Body.(*icmp.Echo); ok && echo.ID == id && echo.Seq == seq &&
			from.(*net.IPAddr).IP.Equal(to.IP) {
			return nil
		}
	}
}

// TestPrivilegedCurrentNamespace checks the zero Config: the Kernel acts
// in the namespace of the thread that made it (here a throwaway one,
// entered with nettest.Do), sysctls included.
func TestPrivilegedCurrentNamespace(t *testing.T) {
	ns := nettest.NewNS(t)
	log, _ := logtest.NewNullLogger()
	var changed []string
	err := nettest.Do(t, ns, func() error {
		k, err := New(Config{Log: log})
		if err != nil {
			return err
		}
		defer k.Close()
		if err := k.EnsureBridge(netspec.BridgeSpec{Name: "v6b-cur", Gateway: netip.MustParsePrefix("2001:db8:1::1/64")}); err != nil {
			return err
		}
		changed, err = k.PrepareHost(nil)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nettest.Handle(t, ns).LinkByName("v6b-cur"); err != nil {
		t.Errorf("bridge not in the namespace: %v", err)
	}
	if diff := cmp.Diff([]string{"net.ipv6.conf.all.forwarding: 0 -> 1"}, changed); diff != "" {
		t.Errorf("changes (-want +got):\n%s", diff)
	}
}
