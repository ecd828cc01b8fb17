// Package metrics serves v6bridge's Prometheus metrics: build info, plugin
// API requests, errors and latency by method, networks, endpoints and
// public addresses by mode, the NDP responder's counters, firewall applies
// and repairs, and reconcile errors. It is opt-in (the METRICS setting).
//
// The package reads the rest of the plugin only through what the caller
// passes in (Sources) and what it is told (ObserveRequest, FirewallApplied,
// ...), so it depends on no other v6bridge package. No label has one value
// per address or endpoint: labels are methods, modes, kinds and reasons.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const namespace = "v6bridge"

// Modes are the network modes reported, each always present (0 when none).
var Modes = []string{"nat", "public", "routed", "internal"}

// Network is what the metrics need of one network.
type Network struct {
	Mode string
	// Endpoints on the network, and how many of them have a global
	// (not ULA) address: the public addresses.
	Endpoints, PublicAddrs int
}

// NDP is the NDP responder's counters, as totals since the start.
type NDP struct {
	Received, Answered, Ignored, RateLimited uint64
	// IgnoredReasons splits Ignored by reason (a small fixed set).
	IgnoredReasons map[string]uint64
	// Solicited is advertisements sent as answers, Unsolicited the
	// announcements.
	Solicited, Unsolicited uint64
	// Addrs and Ranges answered for now.
	Addrs, Ranges int
}

// Sources are read at every scrape; nil ones are left out.
type Sources struct {
	Networks func() []Network
	NDP      func() NDP
}

// Metrics holds v6bridge's collectors in a registry of its own.
type Metrics struct {
	reg        *prometheus.Registry
	requests   *prometheus.CounterVec
	errors     *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	fwApplies  *prometheus.CounterVec
	fwErrors   *prometheus.CounterVec
	fwRepairs  prometheus.Counter
	reconciles prometheus.Counter
	recErrors  prometheus.Counter
	upChanges  *prometheus.CounterVec
	reattaches *prometheus.CounterVec
	reattErrs  *prometheus.CounterVec
	state      *state
}

// New builds the metrics of a v6bridge of the given version.
func New(version string, src Sources) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), state: &state{src: src}}
	build := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "build_info",
		Help:        "v6bridge's version and Go version; always 1.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()}})
	build.Set(1)
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Subsystem: "api", Name: "requests_total",
		Help: "Plugin API requests from the engine, by method (e.g. NetworkDriver.Join)."}, []string{"method"})
	m.errors = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Subsystem: "api", Name: "request_errors_total",
		Help: "Plugin API requests answered with an error, by method."}, []string{"method"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Subsystem: "api", Name: "request_duration_seconds",
		Help:    "Time to answer a plugin API request, by method.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}}, []string{"method"})
	m.fwApplies = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Subsystem: "firewall", Name: "applies_total",
		Help: "Firewall changes sent to the kernel: kind full (the whole table) or endpoints (a patch of endpoints' elements)."}, []string{"kind"})
	m.fwErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Subsystem: "firewall", Name: "apply_errors_total",
		Help: "Firewall changes the kernel refused, by kind."}, []string{"kind"})
	m.fwRepairs = prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Subsystem: "firewall", Name: "repairs_total",
		Help: "Times v6bridge's table was changed or deleted behind its back (nft flush ruleset, a firewall reload) and applied again."})
	m.reconciles = prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Subsystem: "reconcile", Name: "runs_total",
		Help: "Reconciles of the kernel with the persisted state."})
	m.recErrors = prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Subsystem: "reconcile", Name: "errors_total",
		Help: "Reconciles that failed."})
	m.upChanges = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Subsystem: "uplink", Name: "changes_total",
		Help: "Changes of the uplinks seen, by kind: " + strings.Join(UplinkChangeKinds, ", ") + "."}, []string{"kind"})
	m.reattaches = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Subsystem: "uplink", Name: "reattachments_total",
		Help: "Re-attachments to an uplink deleted and created again (a new link of the same name), by part: ndp, firewall."}, []string{"part"})
	m.reattErrs = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Subsystem: "uplink", Name: "reattachment_errors_total",
		Help: "Re-attachments that failed, by part."}, []string{"part"})
	for _, k := range []string{"full", "endpoints"} {
		m.fwApplies.WithLabelValues(k)
		m.fwErrors.WithLabelValues(k)
	}
	for _, k := range UplinkChangeKinds {
		m.upChanges.WithLabelValues(k)
	}
	m.reg.MustRegister(build, m.requests, m.errors, m.latency, m.fwApplies, m.fwErrors, m.fwRepairs, m.reconciles, m.recErrors,
		m.upChanges, m.reattaches, m.reattErrs,
		m.state, prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}

// SetSources sets what is read at each scrape, for a caller that builds
// the sources after the metrics (the driver needs the counted firewall).
func (m *Metrics) SetSources(src Sources) {
	m.state.mu.Lock()
	m.state.src = src
	m.state.mu.Unlock()
}

// ObserveRequest counts one plugin API request; it fits api.WithObserver.
func (m *Metrics) ObserveRequest(method string, failed bool, took time.Duration) {
	m.requests.WithLabelValues(method).Inc()
	if failed {
		m.errors.WithLabelValues(method).Inc()
	}
	m.latency.WithLabelValues(method).Observe(took.Seconds())
}

// FirewallApplied counts one firewall change of kind "full" or
// "endpoints", and its failure.
func (m *Metrics) FirewallApplied(kind string, err error) {
	m.fwApplies.WithLabelValues(kind).Inc()
	if err != nil {
		m.fwErrors.WithLabelValues(kind).Inc()
	}
}

