package ndpproto

import (
	"net"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	mndp "github.com/mdlayher/ndp"

	"github.com/v6bridge/v6bridge/ndp/internal/ndptest"
)

var (
	uplinkMAC  = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
	hostGlobal = netip.MustParseAddr("2001:db8:1234:a1::1")
	other      = netip.MustParseAddr("2001:db8:1234:a1:1::99")
)

func ownsLive(a netip.Addr) bool { return a == ndptest.LiveAddr }

func TestDecide(t *testing.T) {
	cfg := DecideConfig{LinkAddr: uplinkMAC, LinkLocal: ndptest.HostLL, Global: hostGlobal}
	multicast := Solicitation{
		Source: ndptest.RouterAddr, Destination: ndptest.SNM(ndptest.LiveAddr), HopLimit: 255, Target: ndptest.LiveAddr,
		SourceLinkAddr: ndptest.RouterMAC, LinkSource: ndptest.RouterMAC,
	}
	with := func(f func(*Solicitation)) Solicitation {
		s := multicast
		f(&s)
		return s
	}
	withCfg := func(f func(*DecideConfig)) DecideConfig {
		c := cfg
		f(&c)
		return c
	}
	solicited := Answer{
		Source: ndptest.HostLL, Destination: ndptest.RouterAddr, LinkDestination: ndptest.RouterMAC,
		Advertisement: mndp.NeighborAdvertisement{Solicited: true, Override: true, TargetAddress: ndptest.LiveAddr, Options: ndptest.TLLA(uplinkMAC)},
	}
	withAnswer := func(f func(*Answer)) Answer {
		a := solicited
		f(&a)
		return a
	}

	tests := []struct {
		name   string
		ns     Solicitation
		cfg    DecideConfig
		want   Answer
		ok     bool
		reason string
	}{
		{name: "multicast", ns: multicast, cfg: cfg, want: solicited, ok: true},
		{
			name: "unicast reachability probe",
			ns:   with(func(s *Solicitation) { s.Destination = ndptest.LiveAddr }),
			cfg:  cfg, want: solicited, ok: true,
		},
		{
			name: "unicast without option answers the frame source",
			ns: with(func(s *Solicitation) {
				s.Destination, s.SourceLinkAddr, s.LinkSource = ndptest.LiveAddr, nil, net.HardwareAddr{2, 0, 0, 0, 0, 0x77}
			}),
			cfg: cfg, ok: true,
			want: withAnswer(func(a *Answer) { a.LinkDestination = net.HardwareAddr{2, 0, 0, 0, 0, 0x77} }),
		},
		{
			name: "option wins over frame source",
			ns:   with(func(s *Solicitation) { s.LinkSource = net.HardwareAddr{2, 0, 0, 0, 0, 0x77} }),
			cfg:  cfg, want: solicited, ok: true,
		},
		{
			name: "link-local solicitor",
			ns:   with(func(s *Solicitation) { s.Source = ndptest.RouterLL.WithZone("eth0") }),
			cfg:  cfg, ok: true,
			want: withAnswer(func(a *Answer) { a.Destination = ndptest.RouterLL }),
		},
		{
			name: "dad probe is defended to all nodes",
			ns: with(func(s *Solicitation) {
				s.Source, s.SourceLinkAddr = netip.IPv6Unspecified(), nil
			}),
			cfg: cfg, ok: true,
			want: withAnswer(func(a *Answer) {
				a.Destination = AllNodes
				a.LinkDestination = net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}
				a.Advertisement.Solicited = false
			}),
		},
		{
			name: "router flag",
			ns:   multicast, cfg: withCfg(func(c *DecideConfig) { c.Router = true }), ok: true,
			want: withAnswer(func(a *Answer) { a.Advertisement.Router = true }),
		},
		{
			name: "source target",
			ns:   multicast, cfg: withCfg(func(c *DecideConfig) { c.Source = SourceTarget }), ok: true,
			want: withAnswer(func(a *Answer) { a.Source = ndptest.LiveAddr }),
		},
		{
			name: "source global",
			ns:   multicast, cfg: withCfg(func(c *DecideConfig) { c.Source = SourceGlobal }), ok: true,
			want: withAnswer(func(a *Answer) { a.Source = hostGlobal }),
		},
		{
			name: "source global missing falls back to link-local",
			ns:   multicast, cfg: withCfg(func(c *DecideConfig) { c.Source, c.Global = SourceGlobal, netip.Addr{} }), ok: true,
			want: solicited,
		},
		{
			name: "no link-local falls back to target",
			ns:   multicast, cfg: withCfg(func(c *DecideConfig) { c.LinkLocal = netip.Addr{} }), ok: true,
			want: withAnswer(func(a *Answer) { a.Source = ndptest.LiveAddr }),
		},
		{
			name: "hop limit 254 (forwarded)",
			ns:   with(func(s *Solicitation) { s.HopLimit = 254 }), cfg: cfg, reason: ReasonHopLimit,
		},
		{
			name: "multicast target",
			ns:   with(func(s *Solicitation) { s.Target = netip.MustParseAddr("ff02::1") }), cfg: cfg, reason: ReasonBadTarget,
		},
		{
			name: "unspecified target",
			ns:   with(func(s *Solicitation) { s.Target = netip.IPv6Unspecified() }), cfg: cfg, reason: ReasonBadTarget,
		},
		{
			name: "ipv4 target",
			ns:   with(func(s *Solicitation) { s.Target = netip.MustParseAddr("192.0.2.1") }), cfg: cfg, reason: ReasonBadTarget,
		},
		{
			name: "multicast source",
			ns:   with(func(s *Solicitation) { s.Source = AllNodes }), cfg: cfg, reason: ReasonBadSource,
		},
		{
			name: "zero source",
			ns:   with(func(s *Solicitation) { s.Source = netip.Addr{} }), cfg: cfg, reason: ReasonBadSource,
		},
		{
			name: "not owned",
			ns: with(func(s *Solicitation) {
				s.Target, s.Destination = other, ndptest.SNM(other)
			}),
			cfg: cfg, reason: ReasonNotOwned,
		},
		{
			name: "wrong solicited-node group",
			ns:   with(func(s *Solicitation) { s.Destination = ndptest.SNM(other) }), cfg: cfg, reason: ReasonDestination,
		},
		{
			name: "unicast to another address",
			ns:   with(func(s *Solicitation) { s.Destination = hostGlobal }), cfg: cfg, reason: ReasonDestination,
		},
		{
			name: "dad probe to the target itself",
			ns: with(func(s *Solicitation) {
				s.Source, s.SourceLinkAddr, s.Destination = netip.IPv6Unspecified(), nil, ndptest.LiveAddr
			}),
			cfg: cfg, reason: ReasonDADDestination,
		},
		{
			name: "from our own mac (option)",
			ns:   with(func(s *Solicitation) { s.SourceLinkAddr = uplinkMAC }), cfg: cfg, reason: ReasonOwnLinkAddr,
		},
		{
			name: "from our own mac (frame)",
			ns:   with(func(s *Solicitation) { s.LinkSource = uplinkMAC }), cfg: cfg, reason: ReasonOwnLinkAddr,
		},
		{
			name: "uplink without mac",
			ns:   multicast, cfg: withCfg(func(c *DecideConfig) { c.LinkAddr = nil }), reason: ReasonNoLinkAddr,
		},
		{
			name: "nowhere to answer",
			ns:   with(func(s *Solicitation) { s.SourceLinkAddr, s.LinkSource = nil, nil }), cfg: cfg, reason: ReasonNoLinkDest,
		},
		{
			name: "broadcast option",
			ns:   with(func(s *Solicitation) { s.SourceLinkAddr = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff} }), cfg: cfg, reason: ReasonNonUnicast,
		},
		{
			name: "multicast option",
			ns:   with(func(s *Solicitation) { s.SourceLinkAddr = net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1} }), cfg: cfg, reason: ReasonNonUnicast,
		},
		{
			name: "zero option",
			ns:   with(func(s *Solicitation) { s.SourceLinkAddr = make(net.HardwareAddr, 6) }), cfg: cfg, reason: ReasonNonUnicast,
		},
		{
			name: "no option, group frame source",
			ns:   with(func(s *Solicitation) { s.SourceLinkAddr, s.LinkSource = nil, net.HardwareAddr{0x01, 0, 0x5e, 0, 0, 1} }), cfg: cfg, reason: ReasonNonUnicast,
		},
		{
			name: "dad probe defended to all nodes whatever the frame source",
			ns: with(func(s *Solicitation) {
				s.Source, s.SourceLinkAddr, s.LinkSource = netip.IPv6Unspecified(), nil, net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
			}),
			cfg: cfg, ok: true,
			want: Answer{
				Source: ndptest.HostLL, Destination: AllNodes, LinkDestination: AllNodesMAC,
				Advertisement: mndp.NeighborAdvertisement{Override: true, TargetAddress: ndptest.LiveAddr, Options: ndptest.TLLA(uplinkMAC)},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok, reason := Decide(tt.ns, tt.cfg, ownsLive)
			if ok != tt.ok || reason != tt.reason {
				t.Fatalf("Decide = ok %v reason %q, want ok %v reason %q", ok, reason, tt.ok, tt.reason)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateComparable(netip.Addr{})); diff != "" {
				t.Errorf("answer (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecideNilOwned(t *testing.T) {
	ns := Solicitation{Source: ndptest.RouterAddr, Destination: ndptest.LiveAddr, HopLimit: 255, Target: ndptest.LiveAddr, SourceLinkAddr: ndptest.RouterMAC}
	if _, ok, reason := Decide(ns, DecideConfig{LinkAddr: uplinkMAC}, nil); ok || reason != ReasonNotOwned {
		t.Errorf("Decide with nil owned = %v %q, want false %q", ok, reason, ReasonNotOwned)
	}
}

func TestUnsolicited(t *testing.T) {
	got, err := Unsolicited(ndptest.LiveAddr, DecideConfig{LinkAddr: uplinkMAC, LinkLocal: ndptest.HostLL})
	if err != nil {
		t.Fatal(err)
	}
	want := Answer{
		Source: ndptest.HostLL, Destination: AllNodes, LinkDestination: net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1},
		Advertisement: mndp.NeighborAdvertisement{Override: true, TargetAddress: ndptest.LiveAddr, Options: ndptest.TLLA(uplinkMAC)},
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateComparable(netip.Addr{})); diff != "" {
		t.Errorf("Unsolicited (-want +got):\n%s", diff)
	}
	if _, err := Unsolicited(ndptest.LiveAddr, DecideConfig{}); err == nil {
		t.Error("Unsolicited without a MAC: no error")
	}
}

// TestAnswerPacket checks the wire form: a valid IPv6 header with hop limit
// 255 and an ICMPv6 checksum that verifies, parsed back by mdlayher/ndp.
func TestAnswerPacket(t *testing.T) {
	a, ok, _ := Decide(Solicitation{
		Source: ndptest.RouterAddr, Destination: ndptest.SNM(ndptest.LiveAddr), HopLimit: 255, Target: ndptest.LiveAddr, SourceLinkAddr: ndptest.RouterMAC,
	}, DecideConfig{LinkAddr: uplinkMAC, LinkLocal: ndptest.HostLL}, ownsLive)
	if !ok {
		t.Fatal("no answer")
	}
	b, err := a.Packet()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 40+32 {
		t.Fatalf("packet is %d bytes, want 72", len(b))
	}
	if b[0]>>4 != 6 || b[6] != 58 || b[7] != 255 || int(b[4])<<8|int(b[5]) != 32 {
		t.Errorf("bad ipv6 header % x", b[:8])
	}
	if got := netip.AddrFrom16([16]byte(b[8:24])); got != ndptest.HostLL {
		t.Errorf("source %s, want %s", got, ndptest.HostLL)
	}
	if got := netip.AddrFrom16([16]byte(b[24:40])); got != ndptest.RouterAddr {
		t.Errorf("destination %s, want %s", got, ndptest.RouterAddr)
	}
	if c := Checksum(ndptest.HostLL, ndptest.RouterAddr, b[40:]); c != 0 {
		t.Errorf("checksum does not verify: %#04x", c)
	}
	m, err := mndp.ParseMessage(b[40:])
	if err != nil {
		t.Fatal(err)
	}
	want := &mndp.NeighborAdvertisement{Solicited: true, Override: true, TargetAddress: ndptest.LiveAddr, Options: ndptest.TLLA(uplinkMAC)}
	if diff := cmp.Diff(want, m, cmpopts.EquateComparable(netip.Addr{})); diff != "" {
		t.Errorf("parsed back (-want +got):\n%s", diff)
	}

	if _, err := (Answer{Advertisement: a.Advertisement}).Packet(); err == nil {
		t.Error("Packet without addresses: no error")
	}
}
