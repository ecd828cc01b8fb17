package driver

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/v6bridge/v6bridge/internal/hostos"
	"github.com/v6bridge/v6bridge/netspec"
)

// TestUplinkChangedServesEveryHostAddress: a port published on every host
// address (-p 8081:80) follows the uplink's addresses as the host changes
// them, with no container joining in between: a second address is served,
// a removed one no longer is; the same addresses again change nothing; a
// re-created uplink gets the whole firewall again.
func TestUplinkChangedServesEveryHostAddress(t *testing.T) {
	r := newRig(t)
	first, second := netip.MustParseAddr("2001:db8:1234:a1::1"), netip.MustParseAddr("2001:db8:1234:a1::2")
	host := r.d.cfg.Host.(*hostos.TestState)
	host.Uplink = []netip.Addr{first}
	mustNetwork(t, r, netA, "2001:db8:1234:a1:1::/112", nil)
	mustEndpoint(t, r, netA, ep1, "2001:db8:1234:a1:1::ab53/112")
	ports := []PortRequest{{Proto: netspec.ProtoTCP, HostFirst: 8081, HostLast: 8081, ContainerPort: 80}}
	if _, err := r.d.Join(JoinRequest{NetworkID: netA, EndpointID: ep1, SandboxKey: "sb1", Ports: ports}); err != nil {
		t.Fatal(err)
	}
	served := func(when string, want ...netip.Addr) {
		t.Helper()
		if !slices.Equal(r.fw.last.HostAddrs, want) {
			t.Errorf("%s: the firewall publishes on %v, want %v", when, r.fw.last.HostAddrs, want)
		}
	}
	served("at start", first)

	host.Uplink = []netip.Addr{first, second}
	if err := r.d.UplinkChanged(false); err != nil {
		t.Fatal(err)
	}
	served("address added", first, second)
	applied := r.fw.n
	if err := r.d.UplinkChanged(false); err != nil {
		t.Fatal(err)
	}
	if r.fw.n != applied {
		t.Errorf("the same addresses again changed the firewall %d times", r.fw.n-applied)
	}
	host.Uplink = []netip.Addr{second}
	if err := r.d.UplinkChanged(false); err != nil {
		t.Fatal(err)
	}
	served("first address removed", second)

	applied = r.fw.n
	if err := r.d.UplinkChanged(true); err != nil {
		t.Fatal(err)
	}
	if r.fw.n != applied+1 {
		t.Errorf("a re-created uplink applied the firewall %d times, want once", r.fw.n-applied)
	}
	served("re-created", second)
	if e := r.fw.last.Networks[0].Endpoints; len(e) != 1 || len(e[0].Ports) != 1 {
		t.Errorf("after the uplink was re-created the firewall holds %+v", e)
	}
	if !slices.Equal(r.nb.addrs, []netip.Addr{netip.MustParseAddr("2001:db8:1234:a1:1::ab53")}) {
		t.Errorf("NDP answers for %v after the uplink changed", r.nb.addrs)
	}
}
