package nat

import (
	"testing"

	"github.com/v6bridge/v6bridge/internal/nettest"
)

// BenchmarkPrivilegedPublishRange publishes and unpublishes, through the
// kernel, one endpoint's single port and then a 10,001-port range that
// keeps its numbers (-p 10000-20000:10000-20000/udp, a media server's), on
// a table holding 100 other endpoints. A range is a few interval elements,
// so both cost about the same; "elements" is what the change adds.
func BenchmarkPrivilegedPublishRange(b *testing.B) {
	for _, c := range []struct {
		name        string
		first, last uint16
	}{{"1port", 10000, 10000}, {"range10001", 10000, 20000}} {
		b.Run(c.name, func(b *testing.B) {
			ns := nettest.NewNS(b)
			tbl, err := NewTable(TableConfig{NetNS: int(ns)})
			if err != nil {
				b.Fatal(err)
			}
			s := benchState(100)
			if err := tbl.Apply(s); err != nil {
				b.Fatal(err)
			}
			n := s.Networks[0]
			a := n.Endpoints[len(n.Endpoints)-1].Addr.Next()
			m := Mapping{Proto: ProtoUDP, HostFirst: c.first, HostLast: c.last, ContainerFirst: c.first}
			add := []EndpointUpdate{{Bridge: n.Bridge, Addr: a, Ports: []Mapping{m}, Open: []Port{{Proto: ProtoUDP, First: c.first, Last: c.last}}}}
			del := []EndpointUpdate{{Bridge: n.Bridge, Addr: a, Remove: true}}
			for b.Loop() {
				if err := tbl.UpdateEndpoints(add); err != nil {
					b.Fatal(err)
				}
				if err := tbl.UpdateEndpoints(del); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(endpointCount(s.HostAddrs, Endpoint{Addr: a, Ports: add[0].Ports, Open: add[0].Open})), "elements")
		})
	}
}