// FirewallRepaired counts one repair of the firewall table.
func (m *Metrics) FirewallRepaired() { m.fwRepairs.Inc() }

// Reconciled counts one reconcile and its failure.
func (m *Metrics) Reconciled(err error) {
	m.reconciles.Inc()
	if err != nil {
		m.recErrors.Inc()
	}
}

// UplinkChangeKinds are the kinds of uplink changes counted, each always
// present.
var UplinkChangeKinds = []string{"recreated", "gone", "up", "down", "addrs", "gateway"}

// UplinkChanged counts one change of an uplink, once per kind of it.
func (m *Metrics) UplinkChanged(kinds []string) {
	for _, k := range kinds {
		m.upChanges.WithLabelValues(k).Inc()
	}
}

// UplinkReattached counts one part's re-attachment to a new uplink link,
// and its failure.
func (m *Metrics) UplinkReattached(part string, err error) {
	m.reattaches.WithLabelValues(part).Inc()
	if err != nil {
		m.reattErrs.WithLabelValues(part).Inc()
	}
}

// Handler serves the metrics in Prometheus' formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Serve serves /metrics on l until ctx is done.
func (m *Metrics) Serve(ctx context.Context, l net.Listener) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve metrics: %w", err)
	}
	return nil
}

// CheckAddr checks a METRICS setting: host:port with an IP address or an
// empty host (all addresses) and a port from 1 to 65535; "" is off.
func CheckAddr(addr string) error {
	if addr == "" {
		return nil
	}
	host, port, err := net.SplitHostPort(addr)
	n, perr := strconv.Atoi(port)
	if err != nil || perr != nil || n < 1 || n > 65535 || host != "" && net.ParseIP(host) == nil {
		return fmt.Errorf("METRICS=%q: accepted is an address and port such as 127.0.0.1:9430 or [::1]:9430 (:9430 for all addresses), or empty for off", addr)
	}
	return nil
}

// state reports what is read at scrape time.
type state struct {
	mu  sync.Mutex
	src Sources
}

var (
	descNetworks  = prometheus.NewDesc(namespace+"_networks", "Networks, by mode.", []string{"mode"}, nil)
	descEndpoints = prometheus.NewDesc(namespace+"_endpoints", "Endpoints, by the mode of their network.", []string{"mode"}, nil)
	descPublic    = prometheus.NewDesc(namespace+"_public_addresses", "Endpoints with a global (not ULA) address, by the mode of their network.", []string{"mode"}, nil)
	descReceived  = prometheus.NewDesc(namespace+"_ndp_solicitations_received_total", "Neighbour solicitations the NDP responder received.", nil, nil)
	descAnswered  = prometheus.NewDesc(namespace+"_ndp_solicitations_answered_total", "Neighbour solicitations answered.", nil, nil)
	descIgnored   = prometheus.NewDesc(namespace+"_ndp_solicitations_ignored_total", "Neighbour solicitations not answered, by reason.", []string{"reason"}, nil)
	descLimited   = prometheus.NewDesc(namespace+"_ndp_solicitations_ratelimited_total", "Neighbour solicitations over an answer budget (not answered).", nil, nil)
	descAdverts   = prometheus.NewDesc(namespace+"_ndp_advertisements_sent_total", "Neighbour advertisements sent: solicited (answers) or unsolicited (announcements).", []string{"kind"}, nil)
	descTargets   = prometheus.NewDesc(namespace+"_ndp_targets", "What the NDP responder answers for now: addresses and ranges (NDP_RANGE).", []string{"kind"}, nil)
)

func (s *state) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descNetworks, descEndpoints, descPublic, descReceived, descAnswered, descIgnored, descLimited, descAdverts, descTargets} {
		ch <- d
	}
}

func (s *state) Collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	src := s.src
	s.mu.Unlock()
	if src.Networks != nil {
		nets, eps, pub := map[string]int{}, map[string]int{}, map[string]int{}
		for _, n := range src.Networks() {
			nets[n.Mode]++
			eps[n.Mode] += n.Endpoints
			pub[n.Mode] += n.PublicAddrs
		}
		for _, mode := range Modes {
			ch <- prometheus.MustNewConstMetric(descNetworks, prometheus.GaugeValue, float64(nets[mode]), mode)
			ch <- prometheus.MustNewConstMetric(descEndpoints, prometheus.GaugeValue, float64(eps[mode]), mode)
			ch <- prometheus.MustNewConstMetric(descPublic, prometheus.GaugeValue, float64(pub[mode]), mode)
		}
	}
	if src.NDP != nil {
		n := src.NDP()
		counter := func(d *prometheus.Desc, v uint64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
		}
		counter(descReceived, n.Received)
		counter(descAnswered, n.Answered)
		counter(descLimited, n.RateLimited)
		var rest uint64
		for reason, v := range n.IgnoredReasons {
			counter(descIgnored, v, reason)
			rest += v
		}
		if n.Ignored > rest { // ignored without a reason given
			counter(descIgnored, n.Ignored-rest, "other")
		}
		counter(descAdverts, n.Solicited, "solicited")
		counter(descAdverts, n.Unsolicited, "unsolicited")
		ch <- prometheus.MustNewConstMetric(descTargets, prometheus.GaugeValue, float64(n.Addrs), "address")
		ch <- prometheus.MustNewConstMetric(descTargets, prometheus.GaugeValue, float64(n.Ranges), "range")
	}
}
