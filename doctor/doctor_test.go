package doctor

import (
	"bytes"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// healthy are the facts of a host ready for v6bridge.
func healthy() Facts {
	return Facts{
		DisableIPv6: "0", Forwarding: "1",
		Uplink: "eth0", AcceptRA: "2", RADefaultRoute: true, Gateway: netip.MustParseAddr("fe80::1"),
		UplinkGlobal: []netip.Addr{netip.MustParseAddr("2001:db8:1234:a1::1")},
		Tables:       []string{"ip6 v6bridge"},
		Engine:       Engine{Host: DefaultDockerHost, Version: "28.3.0", APIVersion: "1.51"},
		Plugin:       Plugin{Socket: "/run/docker/plugins/5e7d/v6bridge.sock", Networks: 2},
	}
}

// verdicts maps check -> status.
func verdicts(fs []Finding) map[string]Status {
	m := map[string]Status{}
	for _, f := range fs {
		m[f.Check] = f.Status
	}
	return m
}

func TestEvaluate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Facts)
		want   map[string]Status // the checks that differ from healthy
	}{
		{"healthy", func(*Facts) {}, nil},
		{"no IPv6 in the kernel", func(f *Facts) { f.DisableIPv6 = "" }, map[string]Status{"ipv6": Fail}},
		{"IPv6 disabled", func(f *Facts) { f.DisableIPv6 = "1" }, map[string]Status{"ipv6": Fail}},
		{"no forwarding, RA route with accept_ra=2", func(f *Facts) { f.Forwarding = "0" }, map[string]Status{"forwarding": Warn}},
		{"forwarding unreadable", func(f *Facts) { f.Forwarding = "" }, map[string]Status{"forwarding": Warn}},
		{"RA route, accept_ra=1, forwarding on", func(f *Facts) { f.AcceptRA = "1" }, map[string]Status{"accept_ra": Fail}},
		{"RA route, accept_ra=0", func(f *Facts) { f.AcceptRA = "0" }, map[string]Status{"accept_ra": Fail}},
		{"RA route, accept_ra=1, forwarding off", func(f *Facts) { f.AcceptRA, f.Forwarding = "1", "0" },
			map[string]Status{"accept_ra": Warn, "forwarding": Warn}},
		{"static route, accept_ra=1", func(f *Facts) { f.AcceptRA, f.RADefaultRoute = "1", false }, nil},
		{"no default route", func(f *Facts) { f.Uplink, f.UplinkErr, f.UplinkGlobal = "", "no IPv6 default route", nil },
			map[string]Status{"uplink": Fail, "accept_ra": Warn}},
		{"uplink without a global address", func(f *Facts) { f.UplinkGlobal = nil }, map[string]Status{"uplink": Fail}},
		{"nftables unusable", func(f *Facts) { f.NFTablesErr = "operation not permitted" }, map[string]Status{"nftables": Fail}},
		{"FORWARD drop without DOCKER-USER", func(f *Facts) { f.FilterForwardPolicy = "drop" }, map[string]Status{"ip6tables": Fail}},
		{"FORWARD drop with DOCKER-USER", func(f *Facts) { f.FilterForwardPolicy, f.DockerUser = "drop", true }, map[string]Status{"ip6tables": Warn}},
		{"FORWARD accept", func(f *Facts) { f.FilterForwardPolicy = "accept" }, nil},
		{"ufw", func(f *Facts) { f.UFW = true }, map[string]Status{"ufw": Warn}},
		{"firewalld", func(f *Facts) { f.Firewalld = true }, map[string]Status{"firewalld": Warn}},
		{"ndppd", func(f *Facts) { f.Conflicting = []Process{{42, "ndppd"}} }, map[string]Status{"ndppd": Fail}},
		{"docker-ipv6nat", func(f *Facts) { f.Conflicting = []Process{{7, "docker-ipv6nat"}} }, map[string]Status{"docker-ipv6nat": Fail}},
		{"no engine", func(f *Facts) { f.Engine = Engine{Host: DefaultDockerHost, Err: "connection refused"} }, map[string]Status{"engine": Warn}},
		{"engine 20.10", func(f *Facts) { f.Engine.Version, f.Engine.APIVersion = "20.10.24", "1.41" }, map[string]Status{"engine": Warn}},
		{"engine 28.0", func(f *Facts) { f.Engine.Version, f.Engine.APIVersion = "28.0.0", "1.48" }, nil},
		{"no plugin answers", func(f *Facts) { f.Plugin = Plugin{Err: "no v6bridge.sock under /run/docker/plugins"} }, map[string]Status{"plugin": Warn}},
		{"no flowtables", func(f *Facts) { f.FastPathErr = "no such file or directory" }, map[string]Status{"fastpath": Warn}},
		{"FASTPATH=false", func(f *Facts) { f.FastPathOff, f.FastPathErr = true, "" }, nil},
		{"engine API garbage", func(f *Facts) { f.Engine.APIVersion = "x" }, map[string]Status{"engine": Warn}},
		{"engine 29.0.2", func(f *Facts) { f.Engine.Version, f.Engine.APIVersion = "29.0.2", "1.52" }, map[string]Status{"engine": Fail}},
		{"engine 29.0.3", func(f *Facts) { f.Engine.Version, f.Engine.APIVersion = "29.0.3", "1.52" }, nil},
	}
	base := verdicts(Evaluate(healthy()))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := healthy()
			tt.change(&f)
			got := Evaluate(f)
			want := map[string]Status{}
			for k, v := range base {
				want[k] = v
			}
			for k, v := range tt.want {
				want[k] = v
			}
			if diff := cmp.Diff(want, verdicts(got)); diff != "" {
				t.Errorf("verdicts (-want +got):\n%s", diff)
			}
			fail := false
			for _, s := range want {
				fail = fail || s == Fail
			}
			if Failed(got) != fail {
				t.Errorf("Failed = %v, want %v", Failed(got), fail)
			}
			for _, x := range got {
				if x.Status != OK && (x.Meaning == "" && x.Summary != "no uplink to check" || x.Fix == "" && x.Summary != "no uplink to check") {
					t.Errorf("%s: %s without meaning or fix: %+v", x.Check, x.Status, x)
				}
			}
		})
	}
	for k, s := range base {
		if s != OK && k != "ufw" {
			t.Errorf("healthy host: %s is %s", k, s)
		}
	}
}

func TestWriteTextGolden(t *testing.T) {
	f := healthy()
	f.AcceptRA = "1"
	f.FilterForwardPolicy = "drop"
	f.Conflicting = []Process{{42, "ndppd"}, {43, "ndppd"}}
	f.Engine = Engine{Host: "unix:///run/docker.sock", Err: "connection refused"}
	var b bytes.Buffer
	if err := WriteText(&b, Evaluate(f)); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "broken.txt.golden")
	if *update {
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), b.String()); diff != "" {
		t.Errorf("%s (-want +got):\n%s", path, diff)
	}
}
