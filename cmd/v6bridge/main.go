// Command v6bridge is the v6bridge Docker network and IPAM plugin.
//
//	v6bridge serve    run the plugin (managed plugin entrypoint, or a host service)
//	v6bridge status   show networks, endpoints, published ports and NDP from the running plugin
//	v6bridge plan     print the address plan, its compose networks and plugin settings
//	v6bridge doctor   check the host for what v6bridge needs
//	v6bridge gc       list (and with --apply remove) state nothing uses any more
//	v6bridge migrate  translate ndppd, daemon.json and compose networks to v6bridge
//	v6bridge version  print the version
package main

import (
	"flag"
	"fmt"
	"os"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `usage: v6bridge COMMAND [flags]

Commands:
  serve     run the plugin: NetworkDriver and IpamDriver on one socket
  status    show what the running plugin manages (networks, endpoints,
            published ports, NDP answers)
  plan      print the address plan (public /64, ULA /48, a /112 per
            network), its compose networks: block and plugin settings
  doctor    check the host: IPv6, forwarding, accept_ra, uplink, nftables,
            firewalls, ndppd/docker-ipv6nat, engine version; exit 1 on fail
  gc        list state the plugin keeps that the engine no longer uses
            (networks, pools, endpoint names); --apply removes it
  migrate   translate ndppd.conf, daemon.json and compose networks on the
            built-in bridge (and docker-ipv6nat) into v6bridge settings,
            networks and compose files, with the steps to switch over
  version   print the version

Run 'v6bridge COMMAND -h' for a command's flags.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "serve":
		err = serve(args)
	case "status":
		err = status(args)
	case "plan":
		err = planCmd(args)
	case "doctor":
		err = doctorCmd(args)
	case "gc":
		err = gcCmd(args)
	case "migrate":
		err = migrateCmd(args, os.Stdout, runningConflicts)
	case "version", "--version":
		fmt.Println("v6bridge", version)
	case "help", "-h", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "v6bridge: unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "v6bridge:", err)
		os.Exit(1)
	}
}

// env returns the environment variable key, or def if it is unset or empty.
func env(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// parseFlags parses a command's flags: the commands take no arguments, so
// one is refused, named with the command's help.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected argument %q: see v6bridge %s -h", fs.Name(), fs.Arg(0), fs.Name())
	}
	return nil
}

// trueFalse parses the value of the true/false setting name (FASTPATH,
// NDP_INGRESS_FILTER), refusing anything else with what is accepted.
func trueFalse(name, v string) (bool, error) {
	switch v {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, fmt.Errorf("%s=%q: accepted are true, false", name, v)
}
