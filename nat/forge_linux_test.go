package nat

import (
	"bytes"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/v6bridge/v6bridge/internal/nettest"
)

// The attacks of issue 24 on the anti-spoofing check: a container on one
// bridge forges packets of a connection another bridge's container has,
// with the exact tuple conntrack knows, so only the source check (not the
// conntrack state) can stop them.

// udpPeer is a UDP socket inside a namespace that records the payloads
// it receives.
type udpPeer struct {
	pc   net.PacketConn
	mu   sync.Mutex
	seen [][]byte
}

func udpPeerAt(t *testing.T, ns netns.NsHandle, addr netip.AddrPort) *udpPeer {
	t.Helper()
	p := &udpPeer{}
	p.pc = nettest.Open(t, ns, func() (net.PacketConn, error) { return net.ListenUDP("udp6", net.UDPAddrFromAddrPort(addr)) })
	nettest.ServePackets(t, p.pc, func(b []byte, _ net.Addr) {
		p.mu.Lock()
		p.seen = append(p.seen, slices.Clone(b))
		p.mu.Unlock()
	})
	return p
}

func (p *udpPeer) send(t *testing.T, to netip.AddrPort, msg string) {
	t.Helper()
	if _, err := p.pc.WriteTo([]byte(msg), net.UDPAddrFromAddrPort(to)); err != nil {
		t.Fatalf("send %q to %s: %v", msg, to, err)
	}
}

// has waits up to d for msg.
func (p *udpPeer) has(msg string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		p.mu.Lock()
		ok := slices.ContainsFunc(p.seen, func(b []byte) bool { return bytes.Equal(b, []byte(msg)) })
		p.mu.Unlock()
		if ok || time.Now().After(deadline) {
			return ok
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// exchange sends msg from a to b until b has it (up to 10 s: neighbour
// discovery on a loaded machine).
func exchange(t *testing.T, a *udpPeer, b *udpPeer, to netip.AddrPort, msg string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		a.send(t, to, msg)
		if b.has(msg, 300*time.Millisecond) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%q to %s never arrived: the path the attack uses is broken", msg, to)
		}
	}
}

// TestPrivilegedForgedFromAnotherBridge: the public container has two
// UDP flows with the outside, one the outside opened (to an open port)
// and one it opened itself, both established. The nat container, on
// another bridge, takes the public container's address and sends with
// each flow's exact tuple: conntrack sees established packets, the
// outside must see none of them. The public container's own packets on
// the same tuples still arrive (control).
func TestPrivilegedForgedFromAnotherBridge(t *testing.T) {
	r := newSpoofRig(t)
	r.state.Networks[1].Endpoints[0].Open = append(r.state.Networks[1].Endpoints[0].Open, Port{Proto: ProtoUDP, First: 5300, Last: 5300})
	if err := r.tbl.Apply(r.state); err != nil {
		t.Fatal(err)
	}
	inbound := netip.AddrPortFrom(r.pubAddr, 5300) // the outside opened it
	outbound := netip.AddrPortFrom(r.pubAddr, 5400)
	outIn, outOut := netip.AddrPortFrom(r.outAddr, 7100), netip.AddrPortFrom(r.outAddr, 7200)

	pubIn, pubOut := udpPeerAt(t, r.pub, inbound), udpPeerAt(t, r.pub, outbound)
	farIn, farOut := udpPeerAt(t, r.out, outIn), udpPeerAt(t, r.out, outOut)
	exchange(t, farIn, pubIn, inbound, "request")
	exchange(t, pubIn, farIn, outIn, "reply")
	exchange(t, pubOut, farOut, outOut, "hello")
	exchange(t, farOut, pubOut, outbound, "answer")

	// The attacker holds the victim's address on its own interface and
	// knows its gateway's link-layer address (its own solicitations would
	// come from the victim's address and their answers go elsewhere).
	addAddr(t, r.nat, "eth0", netip.PrefixFrom(r.pubAddr, 128))
	br, err := nettest.Handle(t, r.host).LinkByName("v6b-nat")
	if err != nil {
		t.Fatal(err)
	}
	inNS(t, r.nat, "ip", "-6", "neigh", "replace", "fd00:1::1", "lladdr", br.Attrs().HardwareAddr.String(), "dev", "eth0", "nud", "permanent")
	forgeIn, forgeOut := udpPeerAt(t, r.nat, inbound), udpPeerAt(t, r.nat, outbound)
	for _, tt := range []struct {
		name  string
		from  *udpPeer
		to    netip.AddrPort
		far   *udpPeer
		legit *udpPeer
	}{
		{"a forged reply of a connection the outside opened", forgeIn, outIn, farIn, pubIn},
		{"a forged packet of a connection the container opened", forgeOut, outOut, farOut, pubOut},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for i := range 5 {
				tt.from.send(t, tt.to, "forged")
				if i == 0 {
					time.Sleep(200 * time.Millisecond) // the attacker's neighbour discovery
				}
			}
			if tt.far.has("forged", 700*time.Millisecond) {
				t.Fatalf("the outside received a packet forged on bridge v6b-nat with %s's tuple", tt.to)
			}
			exchange(t, tt.legit, tt.far, tt.to, "genuine") // control: the same tuple from its own bridge
		})
	}
}

