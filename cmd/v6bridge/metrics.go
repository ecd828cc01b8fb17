package main

import (
	"net/netip"

	"github.com/sirupsen/logrus"

	"github.com/v6bridge/v6bridge/driver"
	"github.com/v6bridge/v6bridge/fwstate"
	"github.com/v6bridge/v6bridge/metrics"
	"github.com/v6bridge/v6bridge/ndp"
	"github.com/v6bridge/v6bridge/netspec"
)

// metricsSources reads the networks and the NDP counters at each scrape.
func metricsSources(d *driver.Driver, r *ndp.Responder) metrics.Sources {
	return metrics.Sources{
		Networks: func() []metrics.Network { return networkMetrics(d.Status()) },
		NDP:      func() metrics.NDP { return ndpMetrics(r.Stats()) },
	}
}

func networkMetrics(ns []driver.NetworkStatus) []metrics.Network {
	out := make([]metrics.Network, 0, len(ns))
	for _, n := range ns {
		m := metrics.Network{Mode: string(n.Mode), Endpoints: len(n.Endpoints)}
		for _, e := range n.Endpoints {
			a, err := netip.ParseAddr(e.Address)
			if err != nil {
				if p, perr := netip.ParsePrefix(e.Address); perr == nil {
					a, err = p.Addr(), nil
				}
			}
			if err == nil && netspec.IsPublic(a) {
				m.PublicAddrs++
			}
		}
		out = append(out, m)
	}
	return out
}

// ndpMetrics maps the responder's counters; answers are the solicited
// advertisements sent.
func ndpMetrics(s ndp.Stats) metrics.NDP {
	var limited uint64
	for _, n := range s.Limited {
		limited += n
	}
	return metrics.NDP{
		Received: s.Solicitations, Answered: s.Answered, Ignored: s.Ignored, IgnoredReasons: s.IgnoredReasons,
		RateLimited: limited, Solicited: s.Answered, Unsolicited: s.Unsolicited, Addrs: len(s.Addrs), Ranges: len(s.Ranges),
	}
}

// countingFirewall counts the firewall changes the driver makes.
type countingFirewall struct {
	driver.Firewall
	m *metrics.Metrics
}

func (f countingFirewall) Apply(s fwstate.State) error {
	err := f.Firewall.Apply(s)
	f.m.FirewallApplied("full", err)
	return err
}

func (f countingFirewall) UpdateEndpoints(us []fwstate.EndpointUpdate) error {
	err := f.Firewall.UpdateEndpoints(us)
	f.m.FirewallApplied("endpoints", err)
	return err
}

// natRepairMessage is what nat.Table logs (Warn) when it applies its table
// again after someone changed or deleted it; TestRepairMessageIsNATs keeps
// it in step with nat.
const natRepairMessage = "firewall table changed behind our back, applying it again"

// repairHook counts nat's repairs from its log, so nat needs no metrics.
type repairHook struct{ m *metrics.Metrics }

func (repairHook) Levels() []logrus.Level { return []logrus.Level{logrus.WarnLevel} }

func (h repairHook) Fire(e *logrus.Entry) error {
	if e.Message == natRepairMessage {
		h.m.FirewallRepaired()
	}
	return nil
}
