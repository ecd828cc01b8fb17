package link

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestValidName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"v6b-0123456789a", true}, // 15 bytes
		{"eth0.100", true},
		{"", false},
		{"v6b-0123456789ab", false}, // 16 bytes
		{".", false},
		{"..", false},
		{"a/b", false},
		{"a:b", false},
		{"a b", false},
		{"a\tb", false},
		{"a\x00", false},
	}
	for _, tt := range tests {
		err := validName(tt.name)
		if (err == nil) != tt.ok {
			t.Errorf("validName(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

func TestSysctlPathAndName(t *testing.T) {
	got := sysctlPath("/host/proc/sys", "net", "ipv6", "conf", "eth0.100", "accept_ra")
	if want := "/host/proc/sys/net/ipv6/conf/eth0.100/accept_ra"; got != want {
		t.Errorf("sysctlPath = %q, want %q", got, want)
	}
	if got, want := sysctlName("net", "ipv6", "conf", "all", "forwarding"), "net.ipv6.conf.all.forwarding"; got != want {
		t.Errorf("sysctlName = %q, want %q", got, want)
	}
	if got, want := change("net.ipv6.conf.eth0.accept_ra", "1", "2"), "net.ipv6.conf.eth0.accept_ra: 1 -> 2"; got != want {
		t.Errorf("change = %q, want %q", got, want)
	}
}

func TestOwnedKind(t *testing.T) {
	tests := []struct {
		l            linkKind
		bridge, veth bool
	}{
		{linkKind{"v6b-net1", "bridge"}, true, false},
		{linkKind{"v6b-net1", "dummy"}, false, false},
		{linkKind{"docker0", "bridge"}, false, false},
		{linkKind{"v6h1234", "veth"}, false, true},
		{linkKind{"v6h1234", "bridge"}, false, false},
		{linkKind{"veth1234", "veth"}, false, false},
		{linkKind{"v6c1234", "veth"}, false, false}, // container side: not listed
	}
	for _, tt := range tests {
		b, v := ownedKind(tt.l, "v6b-", "v6h")
		if b != tt.bridge || v != tt.veth {
			t.Errorf("ownedKind(%+v) = %v, %v; want %v, %v", tt.l, b, v, tt.bridge, tt.veth)
		}
	}
}

func TestHostAddr(t *testing.T) {
	tests := []struct {
		a    string
		want bool
	}{
		{"2001:db8::1", true},
		{"fd00::1", true},
		{"fe80::1", false},
		{"::1", false},
		{"ff02::1", false},
		{"::", false},
		{"::ffff:192.0.2.1", false},
		{"192.0.2.1", false},
	}
	for _, tt := range tests {
		if got := hostAddr(netip.MustParseAddr(tt.a)); got != tt.want {
			t.Errorf("hostAddr(%s) = %v, want %v", tt.a, got, tt.want)
		}
	}
}

func TestOnLinkPrefixes(t *testing.T) {
	in := []netip.Prefix{
		netip.MustParsePrefix("2001:db8:1::5/64"),
		netip.MustParsePrefix("2001:db8:1::6/64"), // same subnet
		netip.MustParsePrefix("fd00:1::1/48"),
		netip.MustParsePrefix("2001:db8:2::1/128"), // a host, not a link
		netip.MustParsePrefix("fe80::1/64"),        // link-local
		netip.MustParsePrefix("2001:db8:0::1/64"),
	}
	want := []netip.Prefix{
		netip.MustParsePrefix("2001:db8::/64"),
		netip.MustParsePrefix("2001:db8:1::/64"),
		netip.MustParsePrefix("fd00:1::/48"),
	}
	got := onLinkPrefixes(in)
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("onLinkPrefixes (-want +got):\n%s", diff)
	}
}

func TestDefaultUplink(t *testing.T) {
	def := netip.MustParsePrefix("::/0")
	tests := []struct {
		name    string
		routes  []route
		want    string
		wantErr error
	}{
		{
			name:    "none",
			routes:  []route{{Dst: netip.MustParsePrefix("2001:db8::/64"), LinkName: "eth0"}},
			wantErr: ErrNoDefaultRoute,
		},
		{
			name:   "zero dst is default",
			routes: []route{{LinkName: "eth0", Metric: 1024}},
			want:   "eth0",
		},
		{
			name: "lowest metric wins",
			routes: []route{
				{Dst: def, LinkName: "wlan0", Metric: 600},
				{Dst: netip.MustParsePrefix("2001:db8::/64"), LinkName: "lo", Metric: 1},
				{Dst: def, LinkName: "eth0", Metric: 100},
			},
			want: "eth0",
		},
		{
			name:    "no interface",
			routes:  []route{{Dst: def}},
			wantErr: ErrNoDefaultRoute,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := defaultUplink(tt.routes)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
