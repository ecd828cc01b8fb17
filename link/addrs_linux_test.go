package link

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/v6bridge/v6bridge/internal/nettest"
)

// TestPrivilegedAddrDumper: the kernel-filtered dump returns the same
// addresses, scopes and flags of a link as netlink's AddrList, among many
// other links' addresses, and its fallback (no strict checking) too.
func TestPrivilegedAddrDumper(t *testing.T) {
	ns := nettest.NewNS(t)
	h := nettest.Handle(t, ns)
	var links []netlink.Link
	for i := range 20 {
		attrs := netlink.NewLinkAttrs()
		attrs.Name = fmt.Sprintf("d%d", i)
		d := &netlink.Veth{LinkAttrs: attrs, PeerName: fmt.Sprintf("p%d", i)}
		if err := h.LinkAdd(d); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{d.Name, d.PeerName} {
			if err := h.LinkSetUp(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Name: name}}); err != nil {
				t.Fatal(err)
			}
		}
		l, err := h.LinkByName(d.Name)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range []string{fmt.Sprintf("2001:db8:%x::1/64", i), fmt.Sprintf("fd00:%x::1/112", i)} {
			addr := &netlink.Addr{IPNet: nettest.PrefixNet(netip.MustParsePrefix(a)), Flags: unix.IFA_F_NODAD}
			if err := h.AddrAdd(l, addr); err != nil {
				t.Fatal(err)
			}
		}
		links = append(links, l)
	}
	type row struct {
		addr         string
		scope, flags int
	}
	rows := func(as []netlink.Addr) []row {
		var out []row
		for _, a := range as {
			// The kernel's link-local address may finish DAD between
			// two dumps.
			out = append(out, row{a.IPNet.String(), a.Scope, a.Flags &^ unix.IFA_F_TENTATIVE})
		}
		slices.SortFunc(out, func(a, b row) int { return strings.Compare(a.addr, b.addr) })
		return out
	}
	d := NewAddrDumper(ns, h)
	defer d.Close()
	if d.sock == nil {
		t.Fatal("the kernel refused strict checking (Linux >= 4.20 has it)")
	}
	fallback := &AddrDumper{h: h}
	for _, l := range []netlink.Link{links[0], links[7], links[19]} {
		want, err := h.AddrList(l, netlink.FAMILY_V6)
		if err != nil {
			t.Fatal(err)
		}
		if len(want) < 3 { // two global and the kernel's link-local
			t.Fatalf("%s: AddrList %v", l.Attrs().Name, want)
		}
		for name, dd := range map[string]*AddrDumper{"filtered": d, "fallback": fallback} {
			got, err := dd.List(l, netlink.FAMILY_V6)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(rows(got), rows(want)) {
				t.Errorf("%s %s: %v, want %v", name, l.Attrs().Name, rows(got), rows(want))
			}
		}
	}
}
