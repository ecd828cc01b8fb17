// Command ndpflood measures an NDP proxy from the provider router's side.
// bench/bench.sh runs it in the router namespace against v6bridge's
// responder, ndppd and the kernel's proxy_ndp; each run prints one JSON
// document.
//
//	ndpflood probe   sends solicitations at a rate, most for random
//	                 addresses of a /64 and every Nth for a live address,
//	                 and times each live one until its advertisement
//	ndpflood flood   floods solicitations for random addresses (sendmmsg),
//	                 optionally every Nth for other live addresses, from
//	                 a forged source (the router's) or random ones,
//	                 while the router's kernel keeps re-probing a live
//	                 address; counts its unicast probes left unanswered
//	ndpflood start   listens for unsolicited advertisements and sweeps
//	                 solicitations over N live addresses until every one
//	                 answered: peak unsolicited rate, time until reachable
//	ndpflood respond runs v6bridge's responder (native) for N addresses on
//	                 an uplink, the in-process side of "start"
//
// Part of `make bench` only; it never runs in `make test`.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"slices"
	"time"

	mndp "github.com/mdlayher/ndp"
)

type result struct {
	Sent       int     `json:"sent"`
	Probes     int     `json:"probes"`
	Answered   int     `json:"answered"`
	Stray      int     `json:"stray"` // advertisements for random targets
	SendS      float64 `json:"send_s"`
	P50us      float64 `json:"p50_us"`
	P99us      float64 `json:"p99_us"`
	MaxUS      float64 `json:"max_us"`
	RatePerSec int     `json:"rate_per_s"`
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: ndpflood probe|flood|start|respond [flags]")
		os.Exit(2)
	}
	cmd := os.Args[1]
	os.Args = append(os.Args[:1], os.Args[2:]...)
	var err error
	switch cmd {
	case "probe":
		probeMain()
		return
	case "flood":
		err = floodMain()
	case "start":
		err = startMain()
	case "respond":
		err = respondMain()
	default:
		err = fmt.Errorf("unknown command %q: want probe, flood, start or respond", cmd)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ndpflood:", err)
		os.Exit(1)
	}
}

func probeMain() {
	iface := flag.String("iface", "vps0", "interface towards the proxy")
	live := flag.String("live", "2001:db8:1234:a1:1::2", "first live address")
	nLive := flag.Int("n-live", 1000, "live addresses, consecutive from -live")
	scan := flag.String("scan", "2001:db8:1234:a1::/64", "prefix random targets come from")
	count := flag.Int("count", 20000, "solicitations to send")
	every := flag.Int("probe-every", 10, "every Nth solicitation targets a live address")
	rate := flag.Int("rate", 5000, "solicitations per second")
	flag.Parse()
	res, err := run(*iface, netip.MustParseAddr(*live), *nLive, netip.MustParsePrefix(*scan), *count, *every, *rate)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ndpflood:", err)
		os.Exit(1)
	}
	_ = json.NewEncoder(os.Stdout).Encode(res)
}

func nth(a netip.Addr, n int) netip.Addr {
	for range n {
		a = a.Next()
	}
	return a
}

func randomIn(p netip.Prefix) netip.Addr {
	b := p.Addr().As16()
	for i := p.Bits() / 8; i < 16; i++ {
		b[i] = byte(rand.IntN(256))
	}
	return netip.AddrFrom16(b)
}

func run(ifname string, first netip.Addr, nLive int, scan netip.Prefix, count, every, rate int) (result, error) {
	res := result{RatePerSec: rate}
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return res, err
	}
	c, _, err := mndp.Listen(ifi, mndp.LinkLocal)
	if err != nil {
		return res, fmt.Errorf("listen on %s: %w", ifname, err)
	}
	defer c.Close()
	lives := make([]netip.Addr, nLive)
	for i := range lives {
		lives[i] = nth(first, i)
	}
	live := make(map[netip.Addr]bool, nLive)
	for _, a := range lives {
		live[a] = true
	}
	tap, err := newWireTap(ifi, netip.PrefixFrom(first, 96).Masked())
	if err != nil {
		return res, err
	}
	defer tap.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Times come from the tap: a live solicitation leaving the interface
	// opens a probe (unless one for its target is open), the first
	// advertisement for it coming in closes it.
	var (
		pending = map[netip.Addr]time.Time{}
		lat     []time.Duration
		stray   int
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			p, err := tap.next(ctx)
			if err != nil {
				return // cancelled after the last send
			}
			switch {
			case p.Out && p.Type == 135 && live[p.Target]:
				if _, open := pending[p.Target]; !open {
					pending[p.Target] = p.At
					res.Probes++
				}
			case !p.Out && p.Type == 136:
				if t, ok := pending[p.Target]; ok {
					lat = append(lat, p.At.Sub(t))
					delete(pending, p.Target)
				} else if !live[p.Target] {
					stray++
				}
			}
		}
	}()
	src := &mndp.LinkLayerAddress{Direction: mndp.Source, Addr: ifi.HardwareAddr}
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	for i := range count {
		target := randomIn(scan)
		probe := i%every == 0
		if probe {
			target = lives[rand.IntN(len(lives))]
		}
		dst, err := mndp.SolicitedNodeMulticast(target)
		if err != nil {
			return res, err
		}
		ns := &mndp.NeighborSolicitation{TargetAddress: target, Options: []mndp.Option{src}}
		if err := c.WriteTo(ns, nil, dst); err != nil {
			return res, fmt.Errorf("send: %w", err)
		}
		res.Sent++
		if d := time.Until(start.Add(time.Duration(i+1) * interval)); d > 0 {
			time.Sleep(d)
		}
	}
	res.SendS = time.Since(start).Seconds()
	time.Sleep(1500 * time.Millisecond) // the last answers
	cancel()
	<-done
	res.Answered, res.Stray = len(lat), stray
	if len(lat) > 0 {
		slices.Sort(lat)
		us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 }
		res.P50us = us(lat[len(lat)/2])
		res.P99us = us(lat[min(len(lat)-1, len(lat)*99/100)])
		res.MaxUS = us(lat[len(lat)-1])
	}
	return res, nil
}
