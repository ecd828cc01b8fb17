package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/v6bridge/v6bridge/doctor"
	"github.com/v6bridge/v6bridge/driver"
	"github.com/v6bridge/v6bridge/ipam"
)

// gcRequest is what `v6bridge gc` and `doctor` post to /v6bridge.GC.
type gcRequest struct {
	// Engine lists the ids of the engine's networks; EngineKnown says the
	// list is real (the engine answered). Without it networks are not
	// judged, only pools and names.
	Engine      []string `json:",omitempty"`
	EngineKnown bool
	Apply       bool
	// Grace is a Go duration: how old stale pools and free names must be;
	// "": ipam.MinReclaimAge.
	Grace string `json:",omitempty"`
}

// gcReport is what the plugin found (and removed, if Applied).
type gcReport struct {
	Networks []driver.StaleNetwork `json:",omitempty"`
	Pools    []ipam.StalePool      `json:",omitempty"`
	Names    []ipam.StaleName      `json:",omitempty"`
	// Problems are the networks the last start could not bring up.
	Problems map[string]string `json:",omitempty"`
	Applied  bool
	Errors   []string `json:",omitempty"`
}

// runGC finds (and with req.Apply removes) stale state in the plugin:
// networks the engine does not know, then pools and names (ipam.GC).
func runGC(d *driver.Driver, im *ipam.IPAM, req gcRequest) (gcReport, error) {
	grace := ipam.MinReclaimAge
	if req.Grace != "" {
		g, err := time.ParseDuration(req.Grace)
		if err != nil || g < 0 {
			return gcReport{}, fmt.Errorf("grace %q: accepted is a duration such as 10m or 0s", req.Grace)
		}
		grace = g
	}
	r := gcReport{Applied: req.Apply, Problems: d.Problems()}
	if req.EngineKnown {
		known := map[string]bool{}
		for _, id := range req.Engine {
			known[id] = true
		}
		ns, err := d.StaleNetworks(known, req.Apply)
		r.Networks = ns
		if err != nil {
			r.Errors = append(r.Errors, err.Error())
		}
	}
	rec, err := im.GC(grace, req.Apply)
	r.Pools, r.Names = rec.Pools, rec.Names
	if err != nil {
		r.Errors = append(r.Errors, err.Error())
	}
	return r, nil
}

