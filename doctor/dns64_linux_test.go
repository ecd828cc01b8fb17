package doctor

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/net/dns/dnsmessage"
	"golang.org/x/sys/unix"

	"github.com/v6bridge/v6bridge/internal/nettest"
)

// dns64Server is a tiny DNS responder: AAAA queries for ipv4only.arpa are
// answered with the addresses answer returns (none: NOERROR, no data).
func dns64Server(t *testing.T, pc net.PacketConn, answer func() []netip.Addr) {
	t.Helper()
	nettest.ServePackets(t, pc, func(query []byte, from net.Addr) {
		var p dnsmessage.Parser
		h, err := p.Start(query)
		if err != nil {
			return
		}
		q, err := p.Question()
		if err != nil {
			return
		}
		b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionAvailable: true})
		b.EnableCompression()
		b.StartQuestions()
		b.Question(q)
		b.StartAnswers()
		if q.Type == dnsmessage.TypeAAAA && strings.EqualFold(q.Name.String(), "ipv4only.arpa.") {
			for _, a := range answer() {
				b.AAAAResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}, dnsmessage.AAAAResource{AAAA: a.As16()})
			}
		}
		msg, err := b.Finish()
		if err == nil {
			pc.WriteTo(msg, from)
		}
	})
}

// TestPrivilegedDNS64 simulates the provider's side in a namespace: a DNS64
// resolver (or a plain one) and a NAT64 that carries 192.0.2.10:8080.
func TestPrivilegedDNS64(t *testing.T) {
	host := nettest.NewNS(t)
	inet := nettest.NewNS(t)
	nettest.Connect(t, host, "eth0", netip.MustParsePrefix("2001:db8:1234:a1::1/64"),
		inet, "eth0", netip.MustParsePrefix("2001:db8:1234:a1::fffe/64"))
	hh, hi := nettest.Handle(t, host), nettest.Handle(t, inet)
	eth0, _ := hh.LinkByName("eth0")
	if err := hh.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Dst: nettest.PrefixNet(netip.MustParsePrefix("::/0")),
		Gw: net.ParseIP("2001:db8:1234:a1::fffe")}); err != nil {
		t.Fatal(err)
	}
	// The NAT64's side of 192.0.2.10: its address behind 64:ff9b::/96.
	lo, _ := hi.LinkByName("lo")
	hi.LinkSetUp(lo)
	if err := hi.AddrAdd(lo, &netlink.Addr{IPNet: nettest.PrefixNet(netip.MustParsePrefix("64:ff9b::c000:20a/128")), Flags: unix.IFA_F_NODAD}); err != nil {
		t.Fatal(err)
	}
	ieth0, _ := hi.LinkByName("eth0")
	hi.AddrAdd(ieth0, &netlink.Addr{IPNet: nettest.PrefixNet(netip.MustParsePrefix("2001:db8:1234:a1::54/64")), Flags: unix.IFA_F_NODAD})

	var synth atomic.Value
	synth.Store([]netip.Addr{})
	if err := nettest.Do(t, inet, func() error {
		pc, err := net.ListenPacket("udp", "[2001:db8:1234:a1::fffe]:53")
		if err != nil {
			return err
		}
		dns64Server(t, pc, func() []netip.Addr { return synth.Load().([]netip.Addr) })
		l, err := net.Listen("tcp", "[64:ff9b::c000:20a]:8080")
		if err != nil {
			return err
		}
		nettest.ServeConns(t, l, func(c net.Conn) { c.Close() })
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	resolv := func(ns string) string {
		p := filepath.Join(t.TempDir(), "resolv.conf")
		os.WriteFile(p, []byte("# test\nsearch example.net\nnameserver "+ns+"\n"), 0o644)
		return p
	}
	good := resolv("2001:db8:1234:a1::fffe")
	ask := func(conf, probe string) (DNS64, Status) {
		var d DNS64
		nettest.Do(t, host, func() error { d = AskDNS64(context.Background(), conf, probe); return nil })
		f := healthy()
		f.DNS64 = d
		return d, verdicts(Evaluate(f))["dns64"]
	}
	wkp := []netip.Addr{netip.MustParseAddr("64:ff9b::c000:aa"), netip.MustParseAddr("64:ff9b::c000:ab")}

	t.Run("plain resolver, no DNS64", func(t *testing.T) {
		d, s := ask(good, "")
		if !d.NoAAAA || s != Warn || d.Resolver != "2001:db8:1234:a1::fffe" {
			t.Errorf("%+v: %s, want no AAAA and warn", d, s)
		}
	})
	t.Run("DNS64 with a working NAT64", func(t *testing.T) {
		synth.Store(wkp)
		d, s := ask(good, "192.0.2.10:8080")
		if s != OK || len(d.Prefixes) != 1 || d.Prefixes[0].String() != "64:ff9b::/96" || d.Via != "eth0 via 2001:db8:1234:a1::fffe" {
			t.Errorf("%+v: %s, want ok with 64:ff9b::/96 via eth0", d, s)
		}
	})
	t.Run("DNS64 whose NAT64 does not carry the probe", func(t *testing.T) {
		synth.Store(wkp)
		d, s := ask(good, "192.0.2.11:8080")
		if s != Fail || d.ProbeErr == "" {
			t.Errorf("%+v: %s, want fail", d, s)
		}
	})
	t.Run("DNS64 with a prefix the host has no route to", func(t *testing.T) {
		synth.Store([]netip.Addr{netip.MustParseAddr("2001:db8:64::c000:aa")})
		if err := hh.RouteAdd(&netlink.Route{Dst: nettest.PrefixNet(netip.MustParsePrefix("2001:db8:64::/96")), Type: unix.RTN_UNREACHABLE}); err != nil {
			t.Fatal(err)
		}
		d, s := ask(good, "")
		if s != Fail || d.RouteErr == "" || d.Prefixes[0].String() != "2001:db8:64::/96" {
			t.Errorf("%+v: %s, want fail for the missing route", d, s)
		}
	})
	t.Run("resolver does not answer", func(t *testing.T) {
		d, s := ask(resolv("2001:db8:1234:a1::54"), "")
		if s != Warn || d.Err == "" || d.NoAAAA {
			t.Errorf("%+v: %s, want warn with an error", d, s)
		}
	})
	t.Run("no nameserver", func(t *testing.T) {
		d, _ := ask(filepath.Join(t.TempDir(), "none"), "")
		if d.Err == "" {
			t.Errorf("%+v, want an error", d)
		}
	})
}
