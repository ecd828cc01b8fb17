package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof" // served only with -pprof
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/v6bridge/v6bridge/driver"
	"github.com/v6bridge/v6bridge/internal/api"
	"github.com/v6bridge/v6bridge/internal/hostos"
	"github.com/v6bridge/v6bridge/internal/instance"
	"github.com/v6bridge/v6bridge/internal/nftledger"
	"github.com/v6bridge/v6bridge/internal/store"
	"github.com/v6bridge/v6bridge/ipam"
	"github.com/v6bridge/v6bridge/link"
	"github.com/v6bridge/v6bridge/metrics"
	"github.com/v6bridge/v6bridge/nat"
	"github.com/v6bridge/v6bridge/ndp"
	"github.com/v6bridge/v6bridge/netspec"
	"github.com/v6bridge/v6bridge/portfwd"
	"github.com/v6bridge/v6bridge/ra"
)

type serveConfig struct {
	socket, stateDir, procSys, logLevel, uplinks string
	ndpMode, ndpSource                           string
	ndpRange, ndpPrime, ndpIngress, fastPath     bool
	pprof, metrics                               string
	// the address plan
	publicPrefix, ulaPrefix netip.Prefix // zero: the uplink's /64; generated
	publicLen, ulaLen       int
}

func serveFlags(args []string) (serveConfig, error) {
	var c serveConfig
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: v6bridge serve [flags]

Runs the plugin: the NetworkDriver and IpamDriver APIs on one unix socket.
As a managed plugin (docker plugin install/create) the engine starts it; as
a host service start it before dockerd (see the systemd unit in docs/) and
use the bare driver name "v6bridge".

Every flag defaults from the environment variable named in brackets.

`)
		fs.PrintDefaults()
	}
	fs.StringVar(&c.socket, "socket", env("SOCKET", "/run/docker/plugins/v6bridge.sock"), "unix socket to serve [SOCKET]")
	fs.StringVar(&c.stateDir, "state-dir", env("STATE_DIR", "/var/lib/v6bridge"), "state directory; must survive plugin upgrades [STATE_DIR]")
	fs.StringVar(&c.procSys, "proc-sys", env("PROC_SYS", "/proc/sys"), "writable sysctl tree [PROC_SYS]")
	fs.StringVar(&c.logLevel, "log-level", env("LOG_LEVEL", "info"), "panic, fatal, error, warn, info, debug or trace [LOG_LEVEL]")
	fs.StringVar(&c.uplinks, "uplink", env("UPLINK", ""), "outside interface(s), comma separated; empty: the IPv6 default route's [UPLINK]")
	fs.StringVar(&c.ndpMode, "ndp-proxy", env("NDP_PROXY", "native"), "native, kernel or off [NDP_PROXY]")
	fs.StringVar(&c.ndpSource, "ndp-source", env("NDP_SOURCE", "linklocal"), "source of advertisements: linklocal, target or global [NDP_SOURCE]")
	fs.BoolVar(&c.ndpRange, "ndp-range", env("NDP_RANGE", "false") == "true", "answer NDP for whole public subnets [NDP_RANGE]")
	fs.BoolVar(&c.ndpPrime, "ndp-prime", env("NDP_PRIME", "false") == "true", "when an address starts, also solicit the uplink's router from it, so the router learns it before any traffic [NDP_PRIME]")
	ndpIngress := fs.String("ndp-ingress-filter", env("NDP_INGRESS_FILTER", "true"), "true: drop solicitations for addresses of the uplink's prefixes nobody here answers for at the uplink's ingress (nftables netdev table v6bridge-ndp-UPLINK), before the kernel spends time on them, and (NDP_PROXY=native) answer the router's solicitations for public containers there, in the kernel [NDP_INGRESS_FILTER]")
	fs.StringVar(&c.pprof, "pprof", env("PPROF", ""), "serve net/http/pprof on this loopback address, e.g. 127.0.0.1:6060; off when empty [PPROF]")
	fs.StringVar(&c.metrics, "metrics", env("METRICS", ""), "serve Prometheus /metrics on this address, e.g. 127.0.0.1:9430; off when empty [METRICS]")
	fastPath := fs.String("fastpath", env("FASTPATH", "false"), "true: hand established tcp/udp connections to an nftables flowtable (fast path) when the kernel has flowtables; offloaded connections skip every forward chain, other firewalls' too (docs/fastpath.md); false: every packet takes the forward chain [FASTPATH]")
	publicS := fs.String("public-prefix", env("PUBLIC_PREFIX", ""), "where automatic public subnets come from; empty: the uplink's on-link global /64 [PUBLIC_PREFIX]")
	ulaS := fs.String("ula-prefix", env("ULA_PREFIX", ""), "a /48 to /64 of fd00::/8 for automatic nat/internal subnets (its first /64); empty or auto: random, generated once [ULA_PREFIX]")
	fs.IntVar(&c.publicLen, "public-subnet-len", envInt("PUBLIC_SUBNET_LEN", 112), "prefix length of automatic public subnets [PUBLIC_SUBNET_LEN]")
	fs.IntVar(&c.ulaLen, "ula-subnet-len", envInt("ULA_SUBNET_LEN", 112), "prefix length of automatic nat/internal subnets [ULA_SUBNET_LEN]")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if err := parsePlanFlags(&c, *publicS, *ulaS); err != nil {
		return c, err
	}
	if err := metrics.CheckAddr(c.metrics); err != nil {
		return c, err
	}
	var err error
	if c.fastPath, err = trueFalse("FASTPATH", *fastPath); err != nil {
		return c, err
	}
	if c.ndpIngress, err = trueFalse("NDP_INGRESS_FILTER", *ndpIngress); err != nil {
		return c, err
	}
	switch c.ndpMode {
	case "native", "kernel", "off":
	default:
		return c, fmt.Errorf("NDP_PROXY=%q: accepted are native, kernel, off", c.ndpMode)
	}
	switch c.ndpSource {
	case "linklocal", "target", "global":
	default:
		return c, fmt.Errorf("NDP_SOURCE=%q: accepted are linklocal, target, global", c.ndpSource)
	}
	if c.pprof != "" && !loopbackAddr(c.pprof) {
		return c, fmt.Errorf("PPROF=%q: pprof has no authentication and shows the process's memory, so only a loopback address is served: accepted are addresses like 127.0.0.1:6060, [::1]:6060 or localhost:6060", c.pprof)
	}
	return c, checkSettings(c)
}

// checkSettings refuses settings that are valid one by one but not
// together, naming both: the plugin would start and then fail every public
// network creation.
func checkSettings(c serveConfig) error {
	if c.ndpRange && c.ndpMode != "native" {
		return fmt.Errorf("NDP_RANGE=true with NDP_PROXY=%s: only the native responder answers for whole subnets; accepted are NDP_PROXY=native with NDP_RANGE=true, or NDP_RANGE=false", c.ndpMode)
	}
	return nil
}

// loopbackAddr reports whether hostport is host:port with a loopback host.
func loopbackAddr(hostport string) bool {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil || port == "" {
		return false
	}
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

func serve(args []string) error {
	c, err := serveFlags(args)
	if err != nil {
		return err
	}
	log := logrus.New()
	// The engine logs a managed plugin's stderr as errors: write to stdout.
	log.SetOutput(os.Stdout)
	lvl, err := logrus.ParseLevel(c.logLevel)
	if err != nil {
		return fmt.Errorf("LOG_LEVEL=%q: accepted are panic, fatal, error, warn, info, debug, trace", c.logLevel)
	}
	log.SetLevel(lvl)
	start := time.Now()

	// One instance per state directory: a second one would sweep the
	// first one's links and fight over the firewall table.
	lock, err := instance.Acquire(c.stateDir, instance.Holder{PID: os.Getpid(), Socket: c.socket, StateDir: c.stateDir,
		Since: start.UTC().Format(time.RFC3339)})
	if err != nil {
		return err
	}
	defer lock.Release()
	// Bind the socket first: the engine gives a managed plugin a few seconds
	// to accept, and connections wait in the backlog until Serve runs.
	l, err := listenUnix(c.socket)
	if err != nil {
		return err
	}
	defer l.Close()
	log.WithField("socket", c.socket).Info("listening")
	mountinfo, _ := os.ReadFile("/proc/self/mountinfo")
	hostDir := instance.HostPath(mountinfo, c.stateDir)
	id, created, err := instance.LoadIdentity(c.stateDir, hostDir)
	if err != nil {
		return err
	}
	log.WithFields(logrus.Fields{"instance": id.ID, "state": c.stateDir, "host_path": hostDir, "new": created}).Info("state directory")
	var quarantined int
	q := &store.Quarantine{Dir: filepath.Join(c.stateDir, "quarantine"), Report: func(file, to string, err error) {
		quarantined++
		log.WithError(err).WithFields(logrus.Fields{"file": file, "moved_to": to}).Error("unreadable state entry set aside; starting without it")
	}}

	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()

	k, err := link.New(link.Config{ProcSys: c.procSys, BridgePrefix: netspec.BridgePrefix, VethPrefix: netspec.HostVethPrefix,
		Mark: instance.Mark(id.ID, hostDir), Log: log})
	if err != nil {
		return err
	}
	defer k.Close()
	uplinks, err := resolveUplinks(c.uplinks, k)
	if err != nil {
		return err
	}
	log.WithField("iface", strings.Join(uplinks, ",")).Info("uplinks")
	host := hostos.New(k, uplinks, c.publicPrefix, log)
	// The driver, made below, says which subnets its networks use; the
	// IPAM asks only once requests are served.
	var d *driver.Driver
	referenced := func(p netip.Prefix) bool { return d == nil || d.UsesSubnet(p) }
	held := func(a netip.Addr) bool { return d != nil && d.HoldsAddr(a) }
	im, err := ipam.New(ipam.Config{Referenced: referenced, Held: held, StateDir: filepath.Join(c.stateDir, "ipam"), Host: host,
		ULAPrefix: c.ulaPrefix, PublicSubnetLen: c.publicLen, ULASubnetLen: c.ulaLen, Quarantine: q, Log: log})
	if err != nil {
		return err
	}
	// The NDP ingress filter commits a batch per Join in a table of its
	// own; the ledger lets the firewall patch on top without a listing.
	ledger := &nftledger.Ledger{}
	fw, err := nat.NewTable(nat.TableConfig{Log: log, FastPath: c.fastPath, Ledger: ledger})
	if err != nil {
		return err
	}
	var firewall driver.Firewall = fw
	var m *metrics.Metrics
	if c.metrics != "" {
		m = metrics.New(version, metrics.Sources{})
		firewall = countingFirewall{fw, m}
		log.AddHook(repairHook{m})
	}
	follower, err := newUplinkFollower(uplinks, m, log)
	if err != nil {
		return err
	}
	defer follower.Close()
	resp, err := ndp.NewResponder(ndp.Config{Uplinks: uplinks, Mode: c.ndpMode, Source: c.ndpSource, ProcSys: c.procSys, PrimeRouter: c.ndpPrime, NoIngressFilter: !c.ndpIngress, Followed: true, Ledger: ledger, Log: log})
	if err != nil {
		return err
	}
	defer resp.Close()
	routers := ra.New(log)
	defer routers.Close()
	proxies := portfwd.New(log, portfwd.Limits{})
	defer proxies.Close()
	st, err := driver.OpenDiskStore(filepath.Join(c.stateDir, "driver"))
	if err != nil {
		return err
	}
	st.SetQuarantine(q)
	// Set unreadable records aside before the driver loads: the links of
	// a quarantined network or endpoint are not orphans.
	before := quarantined
	if _, _, err := st.Load(); err != nil {
		return err
	}
	noSweep := ""
	if quarantined > before {
		noSweep = fmt.Sprintf("%d driver records were set aside in %s; their links stay until they are restored or deleted by hand", quarantined-before, q.Dir)
	}
	d, err = driver.New(driver.Config{
		Links: k, Firewall: firewall, Neighbors: resp, Store: st,
		Uplinks: uplinks, Host: host,
		NDPRange: c.ndpRange, PoolMode: im.PoolMode, Routers: routers, Forwarder: proxies, Instance: id.ID, StateDir: hostDir, NoSweep: noSweep, Log: log,
	})
	if err != nil {
		return err
	}
	err = d.Reconcile()
	if m != nil {
		m.Reconciled(err)
	}
	if err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	took := time.Since(start).Round(time.Millisecond)
	// Start-up read every link, address, rule and record of the host once:
	// hand that memory back before serving, so the plugin's resident size
	// is what serving needs, not the peak of reconciling.
	debug.FreeOSMemory()
	log.WithField("took", took).Info("reconciled kernel state")

	go func() {
		if err := resp.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			log.WithError(err).Error("ndp responder stopped")
		}
	}()
	// Repairs on nftables change events; the interval is only a safety net.
	go fw.Watch(ctx, 30*time.Second)
	tellUplinkParts(follower, resp, d)
	go follower.Run(ctx)
	if c.pprof != "" {
		srv := &http.Server{Addr: c.pprof, ReadHeaderTimeout: api.ReadHeaderTimeout, IdleTimeout: api.IdleTimeout}
		go func() { log.WithError(srv.ListenAndServe()).Warn("pprof stopped") }()
	}

	status := func() any { return buildStatus(d, im, resp, proxies, follower, host.PublicPrefixes) }
	var opts []api.Option
	if m != nil {
		m.SetSources(metricsSources(d, resp))
		ml, err := net.Listen("tcp", c.metrics)
		if err != nil {
			return fmt.Errorf("METRICS=%q: %w", c.metrics, err)
		}
		log.WithField("addr", ml.Addr().String()).Info("serving metrics")
		go func() {
			if err := m.Serve(ctx, ml); err != nil {
				log.WithError(err).Warn("metrics stopped")
			}
		}()
		opts = append(opts, api.WithObserver(m.ObserveRequest))
	}
	h := api.NewHandler(d, im, status, log, opts...)
	h.HandleFunc("/v6bridge.GC", serveGC(d, im, log))
	go gcLoop(ctx, im, 5*time.Minute, log)
	go warnEngineBug(ctx, "", log)
	errc := make(chan error, 1)
	go func() { errc <- h.Serve(l) }()
	select {
	case <-ctx.Done():
		// Leave the data path in place: containers keep their connectivity
		// while the plugin is stopped, disabled or upgraded, and the
		// kernel answers NDP for them until the next start takes over.
		log.Info("stopping; networks stay in place")
		if err := resp.CloseLeavingProxies(); err != nil {
			log.WithError(err).Warn("ndp: hand answering over to the kernel")
		}
		return nil
	case err := <-errc:
		return err
	}
}

// errSocketLive says another process serves the socket.
var errSocketLive = errors.New("socket is served by a running process")

// listenUnix listens on path, replacing a stale socket file but never one
// a live process answers on (another v6bridge with another state directory).
func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("socket dir: %w", err)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("%w: %s (another v6bridge? `v6bridge status --socket %s` shows it): stop it first, or give this one another SOCKET", errSocketLive, path, path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove stale socket %q: %w", path, err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %q: %w", path, err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		l.Close()
		return nil, fmt.Errorf("chmod %q: %w", path, err)
	}
	return l, nil
}

func resolveUplinks(spec string, k *link.Kernel) ([]string, error) {
	var out []string
	for _, u := range strings.Split(spec, ",") {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	if len(out) > 0 {
		for _, u := range out {
			if ok, err := k.LinkExists(u); err != nil || !ok {
				return nil, fmt.Errorf("UPLINK=%q: no interface %q on this host", spec, u)
			}
		}
		return out, nil
	}
	u, err := k.DefaultRouteUplink()
	if err != nil {
		return nil, fmt.Errorf("find the uplink (no UPLINK set): %w", err)
	}
	return []string{u}, nil
}