// TestPrivilegedReplyThroughOtherNetwork: a container on the public and
// the nat network with its default route through the nat bridge answers a
// connection to its public address through the nat bridge. That is allowed
// because the state lists its public address as one of its others
// (Endpoint.Also); without it the same reply is dropped like a spoofed one.
func TestPrivilegedReplyThroughOtherNetwork(t *testing.T) {
	r := newSpoofRig(t)
	both := nettest.NewNS(t)
	natAddr, pubAddr := netip.MustParseAddr("fd00:1::3"), netip.MustParseAddr("2001:db8:2::11")
	attach(t, r.host, "v6b-nat", "v6h-bn", both, netip.PrefixFrom(natAddr, 64), netip.MustParseAddr("fd00:1::1"))
	nettest.Connect(t, r.host, "v6h-bp", netip.Prefix{}, both, "eth1", netip.PrefixFrom(pubAddr, 64))
	h := nettest.Handle(t, r.host)
	br, err := h.LinkByName("v6b-pub")
	if err != nil {
		t.Fatal(err)
	}
	v, err := h.LinkByName("v6h-bp")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetMaster(v, br); err != nil {
		t.Fatal(err)
	}
	open := []Port{{Proto: ProtoUDP, First: 5300, Last: 5300}}
	setBoth := func(also bool) {
		t.Helper()
		s := r.state
		s.Networks = slices.Clone(s.Networks)
		nat, pub := Endpoint{Addr: natAddr}, Endpoint{Addr: pubAddr, Open: open}
		if also {
			nat.Also, pub.Also = []netip.Addr{pubAddr}, []netip.Addr{natAddr}
		}
		s.Networks[0].Endpoints = append(slices.Clone(s.Networks[0].Endpoints), nat)
		s.Networks[1].Endpoints = append(slices.Clone(s.Networks[1].Endpoints), pub)
		if err := r.tbl.Apply(s); err != nil {
			t.Fatal(err)
		}
	}
	svc := netip.AddrPortFrom(pubAddr, 5300)
	ctr := udpPeerAt(t, both, svc)
	for _, tt := range []struct {
		also bool
		port uint16
	}{{true, 7300}, {false, 7301}} {
		setBoth(tt.also)
		far := udpPeerAt(t, r.out, netip.AddrPortFrom(r.outAddr, tt.port))
		exchange(t, far, ctr, svc, "request")
		msg := "reply " + string(rune('0'+tt.port%10))
		for range 5 {
			ctr.send(t, netip.AddrPortFrom(r.outAddr, tt.port), msg)
			time.Sleep(20 * time.Millisecond)
		}
		if got := far.has(msg, 2*time.Second); got != tt.also {
			t.Errorf("Also %v: reply through the nat bridge from %s arrived: %v, want %v", tt.also, pubAddr, got, tt.also)
		}
	}
}