// gcLoop reclaims stale pools and names every interval, with ipam's
// default grace period.
func gcLoop(ctx context.Context, im *ipam.IPAM, every time.Duration, log logrus.FieldLogger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		r, err := im.GC(ipam.DefaultGrace, true)
		if err != nil {
			log.WithError(err).Warn("reclaim stale IPAM state")
		} else if len(r.Pools)+len(r.Names) > 0 {
			log.WithField("reclaimed", r.String()).Info("reclaimed stale IPAM state")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func gcCmd(args []string) error {
	fs := flag.NewFlagSet("gc", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: v6bridge gc [--apply] [flags]

Finds state the running plugin keeps that nothing uses any more, and with
--apply removes it (a dry run by default):

  networks  v6bridge networks the engine does not know (its data was wiped
            or restored from an old backup), with their endpoints, bridge,
            firewall entries and NDP answers
  pools     IPv6 pools no v6bridge network references and no address but
            the gateway uses (they block the same --subnet)
  names     remembered endpoint names whose address has stayed free

It asks the engine (DOCKER_HOST) for its networks and the plugin over its
socket, found as status finds it: without --socket, the host service's
/run/docker/plugins/v6bridge.sock or a managed plugin's
/run/docker/plugins/<plugin id>/v6bridge.sock, the first that answers.
Run it on the host as root (the sockets are root's).

`)
		fs.PrintDefaults()
	}
	apply := fs.Bool("apply", false, "remove what was found (default: only list it)")
	asJSON := fs.Bool("json", false, "print JSON")
	socket := socketFlag(fs)
	dockerHost := fs.String("docker-host", env("DOCKER_HOST", doctor.DefaultDockerHost), "the engine to ask for its networks [DOCKER_HOST]")
	noEngine := fs.Bool("no-engine", false, "do not ask the engine: judge pools and names only, never networks")
	grace := fs.Duration("grace", ipam.MinReclaimAge, "how long a pool must have been unused, or a name's address free")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()
	req := gcRequest{Apply: *apply, Grace: grace.String()}
	if !*noEngine {
		ids, err := doctor.EngineNetworks(ctx, *dockerHost)
		if err != nil {
			return fmt.Errorf("gc: %w (or pass --no-engine to judge pools and names only)", err)
		}
		for id := range ids {
			req.Engine = append(req.Engine, id)
		}
		req.EngineKnown = true
	}
	sock, _, err := findPlugin(ctx, *socket)
	if err != nil {
		return fmt.Errorf("gc: %w", err)
	}
	r, err := askGC(sock, req)
	if err != nil {
		return err
	}
	if *asJSON {
		b, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			return err
		}
		fmt.Println(string(b))
	} else if err := printGC(os.Stdout, r); err != nil {
		return err
	}
	if len(r.Errors) > 0 {
		return fmt.Errorf("gc: %s", strings.Join(r.Errors, "; "))
	}
	return nil
}

// askGC posts req to the plugin's /v6bridge.GC.
func askGC(socket string, req gcRequest) (gcReport, error) {
	c := http.Client{
		Timeout: 60 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		}},
	}
	body, _ := json.Marshal(req)
	resp, err := c.Post("http://v6bridge/v6bridge.GC", "application/json", bytes.NewReader(body))
	if err != nil {
		return gcReport{}, fmt.Errorf("ask the plugin at %s: %w (is it running?)", socket, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return gcReport{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return gcReport{}, fmt.Errorf("plugin answered %s: %s", resp.Status, b)
	}
	var r gcReport
	if err := json.Unmarshal(b, &r); err != nil {
		return gcReport{}, fmt.Errorf("decode gc report: %w", err)
	}
	return r, nil
}

// serveGC is the plugin's /v6bridge.GC handler.
func serveGC(d *driver.Driver, im *ipam.IPAM, log logrus.FieldLogger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req gcRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, fmt.Sprintf("gc request: %v", err), http.StatusBadRequest)
			return
		}
		rep, err := runGC(d, im, req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if req.Apply {
			log.WithFields(logrus.Fields{"networks": len(rep.Networks), "pools": len(rep.Pools), "names": len(rep.Names)}).Info("gc applied")
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(rep)
	}
}

func printGC(w io.Writer, r gcReport) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	verb := "would remove"
	if r.Applied {
		verb = "removed"
	}
	if len(r.Networks)+len(r.Pools)+len(r.Names) == 0 {
		fmt.Fprintln(tw, "nothing to reclaim")
	}
	for _, n := range r.Networks {
		fmt.Fprintf(tw, "%s\tnetwork %.12s\t%s\t%s, %d endpoints: the engine does not know it\n", verb, n.ID, n.Subnet, n.Bridge, n.Endpoints)
	}
	for _, p := range r.Pools {
		fmt.Fprintf(tw, "%s\tpool\t%s\tno network references it, no address but the gateway is in use\n", verb, p.Prefix)
	}
	if len(r.Names) > 0 {
		fmt.Fprintf(tw, "%s\tnames\t%d\tremembered endpoint names whose address stayed free\n", verb, len(r.Names))
	}
	if len(r.Networks) > 0 && !r.Applied {
		fmt.Fprintln(tw, "(the pools of those networks go with them)")
	}
	if !r.Applied && len(r.Networks)+len(r.Pools)+len(r.Names) > 0 {
		fmt.Fprintln(tw, "run v6bridge gc --apply to remove it")
	}
	return tw.Flush()
}

// stateFindings are doctor's findings about the plugin's own state: what
// gc would reclaim and the networks the last start could not bring up.
func stateFindings(r gcReport) []doctor.Finding {
	var out []doctor.Finding
	for id, p := range r.Problems {
		out = append(out, doctor.Finding{Check: "reconcile", Status: doctor.Warn,
			Summary: fmt.Sprintf("network %.12s was not brought up at start: %s", id, p),
			Meaning: "its containers have no connectivity; the other networks are served",
			Fix:     "fix the cause, then restart the plugin (docker plugin disable/enable, or the service)"})
	}
	n := len(r.Networks) + len(r.Pools) + len(r.Names)
	if n == 0 {
		return append(out, doctor.Finding{Check: "stale state", Status: doctor.OK, Summary: "nothing to reclaim"})
	}
	var what []string
	for _, x := range r.Networks {
		what = append(what, fmt.Sprintf("network %.12s (%s)", x.ID, x.Subnet))
	}
	for _, p := range r.Pools {
		what = append(what, "pool "+p.Prefix.String())
	}
	if len(r.Names) > 0 {
		what = append(what, fmt.Sprintf("%d endpoint names", len(r.Names)))
	}
	return append(out, doctor.Finding{Check: "stale state", Status: doctor.Warn,
		Summary: "would reclaim " + strings.Join(what, ", "),
		Meaning: "state the engine no longer uses; a stale pool blocks the same --subnet",
		Fix:     "v6bridge gc --apply"})
}
