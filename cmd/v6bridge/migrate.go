package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/v6bridge/v6bridge/doctor"
	"github.com/v6bridge/v6bridge/migrate"
)

// stringsFlag is a repeatable string flag.
type stringsFlag []string

func (s *stringsFlag) String() string     { return strings.Join(*s, ",") }
func (s *stringsFlag) Set(v string) error { *s = append(*s, v); return nil }

// writtenMark starts every file migrate writes; it overwrites only those.
const writtenMark = "# Written by v6bridge migrate"

func migrateCmd(args []string, stdout io.Writer, procs func() []migrate.Process) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: v6bridge migrate [--ndppd FILE] [--daemon-json FILE] [--compose FILE]... [--write]

NAME
    v6bridge migrate - translate ndppd, docker-ipv6nat and built-in bridge networks

DESCRIPTION
    Reads ndppd.conf (proxies and rules), the engine's daemon.json (ipv6,
    fixed-cidr-v6, ip6tables, default-address-pools) and compose files
    (networks on the built-in bridge, a docker-ipv6nat service), looks for a
    running ndppd or docker-ipv6nat, and prints the v6bridge equivalent: the
    plugin settings, docker network create lines, each compose file's
    networks: block rewritten for v6bridge (driver and IPAM driver v6bridge,
    enable_ipv6, the subnets kept or carved from the plan), and the steps to
    switch over without losing reachability (ndppd stops only after v6bridge
    answers). What it cannot translate it lists, and exits 1.

    With --write it writes each compose file's translation next to it
    (compose.yml -> compose.v6bridge.yml) and the settings as v6bridge.env
    (KEY=VALUE, a systemd EnvironmentFile) next to the first file read; it
    overwrites only files it wrote itself, and writes nothing while
    something cannot be translated. It changes nothing else.

    Without any file flag it reads /etc/ndppd.conf and
    /etc/docker/daemon.json, those that exist.

FLAGS
`)
		fs.PrintDefaults()
		fmt.Fprint(fs.Output(), `
EXAMPLES
    v6bridge migrate --ndppd /etc/ndppd.conf --compose docker-compose.yml
    v6bridge migrate --daemon-json /etc/docker/daemon.json --compose a.yml --compose b.yml --write
`)
	}
	ndppdPath := fs.String("ndppd", "", "ndppd.conf to translate")
	daemonPath := fs.String("daemon-json", "", "the engine's daemon.json to translate")
	var composes stringsFlag
	fs.Var(&composes, "compose", "a compose file to translate (repeatable)")
	driverName := fs.String("driver", "v6bridge:latest", "driver name written (v6bridge for the host service)")
	write := fs.Bool("write", false, "write the translations next to the originals")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *ndppdPath == "" && *daemonPath == "" && len(composes) == 0 {
		for _, d := range []struct {
			p    *string
			path string
		}{{ndppdPath, "/etc/ndppd.conf"}, {daemonPath, "/etc/docker/daemon.json"}} {
			if _, err := os.Stat(d.path); err == nil {
				*d.p = d.path
			}
		}
		if *ndppdPath == "" && *daemonPath == "" {
			return errors.New("migrate: nothing to translate: no /etc/ndppd.conf or /etc/docker/daemon.json; give --ndppd, --daemon-json or --compose")
		}
	}

	in := migrate.Input{Driver: *driverName}
	if procs != nil {
		in.Running = procs()
	}
	var first string
	if *ndppdPath != "" {
		b, err := os.ReadFile(*ndppdPath)
		if err != nil {
			return fmt.Errorf("migrate: --ndppd: %w", err)
		}
		n, err := migrate.ParseNdppd(*ndppdPath, string(b))
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		in.Ndppd, in.NdppdPath, first = &n, *ndppdPath, *ndppdPath
	}
	if *daemonPath != "" {
		b, err := os.ReadFile(*daemonPath)
		if err != nil {
			return fmt.Errorf("migrate: --daemon-json: %w", err)
		}
		d, err := migrate.ParseDaemon(*daemonPath, b)
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		in.Daemon, in.DaemonPath = &d, *daemonPath
		if first == "" {
			first = *daemonPath
		}
	}
	for _, c := range composes {
		b, err := os.ReadFile(c)
		if err != nil {
			return fmt.Errorf("migrate: --compose: %w", err)
		}
		in.Compose = append(in.Compose, migrate.ComposeFile{Path: c, Data: b})
		if first == "" {
			first = c
		}
	}
	r := migrate.Build(in)
	if *write && len(r.Refusals) == 0 {
		files := map[string]string{}
		var order []string
		for _, c := range r.Compose {
			files[c.OutPath] = c.Text
			order = append(order, c.OutPath)
		}
		if len(r.Settings) > 0 {
			var b strings.Builder
			fmt.Fprintf(&b, "%s: settings of the v6bridge host service (EnvironmentFile=), or docker plugin set %s KEY=VALUE...\n", writtenMark, r.Driver)
			for _, s := range r.Settings {
				fmt.Fprintf(&b, "%s=%s\n", s.Key, s.Value)
			}
			p := filepath.Join(filepath.Dir(first), "v6bridge.env")
			files[p] = b.String()
			order = append(order, p)
		}
		for _, p := range order {
			if old, err := os.ReadFile(p); err == nil && !strings.HasPrefix(string(old), writtenMark) {
				return fmt.Errorf("migrate: %s exists and was not written by v6bridge migrate: move it away first", p)
			}
		}
		for _, p := range order {
			if err := os.WriteFile(p, []byte(files[p]), 0o644); err != nil {
				return fmt.Errorf("migrate: %w", err)
			}
			r.Wrote = append(r.Wrote, p)
		}
	}
	if err := r.WriteText(stdout); err != nil {
		return err
	}
	if n := len(r.Refusals); n > 0 {
		return fmt.Errorf("migrate: %d things cannot be translated (listed above)", n)
	}
	return nil
}

// runningConflicts is the real process scan of migrate.
func runningConflicts() []migrate.Process {
	var out []migrate.Process
	for _, p := range doctor.ConflictingProcs(filepath.Dir(env("PROC_SYS", "/proc/sys"))) {
		out = append(out, migrate.Process{PID: p.PID, Name: p.Name})
	}
	return out
}
