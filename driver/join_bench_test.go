package driver

import (
	"fmt"
	"net/netip"
	"testing"
)

// BenchmarkJoin measures one Leave + Join of an endpoint publishing a port
// with 10 and 1000 other endpoints joined on the network, with fakes whose
// firewall keeps a nat.Model as nat.Table does: the two must cost about the
// same (bench/bench.sh --only scale measures it through the real kernel).
func BenchmarkJoin(b *testing.B) {
	for _, n := range []int{10, 1000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			r := newRig(&testing.T{})
			r.fw.noLast, r.nb.noList = true, true
			d := r.d
			if err := d.CreateNetwork(createReq("net", "2001:db8:1234:a1:1::/112", nil)); err != nil {
				b.Fatal(err)
			}
			addr := netip.MustParseAddr("2001:db8:1234:a1:1::")
			for i := 0; i <= n; i++ {
				addr = addr.Next()
				id := fmt.Sprintf("ep%d", i)
				if _, err := d.CreateEndpoint(CreateEndpointRequest{NetworkID: "net", EndpointID: id, AddressIPv6: netip.PrefixFrom(addr.Next(), 112)}); err != nil {
					b.Fatal(err)
				}
				if _, err := d.Join(JoinRequest{NetworkID: "net", EndpointID: id, SandboxKey: "sb" + id, Ports: portmap("", 20000+i, 80)}); err != nil {
					b.Fatal(err)
				}
			}
			opts := portmap("", 20000, 80)
			b.ResetTimer()
			for b.Loop() {
				if err := d.Leave("net", "ep0"); err != nil {
					b.Fatal(err)
				}
				if _, err := d.Join(JoinRequest{NetworkID: "net", EndpointID: "ep0", SandboxKey: "sbep0", Ports: opts}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
