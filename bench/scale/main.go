// Command scale drives a running `v6bridge serve` over its unix socket the way
// a Docker engine does, to measure what one more endpoint costs when many
// exist already. It creates one network and then attaches N endpoints to it,
// each with a published port: RequestAddress, CreateEndpoint, Join (with the
// engine's com.docker.network.portmap) and ProgramExternalConnectivity, the
// calls and JSON of `docker run -p` on a plugin network. No containers and
// no engine are involved, so 1000 attaches take seconds, not minutes.
//
// It prints one JSON document: the time of every attach (milliseconds, in
// order) and of its Join alone. bench/bench.sh turns it into the table.
//
// Part of `make bench` only; it never runs in `make test`.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"
)

type client struct {
	http *http.Client
}

func newClient(socket string) *client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConnsPerHost: 1,
	}
	return &client{http: &http.Client{Transport: tr, Timeout: 60 * time.Second}}
}

// call posts req to the plugin route and decodes the answer into resp; an
// answer with a non-empty Err is an error, as the engine treats it.
func (c *client) call(route string, req, resp any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	r, err := c.http.Post("http://plugin/"+route, "application/vnd.docker.plugins.v1.2+json", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s: %w", route, err)
	}
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return fmt.Errorf("%s: read answer: %w", route, err)
	}
	var e struct{ Err string }
	if json.Unmarshal(b, &e) == nil && e.Err != "" {
		return fmt.Errorf("%s: %s", route, e.Err)
	}
	if resp != nil {
		if err := json.Unmarshal(b, resp); err != nil {
			return fmt.Errorf("%s: decode %s: %w", route, b, err)
		}
	}
	return nil
}

// id returns a 64-hex-digit id as the engine makes them.
func id(kind string, i int) string {
	h := sha256.Sum256(fmt.Appendf(nil, "v6bridge-bench-%s-%d", kind, i))
	return hex.EncodeToString(h[:])
}

type result struct {
	Endpoints int       `json:"endpoints"`
	Network   string    `json:"network"`
	Subnet    string    `json:"subnet"`
	AttachMS  []float64 `json:"attach_ms"` // RequestAddress + CreateEndpoint + Join + ProgramExternalConnectivity
	JoinMS    []float64 `json:"join_ms"`
	// Rules of table ip6 v6bridge (nft -a list) after the first and after
	// the last attach; -1 when nft failed.
	RulesFirst int     `json:"rules_first"`
	RulesLast  int     `json:"rules_last"`
	TotalS     float64 `json:"total_s"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// countRules counts the rules (not sets, chains or elements) of our table
// as `nft -a list table ip6 v6bridge` shows them: lines with a handle
// inside a chain block.
func countRules() int {
	out, err := exec.Command("nft", "-a", "list", "table", "ip6", "v6bridge").Output()
	if err != nil {
		return -1
	}
	n, inChain := 0, false
	for _, l := range strings.Split(string(out), "\n") {
		t := strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(t, "chain "):
			inChain = true
		case t == "}":
			inChain = false
		case inChain && strings.Contains(t, "# handle "):
			n++
		}
	}
	return n
}

func main() {
	socket := flag.String("socket", "/run/docker/plugins/v6bridge.sock", "plugin socket")
	subnet := flag.String("subnet", "2001:db8:1234:a1:1::/112", "subnet of the network (public mode: inside the uplink's /64)")
	mode := flag.String("mode", "public", "v6bridge.mode of the network")
	n := flag.Int("n", 1000, "endpoints to attach")
	port := flag.Int("host-port", 20000, "first host port; endpoint i publishes tcp/80 on host-port+i")
	flag.Parse()
	if err := run(newClient(*socket), *subnet, *mode, *n, *port); err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
}

func run(c *client, subnet, mode string, n, firstPort int) error {
	var pool struct{ PoolID, Pool string }
	if err := c.call("IpamDriver.RequestPool", map[string]any{"AddressSpace": "v6bridge", "Pool": subnet, "V6": true}, &pool); err != nil {
		return err
	}
	var gw struct{ Address string }
	if err := c.call("IpamDriver.RequestAddress", map[string]any{"PoolID": pool.PoolID, "Options": map[string]string{"RequestAddressType": "com.docker.network.gateway"}}, &gw); err != nil {
		return err
	}
	netID := id("network", 0)
	createNet := map[string]any{
		"NetworkID": netID,
		"Options": map[string]any{
			"com.docker.network.enable_ipv6": true,
			"com.docker.network.enable_ipv4": false,
			"com.docker.network.generic":     map[string]any{"v6bridge.mode": mode},
		},
		"IPv6Data": []map[string]any{{"AddressSpace": "v6bridge", "Pool": pool.Pool, "Gateway": gw.Address}},
	}
	if err := c.call("NetworkDriver.CreateNetwork", createNet, nil); err != nil {
		return err
	}
	res := result{Endpoints: n, Network: netID, Subnet: pool.Pool}
	start := time.Now()
	for i := range n {
		epID := id("endpoint", i)
		portmap := []map[string]any{{"Proto": 6, "IP": "", "Port": 80, "HostIP": "", "HostPort": firstPort + i, "HostPortEnd": firstPort + i}}
		exposed := []map[string]any{{"Proto": 6, "Port": 80}}
		t0 := time.Now()
		var addr struct{ Address string }
		if err := c.call("IpamDriver.RequestAddress", map[string]any{"PoolID": pool.PoolID, "Options": map[string]string{}}, &addr); err != nil {
			return fmt.Errorf("endpoint %d: %w", i, err)
		}
		ce := map[string]any{
			"NetworkID": netID, "EndpointID": epID,
			"Interface": map[string]any{"AddressIPv6": addr.Address},
			"Options":   map[string]any{"com.docker.network.endpoint.exposedports": exposed, "com.docker.network.portmap": portmap},
		}
		if err := c.call("NetworkDriver.CreateEndpoint", ce, nil); err != nil {
			return fmt.Errorf("endpoint %d: %w", i, err)
		}
		tj := time.Now()
		join := map[string]any{
			"NetworkID": netID, "EndpointID": epID,
			"SandboxKey": "/var/run/docker/netns/" + epID[:12],
			"Options":    map[string]any{"com.docker.network.endpoint.exposedports": exposed, "com.docker.network.portmap": portmap},
		}
		if err := c.call("NetworkDriver.Join", join, nil); err != nil {
			return fmt.Errorf("endpoint %d: %w", i, err)
		}
		dj := time.Since(tj)
		pec := map[string]any{"NetworkID": netID, "EndpointID": epID, "Options": map[string]any{"com.docker.network.portmap": portmap}}
		if err := c.call("NetworkDriver.ProgramExternalConnectivity", pec, nil); err != nil {
			return fmt.Errorf("endpoint %d: %w", i, err)
		}
		res.AttachMS = append(res.AttachMS, ms(time.Since(t0)))
		res.JoinMS = append(res.JoinMS, ms(dj))
		if i == 0 {
			res.RulesFirst = countRules()
		}
	}
	res.RulesLast = countRules()
	res.TotalS = time.Since(start).Seconds()
	return json.NewEncoder(os.Stdout).Encode(res)
}
