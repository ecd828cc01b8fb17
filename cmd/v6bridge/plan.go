package main

import (
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/v6bridge/v6bridge/internal/hostos"
	"github.com/v6bridge/v6bridge/ipam"
	"github.com/v6bridge/v6bridge/link"
	"github.com/v6bridge/v6bridge/plan"
)

func planCmd(args []string) error {
	fs := flag.NewFlagSet("plan", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: v6bridge plan [--public PREFIX] [--ula auto|PREFIX] [--host-id N] [--json] [flags]
       v6bridge plan --swarm --site ULA/48 --host NAME=PUBLIC/64[,id=N] ... [--json]

NAME
    v6bridge plan - print the address plan of this host

DESCRIPTION
    Prints the plan the seed writes by hand, as v6bridge follows it: the
    host's public address and prefix with a /112 per public network, a ULA
    /48 unique to this host, this host's ULA /64 inside it with a /112 per
    nat or internal network. Then the matching compose networks: block, the
    plugin settings (docker plugin set, or the host service's environment),
    and warnings about the seed's pitfalls: a public range that contains the
    host's address, a /64 given to a bridge while the uplink uses that /64,
    a ULA outside fd00::/8 or copied from an example.

    Networks created without --subnet get the next free subnet of this plan
    (--ipam-opt v6bridge.mode=public for a public one). The command changes
    nothing; it reads the host's addresses and routes, and the ULA the
    plugin generated under --state-dir.

    With --swarm it prints the plan of a Docker Swarm instead, read from the
    flags only: for each --host its public prefix, host id, ULA /64 of the
    --site ULA, networks, plugin settings and config-only network commands,
    and the swarm-scoped network commands to run once on a manager. It
    refuses hosts whose public prefixes or ULA /64s overlap. See
    docs/swarm.md.

FLAGS
`)
		fs.PrintDefaults()
		fmt.Fprint(fs.Output(), `
EXAMPLES
    v6bridge plan
    v6bridge plan --public 2001:db8:1234:a1::/64 --ula fd12:3456:789a::/48 --host-id 0x8101
    v6bridge plan --json
    v6bridge plan --swarm --site fd3c:9a41:7e02::/48 --host vps1=2001:db8:1234:a1::/64 --host vps2=2001:db8:1234:a2::/64,id=2
`)
	}
	publicS := fs.String("public", env("PUBLIC_PREFIX", ""), "public prefix (PUBLIC_PREFIX); empty: the uplink's on-link global /64")
	ulaS := fs.String("ula", env("ULA_PREFIX", "auto"), "ULA prefix (ULA_PREFIX), or auto: the one the plugin generated, else a new random /48")
	hostID := fs.String("host-id", "0", "which /64 of the ULA is this host's (0 is what the plugin carves from; decimal or 0x hex)")
	pubLen := fs.Int("public-len", envInt("PUBLIC_SUBNET_LEN", plan.DefaultSubnetLen), "length of a public network (PUBLIC_SUBNET_LEN)")
	ulaLen := fs.Int("ula-len", envInt("ULA_SUBNET_LEN", plan.DefaultSubnetLen), "length of a nat or internal network (ULA_SUBNET_LEN)")
	stateDir := fs.String("state-dir", env("STATE_DIR", "/var/lib/v6bridge"), "the plugin's state directory, for the ULA it generated [STATE_DIR]")
	uplinkS := fs.String("uplink", env("UPLINK", ""), "outside interface; empty: the IPv6 default route's [UPLINK]")
	driverName := fs.String("driver", "v6bridge:latest", "driver name in the compose block and settings (v6bridge for the host service)")
	asJSON := fs.Bool("json", false, "print JSON")
	sw := swarmFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := sw.misplaced(); err != nil {
		return err
	}
	// The settings are checked as serve checks them, with the same words:
	// the plan never prints settings the plugin refuses at start.
	c := serveConfig{publicLen: *pubLen, ulaLen: *ulaLen}
	if err := parsePlanFlags(&c, *publicS, *ulaS); err != nil {
		return fmt.Errorf("plan: %w", err)
	}
	if sw.on {
		return sw.run(*pubLen, *ulaLen, *driverName, *asJSON)
	}
	in := plan.Input{PublicLen: *pubLen, ULALen: *ulaLen, Driver: *driverName, Public: c.publicPrefix}
	id, err := strconv.ParseUint(*hostID, 0, 64)
	if err != nil {
		return fmt.Errorf("--host-id=%q: accepted is a number such as 0, 5 or 0x8101", *hostID)
	}
	in.HostID = id
	if c.ulaPrefix.IsValid() {
		in.ULA, in.ULASource = c.ulaPrefix, "given"
	} else {
		p, ok, err := ipam.LoadULA(filepath.Join(*stateDir, "ipam"))
		switch {
		case err != nil:
			return err
		case ok:
			in.ULA, in.ULASource = p, "persisted"
		default:
			if in.ULA, err = plan.NewULA(nil); err != nil {
				return err
			}
			in.ULASource = "generated"
		}
	}

	// What the host says; a host without an uplink still gets a plan.
	log := logrus.New()
	log.SetOutput(os.Stderr)
	k, err := link.New(link.Config{Log: log})
	if err != nil {
		return err
	}
	defer k.Close()
	if in.HostAddrs, err = k.HostAddrs(); err != nil {
		fmt.Fprintln(os.Stderr, "v6bridge plan: warning:", err)
	}
	if uplinks, err := resolveUplinks(*uplinkS, k); err != nil {
		fmt.Fprintln(os.Stderr, "v6bridge plan: warning:", err)
	} else {
		host := hostos.New(k, uplinks, netip.Prefix{}, log)
		in.Uplink = strings.Join(uplinks, ",")
		in.UplinkPrefixes = host.PublicPrefixes()
		in.Gateways, _ = host.DefaultGateways()
		if !in.Public.IsValid() {
			in.Public, _ = host.PublicPrefix()
		}
	}
	p := plan.Build(in)
	if *asJSON {
		return p.WriteJSON(os.Stdout)
	}
	return p.WriteText(os.Stdout)
}

// envInt is env for integers; a value that is not one is left for the
// flag's own check to report.
func envInt(key string, def int) int {
	if v := os.Getenv(key); v != "" {
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
		return -1
	}
	return def
}

// parsePlanFlags checks the plan settings of serve. ipam checks the ULA
// and the lengths again; this names the setting as the user typed it.
func parsePlanFlags(c *serveConfig, public, ula string) error {
	var err error
	if c.publicPrefix, err = plan.ParsePublic("PUBLIC_PREFIX", public); err != nil {
		return err
	}
	if c.ulaPrefix, err = plan.ParseULA("ULA_PREFIX", ula); err != nil {
		return err
	}
	for _, l := range []struct {
		key  string
		bits int
	}{{"PUBLIC_SUBNET_LEN", c.publicLen}, {"ULA_SUBNET_LEN", c.ulaLen}} {
		if l.bits < ipam.MinPrefixLen || l.bits > ipam.MaxPrefixLen {
			return fmt.Errorf("%s: accepted are %d to %d (a number)", l.key, ipam.MinPrefixLen, ipam.MaxPrefixLen)
		}
	}
	return nil
}
