package main

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/sirupsen/logrus"

	"github.com/v6bridge/v6bridge/driver"
	"github.com/v6bridge/v6bridge/metrics"
	"github.com/v6bridge/v6bridge/nat"
)

// TestRepairMessageIsNATs: the repair counter follows nat's log line; this
// fails when nat words it differently.
func TestRepairMessageIsNATs(t *testing.T) {
	b := repoFile(t, "nat/watch_linux.go")
	if !strings.Contains(string(b), `"`+natRepairMessage+`"`) {
		t.Errorf("nat/watch_linux.go no longer logs %q: v6bridge_firewall_repairs_total would stay 0", natRepairMessage)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	m := metrics.New("t", metrics.Sources{})
	log.AddHook(repairHook{m})
	log.Warn(natRepairMessage)
	log.Warn("firewall check")
	log.Info(natRepairMessage)
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if !strings.Contains(rec.Body.String(), "\nv6bridge_firewall_repairs_total 1\n") {
		t.Errorf("want one repair counted:\n%s", rec.Body.String())
	}
}

func TestNetworkMetrics(t *testing.T) {
	got := networkMetrics([]driver.NetworkStatus{
		{Network: driver.Network{Mode: nat.ModePublic}, Endpoints: []driver.EndpointStatus{{Address: "2001:db8:1234:a1:1::5"}, {Address: "2001:db8:1234:a1:1::6/112"}, {}}},
		{Network: driver.Network{Mode: nat.ModeNAT}, Endpoints: []driver.EndpointStatus{{Address: "fd00:1::5"}}},
	})
	want := []metrics.Network{{Mode: "public", Endpoints: 3, PublicAddrs: 2}, {Mode: "nat", Endpoints: 1}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestServeFlagsMetrics(t *testing.T) {
	if _, err := serveFlags([]string{"-metrics", "localhost"}); err == nil || !strings.Contains(err.Error(), "METRICS=\"localhost\": accepted is") {
		t.Errorf("bad METRICS: %v", err)
	}
	c, err := serveFlags([]string{"-metrics", "[::1]:9430"})
	if err != nil || c.metrics != "[::1]:9430" {
		t.Errorf("good METRICS: %+v, %v", c, err)
	}
}
