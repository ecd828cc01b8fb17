// Command promcheck scrapes a Prometheus endpoint, parses it with
// Prometheus' own text parser and checks that the named metric families
// exist and are non-zero (summed over their series). The e2e suite runs it
// against v6bridge's METRICS listener.
//
//	promcheck -url http://[::1]:9430/metrics -nonzero v6bridge_api_requests_total,v6bridge_ndp_solicitations_received_total
package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/common/expfmt"
)

func main() {
	url := flag.String("url", "", "the /metrics URL")
	nonzero := flag.String("nonzero", "", "comma-separated metric families that must be > 0")
	flag.Parse()
	if err := run(*url, strings.Split(*nonzero, ",")); err != nil {
		fmt.Fprintln(os.Stderr, "promcheck:", err)
		os.Exit(1)
	}
}

func run(url string, names []string) error {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	var p expfmt.TextParser
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return fmt.Errorf("the text format does not parse: %w", err)
	}
	var bad []string
	for _, name := range names {
		if name == "" {
			continue
		}
		f, ok := fams[name]
		if !ok {
			bad = append(bad, name+" missing")
			continue
		}
		sum := 0.0
		for _, m := range f.Metric {
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			case m.Histogram != nil:
				sum += float64(m.Histogram.GetSampleCount())
			case m.Untyped != nil:
				sum += m.Untyped.GetValue()
			}
		}
		fmt.Printf("%s %g\n", name, sum)
		if sum <= 0 {
			bad = append(bad, name+" is 0")
		}
	}
	var all []string
	for n := range fams {
		if strings.HasPrefix(n, "v6bridge_") {
			all = append(all, n)
		}
	}
	sort.Strings(all)
	fmt.Printf("%d families parsed, v6bridge's: %s\n", len(fams), strings.Join(all, " "))
	if len(bad) > 0 {
		return fmt.Errorf("%s", strings.Join(bad, "; "))
	}
	return nil
}
