package doctor

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/v6bridge/v6bridge/internal/nettest"
)

// TestPrivilegedProviderShapes configures the uplink as each provider does
// (the router's gateway at fe80::1) and checks what doctor gathers and
// concludes.
func TestPrivilegedProviderShapes(t *testing.T) {
	for _, tt := range []struct {
		addr string
		want string
	}{
		{"2001:db8:1234:a1::1/64", "onlink64"},
		{"2001:db8:5:6::12/124", "prefix124"},
		{"2001:db8:7:8::3/128", "single128"},
	} {
		t.Run(tt.want, func(t *testing.T) {
			host, router := nettest.NewNS(t), nettest.NewNS(t)
			nettest.Connect(t, host, "eth0", netip.MustParsePrefix(tt.addr), router, "vps0", netip.MustParsePrefix("fe80::1/64"))
			h := nettest.Handle(t, host)
			eth0, _ := h.LinkByName("eth0")
			if err := h.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Dst: nettest.PrefixNet(netip.MustParsePrefix("::/0")),
				Gw: net.ParseIP("fe80::1"), Protocol: unix.RTPROT_BOOT}); err != nil {
				t.Fatal(err)
			}
			empty := filepath.Join(t.TempDir(), "resolv.conf")
			os.WriteFile(empty, nil, 0o644)
			var f Facts
			nettest.Do(t, host, func() error {
				f = Gather(context.Background(), Config{DockerHost: "unix://" + filepath.Join(t.TempDir(), "none.sock"), ResolvConf: empty, PluginsDir: t.TempDir()})
				return nil
			})
			if len(f.UplinkPrefixes) != 1 || f.UplinkPrefixes[0] != netip.MustParsePrefix(tt.addr) || f.Gateway != netip.MustParseAddr("fe80::1") {
				t.Errorf("facts: prefixes %v, gateway %v", f.UplinkPrefixes, f.Gateway)
			}
			s, why, ok := ClassifyShape(f)
			if !ok || s.ID != tt.want {
				t.Errorf("shape %q (%s), want %q", s.ID, why, tt.want)
			}
			if v := verdicts(Evaluate(f)); v["provider"] != OK || v["uplink"] != OK {
				t.Errorf("verdicts %v", v)
			}
		})
	}
}
