package migrate

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteText writes r for people: settings, networks, create lines, the
// rewritten compose networks: blocks, the switch-over steps, notes, and
// what cannot be translated.
func (r Result) WriteText(w io.Writer) error {
	var b strings.Builder
	section := func(title string) { fmt.Fprintf(&b, "\n%s\n\n", title) }
	b.WriteString("v6bridge migrate\n")
	if len(r.Settings) > 0 {
		section("Plugin settings (managed plugin, while disabled)")
		fmt.Fprintf(&b, "docker plugin set %s", r.Driver)
		for _, s := range r.Settings {
			fmt.Fprintf(&b, " %s=%s", s.Key, s.Value)
		}
		b.WriteString("\n")
		section("Host service (environment of v6bridge serve, e.g. in the systemd unit)")
		for _, s := range r.Settings {
			fmt.Fprintf(&b, "Environment=%s=%s\n", s.Key, s.Value)
		}
	}
	if len(r.Networks) > 0 {
		section("Networks")
		tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tMODE\tSUBNET\tFROM")
		for _, n := range r.Networks {
			sub := "(carved by the plugin)"
			if n.Subnet.IsValid() {
				sub = n.Subnet.String()
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", n.Name, n.Mode, sub, n.From)
		}
		tw.Flush()
	}
	var creates []string
	for _, n := range r.Networks {
		if n.Create != "" {
			creates = append(creates, n.Create)
		}
	}
	if len(creates) > 0 {
		section("Networks outside compose files")
		b.WriteString(strings.Join(creates, "\n") + "\n")
	}
	for _, c := range r.Compose {
		if len(r.Refusals) > 0 {
			break
		}
		section(fmt.Sprintf("Compose %s -> %s (networks: block; --write writes the whole file)", c.Path, c.OutPath))
		b.WriteString(c.Networks)
	}
	if len(r.Refusals) == 0 && len(r.Steps) > 0 {
		section("Switch over, in this order")
		for i, s := range r.Steps {
			fmt.Fprintf(&b, "%d. %s\n", i+1, s)
		}
	}
	if len(r.Notes) > 0 {
		section("Notes")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	if len(r.Refusals) > 0 {
		section("Cannot translate (nothing is written until these are fixed)")
		for _, n := range r.Refusals {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	if len(r.Wrote) > 0 {
		section("Written")
		for _, f := range r.Wrote {
			fmt.Fprintf(&b, "%s\n", f)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
