package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/v6bridge/v6bridge/doctor"
)

// errDoctorFailed makes main exit non-zero after doctor printed a fail.
var errDoctorFailed = errors.New("doctor: at least one check failed")

func doctorCmd(args []string) error {
	fs := flag.NewFlagSet("doctor", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: v6bridge doctor [--json] [flags]

NAME
    v6bridge doctor - check this host for what v6bridge needs

DESCRIPTION
    Reads the host (it changes nothing) and judges each of these ok, warn or
    fail, with what it means and how to fix it:

    ipv6            IPv6 is enabled (net.ipv6.conf.all.disable_ipv6=0)
    forwarding      net.ipv6.conf.all.forwarding=1 (v6bridge sets it at start)
    accept_ra       with a default route from router advertisements, the
                    uplink's accept_ra is 2 (else forwarding drops the route)
    uplink          an IPv6 default route, its interface and global address
    nftables        nftables is usable (v6bridge's NAT66 and firewall)
    fastpath        the kernel has nftables flowtables for FASTPATH (checked in
                    a throwaway network namespace)
    ip6tables       no ip6tables FORWARD drop policy that drops v6bridge's
                    traffic (the engine's, when it has DOCKER-USER, is handled)
    ufw, firewalld  firewalls that need the v6b-* bridges allowed
    ndppd           not running: it fights v6bridge's NDP proxy
    docker-ipv6nat  not running: it fights v6bridge's NAT66
    engine          the Docker engine's version (GET /_ping, then /vX/version
                    at the API it names, on DOCKER_HOST)
                    and whether it supports --ipv4=false (Docker >= 28)
    reconcile       networks the running plugin could not bring up at start
    stale state     what v6bridge gc would reclaim: networks the engine does
                    not know, pools and endpoint names nothing uses (asks
                    the plugin at SOCKET; skipped when it does not answer)
    provider        the provider's shape: on-link /64, /64 routed to the
                    host, /124 or /128, and what it means for NDP and modes
    plugin          a running v6bridge answers on its socket (found under
                    /run/docker/plugins, or --socket)
    dns64           the host's resolver synthesises AAAA for ipv4only.arpa
                    (RFC 7050): the NAT64 prefix, a route to it, and with
                    --nat64-probe a TCP connect through it; without DNS64
                    IPv4-only destinations (github.com, ghcr.io) fail

    Run it in the network namespace v6bridge serves (the host's, normally).

EXIT STATUS
    0 when no check fails (warnings allowed); 1 when one does, or on bad
    usage.

FLAGS
`)
		fs.PrintDefaults()
	}
	asJSON := fs.Bool("json", false, "print JSON")
	procSys := fs.String("proc-sys", env("PROC_SYS", "/proc/sys"), "sysctl tree to read [PROC_SYS]")
	proc := fs.String("proc", filepath.Dir(env("PROC_SYS", "/proc/sys")), "proc root scanned for ndppd, docker-ipv6nat, firewalld")
	uplink := fs.String("uplink", env("UPLINK", ""), "outside interface; empty: the IPv6 default route's [UPLINK]")
	dockerHost := fs.String("docker-host", env("DOCKER_HOST", doctor.DefaultDockerHost), "the engine to ask for its version [DOCKER_HOST]")
	socket := socketFlag(fs)
	resolvConf := fs.String("resolv-conf", doctor.DefaultResolvConf, "the resolver asked for ipv4only.arpa (its first nameserver)")
	probe := fs.String("nat64-probe", "", "IPv4 host:port to connect to through the NAT64 prefix, e.g. 140.82.112.3:443; empty: check the route only")
	fastPath := fs.String("fastpath", env("FASTPATH", "false"), "the plugin's FASTPATH setting: false skips the flowtable check [FASTPATH]")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if _, err := trueFalse("FASTPATH", *fastPath); err != nil {
		return err
	}
	if err := doctor.CheckProbe(*probe); err != nil {
		return err
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()
	facts := doctor.Gather(ctx, doctor.Config{ProcSys: *procSys, Proc: *proc, Uplink: *uplink, DockerHost: *dockerHost, Socket: *socket, PluginsDir: pluginsDir,
		ResolvConf: *resolvConf, NAT64Probe: *probe, FastPathOff: *fastPath == "false"})
	findings := doctor.Evaluate(facts)
	req := gcRequest{}
	if ids, err := doctor.EngineNetworks(ctx, *dockerHost); err == nil {
		for id := range ids {
			req.Engine = append(req.Engine, id)
		}
		req.EngineKnown = true
	}
	sock := facts.Plugin.Socket // the one found, when --socket was not given
	if sock == "" {
		sock = *socket
	}
	if r, err := askGC(sock, req); err == nil {
		findings = append(findings, stateFindings(r)...)
	} else {
		findings = append(findings, doctor.Finding{Check: "stale state", Status: doctor.OK,
			Summary: fmt.Sprintf("not checked: no plugin answers at %q (set --socket)", sock)})
	}
	if *asJSON {
		b, err := json.MarshalIndent(struct {
			Facts    doctor.Facts
			Findings []doctor.Finding
		}{facts, findings}, "", "  ")
		if err != nil {
			return err
		}
		fmt.Println(string(b))
	} else if err := doctor.WriteText(os.Stdout, findings); err != nil {
		return err
	}
	if doctor.Failed(findings) {
		return errDoctorFailed
	}
	return nil
}

// warnEngineBug logs a warning when the engine at host ("": DOCKER_HOST,
// else the default socket) runs a version
// with a known bug that breaks v6bridge (doctor.KnownEngineBug). The
// plugin API's handshake names no engine version, and a handler must not
// call the engine (it waits for the plugin while it starts), so this asks
// the engine's API on the side, every 5 s until it answers or a few
// minutes passed. Only a host service can: a managed plugin has no engine
// socket (then it logs at Debug that the version is unknown; doctor asks).
func warnEngineBug(ctx context.Context, host string, log logrus.FieldLogger) {
	if host == "" {
		host = env("DOCKER_HOST", doctor.DefaultDockerHost)
	}
	if strings.HasPrefix(host, "unix://") {
		if _, err := os.Stat(strings.TrimPrefix(host, "unix://")); err != nil {
			log.WithField("docker_host", host).Debug("engine version unknown here (no engine socket, as in a managed plugin): v6bridge doctor checks it")
			return
		}
	}
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for try := 0; try < 60; try++ {
		if e := doctor.AskEngine(ctx, host); e.Err == "" {
			if bug, buggy, _ := doctor.KnownEngineBug(e.Version); buggy {
				log.WithFields(logrus.Fields{"engine": e.Version, "fix": bug.Fix}).Warn(bug.Summary + ": " + bug.Meaning)
			}
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
