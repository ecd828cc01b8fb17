package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/v6bridge/v6bridge/doctor"
	"github.com/v6bridge/v6bridge/driver"
	"github.com/v6bridge/v6bridge/ipam"
	"github.com/v6bridge/v6bridge/link"
	"github.com/v6bridge/v6bridge/ndp"
	"github.com/v6bridge/v6bridge/portfwd"
)

// statusDoc is what /v6bridge.Status serves and `v6bridge status` prints.
type statusDoc struct {
	// Instance is the state directory the plugin runs on: its id and host
	// path (doctor compares them with the bridges' marks).
	Instance struct{ ID, StateDir string }
	Uplinks  []string
	// Uplink is each uplink's state as the follower last read it and its
	// parts' re-attachments to new links.
	Uplink   []link.UplinkStatus `json:",omitempty"`
	Plan     planStatus
	Networks []driver.NetworkStatus
	Pools    []ipam.PoolStatus
	NDP      ndp.Stats
	// Forwards are the ports published on the host's loopback address.
	Forwards []portfwd.Status `json:",omitempty"`
}

// planStatus is the address plan the plugin carves automatic subnets from.
type planStatus struct {
	PublicPrefixes []netip.Prefix
	ULAPrefix      netip.Prefix
	ULAHost        netip.Prefix
}

func buildStatus(d *driver.Driver, im *ipam.IPAM, r *ndp.Responder, fw *portfwd.Forwarder, f *link.Follower, public func() []netip.Prefix) any {
	ula, host := im.ULA()
	up := f.Status()
	uplinks := make([]string, len(up))
	for i, u := range up {
		uplinks[i] = u.Name
	}
	doc := statusDoc{Uplinks: uplinks, Uplink: up, Plan: planStatus{PublicPrefixes: public(), ULAPrefix: ula, ULAHost: host},
		Networks: d.Status(), Pools: im.Pools(), NDP: r.Stats(), Forwards: fw.Status()}
	doc.Instance.ID, doc.Instance.StateDir = d.Identity()
	return doc
}

func status(args []string) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: v6bridge status [--json] [--socket PATH]

Shows what the running plugin manages: its networks with subnet, mode and
bridge, their endpoints with address and published ports, the IPAM pools,
and the NDP proxy's counters. It asks the plugin over its socket (read-only).
Without --socket it looks for the host service's
/run/docker/plugins/v6bridge.sock and a managed plugin's
/run/docker/plugins/<plugin id>/v6bridge.sock, and asks the first that
answers.

`)
		fs.PrintDefaults()
	}
	asJSON := fs.Bool("json", false, "print JSON")
	socket := socketFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	_, raw, err := findPlugin(context.Background(), *socket)
	if err != nil {
		return err
	}
	if *asJSON {
		var buf bytes.Buffer
		if err := json.Indent(&buf, raw, "", "  "); err != nil {
			return err
		}
		buf.WriteByte('\n')
		_, err := buf.WriteTo(os.Stdout)
		return err
	}
	var doc statusDoc
	if err := json.Unmarshal(raw, &doc); err != nil {
		return fmt.Errorf("decode status: %w", err)
	}
	return printStatus(os.Stdout, doc)
}

func printStatus(w io.Writer, doc statusDoc) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if doc.Instance.ID != "" {
		fmt.Fprintf(tw, "state: %s (instance %s)\n", doc.Instance.StateDir, doc.Instance.ID)
	}
	fmt.Fprintf(tw, "uplinks: %s\n", strings.Join(doc.Uplinks, ", "))
	for _, u := range doc.Uplink {
		fmt.Fprintf(tw, "  %s\n", u)
	}
	fmt.Fprintf(tw, "plan: public %v, ULA %s (this host: %s)\n\n", doc.Plan.PublicPrefixes, doc.Plan.ULAPrefix, doc.Plan.ULAHost)
	fmt.Fprintln(tw, "NETWORK\tBRIDGE\tMODE\tSUBNET\tGATEWAY\tENDPOINTS")
	for _, n := range doc.Networks {
		fmt.Fprintf(tw, "%.12s\t%s\t%s\t%s\t%s\t%d\n", n.ID, n.Bridge, n.Mode, n.Subnet, n.Gateway, len(n.Endpoints))
	}
	for _, n := range doc.Networks {
		if n.Problem != "" {
			fmt.Fprintf(tw, "PROBLEM: network %.12s was not brought up at start: %s\n", n.ID, n.Problem)
		}
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "ENDPOINT\tNETWORK\tADDRESS\tMAC\tJOINED\tPUBLISHED\tOPEN")
	for _, n := range doc.Networks {
		for _, e := range n.Endpoints {
			fmt.Fprintf(tw, "%.12s\t%.12s\t%s\t%s\t%v\t%s\t%s\n", e.ID, n.ID, e.Address, e.MAC, e.Joined, e.Ports, e.Open)
		}
	}
	if len(doc.Forwards) > 0 {
		fmt.Fprintln(tw)
		fmt.Fprintln(tw, "FORWARD\tBOUND\tCONNS\tEVICTED\tREFUSED")
		for _, f := range doc.Forwards {
			fmt.Fprintf(tw, "%s\t%v\t%d\t%d\t%d\n", f.Forward, f.Bound, f.Conns, f.Evicted, f.Refused)
		}
		for _, f := range doc.Forwards {
			if f.Problem != "" {
				fmt.Fprintf(tw, "PROBLEM: %s\n", f.Problem)
			}
		}
	}
	fmt.Fprintln(tw)
	n := doc.NDP
	fmt.Fprintf(tw, "NDP answers for: %v %v\n", n.Addrs, n.Ranges)
	fmt.Fprintf(tw, "NDP counters: %d solicitations seen, %d answered (%d unicast probes, %d DAD; %d in the kernel at the uplink's ingress), %d ignored %v, %d unsolicited sent\n",
		n.Solicitations, n.Answered, n.AnsweredUnicast, n.AnsweredDAD, n.KernelAnswered, n.Ignored, n.IgnoredReasons, n.Unsolicited)
	var limited uint64
	for _, v := range n.Limited {
		limited += v
	}
	filter := "exact"
	if n.FilterCoarse {
		filter = "coarse (too many targets to list)"
	}
	ingress := fmt.Sprintf("%d solicitations for addresses nobody here answers for dropped at the uplink's ingress", n.IngressDropped)
	if n.IngressProblem != "" {
		ingress = "ingress filter off: " + n.IngressProblem
	}
	fmt.Fprintf(tw, "NDP drops: %d over budget %v, %d socket queue full; capture filter %s; %s; announcements %d pending, peak %.0f/s, %d router primings\n",
		limited, n.Limited, n.SocketDrops, filter, ingress, n.AnnouncePending, n.AnnouncePeakRate, n.Primed)
	return tw.Flush()
}

// socketFlag is the --socket flag of every command that asks the plugin.
func socketFlag(fs *flag.FlagSet) *string {
	return fs.String("socket", env("SOCKET", ""), "the plugin's socket; empty: the first that answers of "+
		doctor.PluginsDir+"/"+doctor.SocketName+" (host service) and "+doctor.PluginsDir+"/<plugin id>/"+doctor.SocketName+" (managed plugin) [SOCKET]")
}

// findPlugin is how every command finds the plugin: the socket given, or
// the first under doctor.PluginsDir that answers; it returns the socket
// and the plugin's status document.
func findPlugin(ctx context.Context, socket string) (string, []byte, error) {
	return doctor.FindPlugin(ctx, socket, pluginsDir)
}

// pluginsDir is where findPlugin looks; tests point it elsewhere.
var pluginsDir = doctor.PluginsDir
