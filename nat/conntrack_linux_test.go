package nat

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/v6bridge/v6bridge/internal/nettest"
)

// A WireGuard client keeps sending to the host's UDP port 51820 every
// 100 ms while its container starts: its flow is tracked untranslated
// (nothing listens on the host). Publishing the port must delete that
// entry, or the kernel keeps delivering the flow to the host and the
// container never hears from the client (the kernel translates only a
// flow's first packet). Both ways a port gets published: a whole Apply
// and an endpoint update (a Join).
func TestPrivilegedPublishForgetsFlowsThatBypassTheDNAT(t *testing.T) {
	for _, how := range []string{"apply", "update"} {
		t.Run(how, func(t *testing.T) { publishWhileSending(t, how == "update") })
	}
}

func publishWhileSending(t *testing.T, update bool) {
	host, out, ctr := nettest.NewNS(t), nettest.NewNS(t), nettest.NewNS(t)
	hostAddr := netip.MustParseAddr("2001:db8:1::1")
	outAddr := netip.MustParseAddr("2001:db8:1::2")
	gw, ctrAddr := netip.MustParseAddr("fd00:51::1"), netip.MustParseAddr("fd00:51::2")
	nettest.Connect(t, host, "up0", netip.PrefixFrom(hostAddr, 64), out, "eth0", netip.PrefixFrom(outAddr, 64))
	addBridge(t, host, "v6b-wg", netip.PrefixFrom(gw, 64))
	attach(t, host, "v6b-wg", "v6h-wg", ctr, netip.PrefixFrom(ctrAddr, 64), gw)
	if err := nettest.Do(t, host, func() error {
		return os.WriteFile("/proc/sys/net/ipv6/conf/all/forwarding", []byte("1"), 0o644)
	}); err != nil {
		t.Fatalf("enable forwarding: %v", err)
	}
	network := func(ports ...Mapping) State {
		return State{Uplinks: []string{"up0"}, HostAddrs: []netip.Addr{hostAddr}, Networks: []Network{{
			Bridge: "v6b-wg", Subnet: netip.MustParsePrefix("fd00:51::/64"), Gateway: gw, Mode: ModeNAT, ICC: true, AllowPing: true,
			Endpoints: []Endpoint{{Addr: ctrAddr, Ports: ports}},
		}}}
	}
	tbl := newTable(t, host)
	if err := tbl.Apply(network()); err != nil {
		t.Fatalf("Apply without the port: %v", err)
	}
	sink := listenUDP(t, ctr, "[::]:51820")

	// The client: one socket, one source port, a datagram every 100 ms.
	var c *net.UDPConn
	if err := nettest.Do(t, out, func() (err error) {
		c, err = net.DialUDP("udp6", nil, &net.UDPAddr{IP: hostAddr.AsSlice(), Port: 51820})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	done := make(chan struct{})
	t.Cleanup(func() { stop.Store(true); <-done; c.Close() })
	go func() {
		defer close(done)
		for !stop.Load() {
			if _, err := c.Write([]byte("handshake")); err != nil && !errors.Is(err, unix.ECONNREFUSED) {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	client := c.LocalAddr().(*net.UDPAddr).AddrPort()
	flow := func() (ConnTuple, bool) {
		h, err := netlink.NewHandleAt(netns.NsHandle(host), unix.NETLINK_NETFILTER)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		fs, err := h.ConntrackTableList(netlink.ConntrackTable, unix.AF_INET6)
		if err != nil {
			t.Fatalf("list conntrack: %v", err)
		}
		for _, f := range fs {
			if f.Forward.Protocol == ProtoUDP && addrPort(f.Forward.SrcIP, f.Forward.SrcPort).Port() == client.Port() {
				return ConnTuple{Proto: ProtoUDP, OrigSrc: addrPort(f.Forward.SrcIP, f.Forward.SrcPort), OrigDst: addrPort(f.Forward.DstIP, f.Forward.DstPort),
					ReplySrc: addrPort(f.Reverse.SrcIP, f.Reverse.SrcPort), ReplyDst: addrPort(f.Reverse.DstIP, f.Reverse.DstPort)}, true
			}
		}
		return ConnTuple{}, false
	}
	// The flow is tracked untranslated: the host "answers" it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		f, ok := flow()
		if ok && f.ReplySrc == netip.AddrPortFrom(hostAddr, 51820) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the client's flow is not tracked to the host: %+v, %v", f, ok)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := sink.got(300 * time.Millisecond); len(got) > 0 {
		t.Fatalf("the container heard %v before the port was published", got)
	}

	wg := Mapping{Proto: ProtoUDP, HostFirst: 51820, HostLast: 51820, ContainerFirst: 51820}
	if update {
		err := tbl.UpdateEndpoints([]EndpointUpdate{{Bridge: "v6b-wg", Addr: ctrAddr, Ports: []Mapping{wg}}})
		if err != nil {
			t.Fatalf("UpdateEndpoints: %v", err)
		}
	} else if err := tbl.Apply(network(wg)); err != nil {
		t.Fatalf("Apply with the port: %v", err)
	}
	sink.reset()
	got := sink.got(10 * time.Second) // an upper bound for a loaded machine; the client sends every 100 ms
	if len(got) == 0 || got[0] != outAddr {
		f, _ := flow()
		t.Fatalf("the container heard %v after the port was published, want the client %s; the flow is %+v", got, outAddr, f)
	}
	if f, _ := flow(); f.ReplySrc != netip.AddrPortFrom(ctrAddr, 51820) {
		t.Errorf("the client's flow answers from %s, want the container", f.ReplySrc)
	}
}
