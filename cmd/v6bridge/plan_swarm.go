package main

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"

	"github.com/v6bridge/v6bridge/plan"
)

// swarmOpts are the flags of `v6bridge plan --swarm`.
type swarmOpts struct {
	on    bool
	site  string
	hosts []plan.SwarmHost
}

func swarmFlags(fs *flag.FlagSet) *swarmOpts {
	o := &swarmOpts{}
	fs.BoolVar(&o.on, "swarm", false, "print the plan of a Docker Swarm of the --host hosts instead of this host's")
	fs.StringVar(&o.site, "site", "", "with --swarm: the swarm's ULA /48 (each host gets the /64 of its id), or auto for a new random one")
	fs.Func("host", "with --swarm: a host as NAME=PUBLIC_PREFIX[,id=N] (repeat for each host; ids default to 1, 2, ... in order)", func(v string) error {
		h, err := plan.ParseSwarmHost(v)
		if err != nil {
			return err
		}
		o.hosts = append(o.hosts, h)
		return nil
	})
	return o
}

// misplaced refuses --site and --host without --swarm.
func (o *swarmOpts) misplaced() error {
	if !o.on && (o.site != "" || len(o.hosts) > 0) {
		return errors.New("plan: --site and --host describe a swarm: add --swarm, or use --ula and --host-id for this host's plan")
	}
	return nil
}

// run builds and prints the swarm plan; it reads nothing from this host.
func (o *swarmOpts) run(pubLen, ulaLen int, driver string, asJSON bool) error {
	in := plan.SwarmInput{Hosts: o.hosts, PublicLen: pubLen, ULALen: ulaLen, Driver: driver}
	generated := false
	switch o.site {
	case "":
		return errors.New("plan --swarm: --site is required: the swarm's ULA /48 such as fd3c:9a41:7e02::/48, or auto for a new random one (keep it: every host's plan comes from it)")
	case "auto":
		p, err := plan.NewULA(nil)
		if err != nil {
			return err
		}
		in.Site, generated = p, true
	default:
		p, err := netip.ParsePrefix(o.site)
		if err != nil {
			return fmt.Errorf("--site=%q is not a prefix: accepted is a /48 of fd00::/8 such as fd3c:9a41:7e02::/48, or auto", o.site)
		}
		in.Site = p
	}
	p, err := plan.BuildSwarm(in)
	if err != nil {
		return fmt.Errorf("plan --swarm: %w", err)
	}
	if generated {
		p.Warnings = append(p.Warnings, fmt.Sprintf("site %s was generated now: pass --site %s from now on, or the next plan differs", p.Site, p.Site))
	}
	if asJSON {
		return p.WriteJSON(os.Stdout)
	}
	return p.WriteText(os.Stdout)
}
