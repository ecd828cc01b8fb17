package metrics

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// scrape fetches /metrics and parses it as Prometheus does.
func scrape(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p expfmt.TextParser
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("the text format does not parse: %v", err)
	}
	return fams
}

// value is the value of the sample of name whose labels include want.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, want ...string) float64 {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Fatalf("no %s", name)
	}
	for _, m := range f.Metric {
		labels := map[string]string{}
		for _, l := range m.Label {
			labels[l.GetName()] = l.GetValue()
		}
		match := true
		for i := 0; i+1 < len(want); i += 2 {
			match = match && labels[want[i]] == want[i+1]
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	t.Fatalf("no %s%v", name, want)
	return 0
}

func TestMetrics(t *testing.T) {
	m := New("1.2.3", Sources{
		Networks: func() []Network {
			return []Network{{Mode: "nat", Endpoints: 3}, {Mode: "public", Endpoints: 2, PublicAddrs: 2}, {Mode: "nat", Endpoints: 1}}
		},
		NDP: func() NDP {
			return NDP{Received: 10, Answered: 7, Ignored: 3, RateLimited: 1, IgnoredReasons: map[string]uint64{"target not answered for": 2},
				Solicited: 7, Unsolicited: 4, Addrs: 2}
		},
	})
	m.ObserveRequest("NetworkDriver.Join", false, 3*time.Millisecond)
	m.ObserveRequest("NetworkDriver.Join", true, time.Millisecond)
	m.ObserveRequest("IpamDriver.RequestPool", false, time.Millisecond)
	m.FirewallApplied("full", nil)
	m.FirewallApplied("endpoints", errors.New("busy"))
	m.FirewallRepaired()
	m.Reconciled(nil)
	m.UplinkChanged([]string{"recreated", "addrs"})
	m.UplinkChanged([]string{"addrs"})
	m.UplinkReattached("ndp", nil)
	m.UplinkReattached("firewall", errors.New("refused"))
	m.UplinkReattached("firewall", nil)
	fams := scrape(t, m)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"v6bridge_build_info", []string{"version", "1.2.3"}, 1},
		{"v6bridge_api_requests_total", []string{"method", "NetworkDriver.Join"}, 2},
		{"v6bridge_api_request_errors_total", []string{"method", "NetworkDriver.Join"}, 1},
		{"v6bridge_api_request_duration_seconds", []string{"method", "NetworkDriver.Join"}, 2},
		{"v6bridge_api_requests_total", []string{"method", "IpamDriver.RequestPool"}, 1},
		{"v6bridge_networks", []string{"mode", "nat"}, 2},
		{"v6bridge_networks", []string{"mode", "routed"}, 0},
		{"v6bridge_endpoints", []string{"mode", "nat"}, 4},
		{"v6bridge_public_addresses", []string{"mode", "public"}, 2},
		{"v6bridge_ndp_solicitations_received_total", nil, 10},
		{"v6bridge_ndp_solicitations_answered_total", nil, 7},
		{"v6bridge_ndp_solicitations_ignored_total", []string{"reason", "target not answered for"}, 2},
		{"v6bridge_ndp_solicitations_ignored_total", []string{"reason", "other"}, 1},
		{"v6bridge_ndp_solicitations_ratelimited_total", nil, 1},
		{"v6bridge_ndp_advertisements_sent_total", []string{"kind", "unsolicited"}, 4},
		{"v6bridge_ndp_targets", []string{"kind", "address"}, 2},
		{"v6bridge_firewall_applies_total", []string{"kind", "full"}, 1},
		{"v6bridge_firewall_apply_errors_total", []string{"kind", "endpoints"}, 1},
		{"v6bridge_firewall_repairs_total", nil, 1},
		{"v6bridge_reconcile_runs_total", nil, 1},
		{"v6bridge_reconcile_errors_total", nil, 0},
		{"v6bridge_uplink_changes_total", []string{"kind", "addrs"}, 2},
		{"v6bridge_uplink_changes_total", []string{"kind", "recreated"}, 1},
		{"v6bridge_uplink_changes_total", []string{"kind", "gone"}, 0},
		{"v6bridge_uplink_reattachments_total", []string{"part", "ndp"}, 1},
		{"v6bridge_uplink_reattachments_total", []string{"part", "firewall"}, 2},
		{"v6bridge_uplink_reattachment_errors_total", []string{"part", "firewall"}, 1},
	} {
		if got := value(t, fams, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// No label has one value per address or endpoint.
	allowed := map[string]bool{"method": true, "mode": true, "kind": true, "reason": true, "version": true, "goversion": true, "le": true, "quantile": true, "part": true}
	for name, f := range fams {
		if !strings.HasPrefix(name, "v6bridge_") {
			continue
		}
		for _, mt := range f.Metric {
			for _, l := range mt.Label {
				if !allowed[l.GetName()] {
					t.Errorf("%s has label %s", name, l.GetName())
				}
			}
		}
	}
}

func TestCheckAddr(t *testing.T) {
	for _, ok := range []string{"", "127.0.0.1:9430", "[::1]:9430", ":9430", "[2001:db8::1]:1"} {
		if err := CheckAddr(ok); err != nil {
			t.Errorf("CheckAddr(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"9430", "localhost:9430", "127.0.0.1:0", "[::1]:99999", "::1:9430", "127.0.0.1:http"} {
		if err := CheckAddr(bad); err == nil || !strings.Contains(err.Error(), "accepted is") {
			t.Errorf("CheckAddr(%q) = %v, want refused", bad, err)
		}
	}
}
