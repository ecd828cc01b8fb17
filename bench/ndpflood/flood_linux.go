package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	mndp "github.com/mdlayher/ndp"
	"github.com/sirupsen/logrus"
	"golang.org/x/net/ipv6"

	"github.com/v6bridge/v6bridge/internal/ndpflood"
	"github.com/v6bridge/v6bridge/ndp"
)

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// floodResult is what `flood` prints.
type floodResult struct {
	Sent          uint64  `json:"sent"`
	Seconds       float64 `json:"seconds"`
	Rate          float64 `json:"rate_per_s"`
	UnicastProbes int     `json:"unicast_probes"`
	Unanswered    int     `json:"unanswered"`
	Failed        int     `json:"failed_states"`
}

func floodMain() error {
	iface := flag.String("iface", "vps0", "interface towards the proxy")
	live := flag.String("live", "2001:db8:1234:a1:1::2", "the live address the router keeps re-probing")
	scan := flag.String("scan", "2001:db8:1234:a1::/64", "prefix random targets come from")
	rate := flag.Int("rate", 100000, "solicitations per second")
	seconds := flag.Float64("seconds", 30, "how long")
	source := flag.String("source", "2001:db8:1234:a1::bad", "the flood's IPv6 sources, comma-separated, in turn (the router's addresses: forged)")
	randomSources := flag.Bool("random-sources", false, "each solicitation from a random address of -scan and a random MAC instead")
	nLive := flag.Int("n-live", 0, "live addresses after -live the flood also solicits (consecutive)")
	liveEvery := flag.Int("live-every", 0, "every Nth solicitation of the flood for one of the -n-live addresses (0: none)")
	flag.Parse()
	ifi, err := net.InterfaceByName(*iface)
	if err != nil {
		return err
	}
	liveA := netip.MustParseAddr(*live)
	var others []netip.Addr // not the probed one: its advertisements would count as answers
	for i := 1; i <= *nLive; i++ {
		others = append(others, nth(liveA, i))
	}
	var sources []netip.Addr
	for _, s := range strings.Split(*source, ",") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return fmt.Errorf("-source: %w", err)
		}
		sources = append(sources, a)
	}
	f, err := ndpflood.Open()
	if err != nil {
		return err
	}
	defer f.Close()
	nud, err := newNUDWatch(ifi, liveA)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(*seconds*float64(time.Second)))
	defer cancel()
	var res floodResult
	var ferr error
	var wg sync.WaitGroup
	start := time.Now()
	wg.Go(func() {
		res.Sent, ferr = f.Run(ctx, ndpflood.Config{
			Ifindex: ifi.Index, MAC: net.HardwareAddr{0x02, 0xba, 0xd0, 0, 0, 1},
			Source: sources[0], Sources: sources[1:], RandomSources: *randomSources,
			Scan: netip.MustParsePrefix(*scan), Rate: *rate, Live: others, LiveEvery: *liveEvery,
		})
	})
	wg.Go(func() { nud.run(ctx) })
	wg.Wait()
	if ferr != nil {
		return ferr
	}
	res.Seconds = time.Since(start).Seconds()
	res.Rate = float64(res.Sent) / res.Seconds
	time.Sleep(300 * time.Millisecond)
	res.UnicastProbes, res.Unanswered, res.Failed = nud.result()
	return json.NewEncoder(os.Stdout).Encode(res)
}

// nudWatch keeps the router's kernel using its entry for a live address
// (a datagram every 100 ms) and counts its unicast probes for it and the
// advertisements answering them, sniffed on the wire (wireTap).
type nudWatch struct {
	ifi    *net.Interface
	live   netip.Addr
	tap    *wireTap
	mu     sync.Mutex
	probes []time.Time
	nas    []time.Time
	failed int
}

func newNUDWatch(ifi *net.Interface, live netip.Addr) (*nudWatch, error) {
	tap, err := newWireTap(ifi, netip.PrefixFrom(live, 96).Masked())
	if err != nil {
		return nil, err
	}
	return &nudWatch{ifi: ifi, live: live, tap: tap}, nil
}

func (n *nudWatch) run(ctx context.Context) {
	defer n.tap.Close()
	go func() {
		for {
			p, err := n.tap.next(ctx)
			if err != nil {
				return
			}
			if p.Target != n.live {
				continue
			}
			n.mu.Lock()
			switch {
			case p.Out && p.Type == 135 && p.Dst == n.live:
				n.probes = append(n.probes, p.At)
			case !p.Out && p.Type == 136:
				n.nas = append(n.nas, p.At)
			}
			n.mu.Unlock()
		}
	}()
	u, err := net.DialUDP("udp6", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(n.live, 9)))
	if err != nil {
		return
	}
	defer u.Close()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	resolved := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		_, _ = u.Write([]byte("ping"))
		st := neighState(n.ifi.Name, n.live)
		switch {
		case strings.Contains(st, "REACHABLE") || strings.Contains(st, "STALE") || strings.Contains(st, "DELAY") || strings.Contains(st, "PROBE"):
			resolved = true
		case resolved && (strings.Contains(st, "FAILED") || strings.Contains(st, "INCOMPLETE")):
			n.mu.Lock()
			n.failed++
			n.mu.Unlock()
		}
	}
}

// neighState is the router's neighbour entry for a as `ip` prints it.
func neighState(dev string, a netip.Addr) string {
	out, _ := execOutput("ip", "-6", "neigh", "show", a.String(), "dev", dev)
	return out
}

func (n *nudWatch) result() (probes, unanswered, failed int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, p := range n.probes {
		i, _ := slices.BinarySearchFunc(n.nas, p, func(a, b time.Time) int { return a.Compare(b) })
		if i == len(n.nas) || n.nas[i].Sub(p) > time.Second {
			unanswered++
		}
	}
	return len(n.probes), unanswered, n.failed
}

// startResult is what `start` prints.
type startResult struct {
	Addresses        int     `json:"addresses"`
	UnsolicitedSeen  int     `json:"unsolicited_seen"`
	PeakRate         float64 `json:"unsolicited_peak_per_s"`
	AllReachableS    float64 `json:"all_reachable_s"` // -1: not all
	Reachable        int     `json:"reachable"`
	FirstUnsolicited float64 `json:"first_unsolicited_s"`
	AllAnnouncedS    float64 `json:"all_announced_s"` // -1: not all
}

func startMain() error {
	iface := flag.String("iface", "vps0", "interface towards the proxy")
	live := flag.String("live", "2001:db8:1234:a1:1::2", "first live address")
	n := flag.Int("n", 5000, "live addresses, consecutive from -live")
	sweep := flag.Int("sweep-rate", 5000, "solicitations per second of the sweep")
	t0File := flag.String("t0-file", "", "file where the responder's start (unix ns) is written; times are measured from it")
	seconds := flag.Float64("seconds", 12, "how long at most")
	waitAnnounced := flag.Bool("wait-announced", false, "also wait until every address was announced unsolicited")
	flag.Parse()
	ifi, err := net.InterfaceByName(*iface)
	if err != nil {
		return err
	}
	c, _, err := mndp.Listen(ifi, mndp.LinkLocal)
	if err != nil {
		return err
	}
	defer c.Close()
	var filt ipv6.ICMPFilter
	filt.SetAll(true)
	filt.Accept(ipv6.ICMPTypeNeighborAdvertisement)
	if err := c.SetICMPFilter(&filt); err != nil {
		return err
	}
	lives := make([]netip.Addr, *n)
	idx := map[netip.Addr]int{}
	for i := range lives {
		lives[i] = nth(netip.MustParseAddr(*live), i)
		idx[lives[i]] = i
	}
	var mu sync.Mutex
	answered := make([]time.Time, *n)
	announced := make([]time.Time, *n)
	var unsol []time.Time
	deadline := time.Now().Add(time.Duration(*seconds * float64(time.Second)))
	_ = c.SetReadDeadline(deadline)
	go ndpflood.EachAdvertisement(c, func(na *mndp.NeighborAdvertisement, _ *ipv6.ControlMessage, _ netip.Addr) {
		i, ok := idx[na.TargetAddress]
		if !ok {
			return
		}
		now := time.Now()
		mu.Lock()
		if !na.Solicited {
			unsol = append(unsol, now)
			if announced[i].IsZero() {
				announced[i] = now
			}
		}
		if answered[i].IsZero() {
			answered[i] = now
		}
		mu.Unlock()
	})
	src := &mndp.LinkLayerAddress{Direction: mndp.Source, Addr: ifi.HardwareAddr}
	interval := time.Second / time.Duration(*sweep)
	next := time.Now()
	for i := 0; time.Now().Before(deadline); i = (i + 1) % *n {
		mu.Lock()
		done := !answered[i].IsZero()
		mu.Unlock()
		if done {
			if i == *n-1 && all(answered, &mu) {
				break
			}
			continue
		}
		g, _ := mndp.SolicitedNodeMulticast(lives[i])
		_ = c.WriteTo(&mndp.NeighborSolicitation{TargetAddress: lives[i], Options: []mndp.Option{src}}, nil, g)
		next = next.Add(interval)
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		}
	}
	for *waitAnnounced && time.Now().Before(deadline) && !all(announced, &mu) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	var t0 time.Time
	if *t0File != "" {
		b, err := os.ReadFile(*t0File)
		if err != nil {
			return err
		}
		ns, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			return fmt.Errorf("t0 file: %w", err)
		}
		t0 = time.Unix(0, ns)
	}
	mu.Lock()
	defer mu.Unlock()
	res := startResult{Addresses: *n, UnsolicitedSeen: len(unsol), AllReachableS: -1, AllAnnouncedS: -1}
	last, lastAnn := t0, t0
	for i := range answered {
		if !answered[i].IsZero() {
			res.Reachable++
			if answered[i].After(last) {
				last = answered[i]
			}
		}
		if announced[i].After(lastAnn) {
			lastAnn = announced[i]
		}
	}
	if res.Reachable == *n {
		res.AllReachableS = last.Sub(t0).Seconds()
	}
	if !slices.ContainsFunc(announced, time.Time.IsZero) {
		res.AllAnnouncedS = lastAnn.Sub(t0).Seconds()
	}
	slices.SortFunc(unsol, time.Time.Compare)
	if len(unsol) > 0 {
		res.FirstUnsolicited = unsol[0].Sub(t0).Seconds()
	}
	for i, j := 0, 0; i < len(unsol); i++ { // 100 ms windows
		for unsol[i].Sub(unsol[j]) >= 100*time.Millisecond {
			j++
		}
		res.PeakRate = max(res.PeakRate, float64(i-j+1)*10)
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}

func all(ts []time.Time, mu *sync.Mutex) bool {
	mu.Lock()
	defer mu.Unlock()
	return !slices.ContainsFunc(ts, time.Time.IsZero)
}

// respondMain runs v6bridge's responder for n addresses on an uplink
// until SIGTERM, writing its start time (unix ns) to -t0-file first.
func respondMain() error {
	uplink := flag.String("uplink", "eth0", "the uplink")
	live := flag.String("live", "2001:db8:1234:a1:1::2", "first live address")
	n := flag.Int("n", 5000, "live addresses, consecutive from -live")
	t0File := flag.String("t0-file", "", "where to write the start time")
	flag.Parse()
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()
	if *t0File != "" {
		if err := os.WriteFile(*t0File, []byte(strconv.FormatInt(time.Now().UnixNano(), 10)), 0o644); err != nil {
			return err
		}
	}
	log := logrus.New()
	log.SetLevel(logrus.WarnLevel)
	r, err := ndp.NewResponder(ndp.Config{Uplinks: []string{*uplink}, Log: log})
	if err != nil {
		return err
	}
	defer r.Close()
	addrs := make([]netip.Addr, *n)
	for i := range addrs {
		addrs[i] = nth(netip.MustParseAddr(*live), i)
	}
	go func() { _ = r.Run(ctx) }()
	if err := r.SetTargets(addrs, nil); err != nil {
		return err
	}
	<-ctx.Done()
	s := r.Stats()
	return json.NewEncoder(os.Stderr).Encode(map[string]any{"answered": s.Answered, "unsolicited": s.Unsolicited, "peak": s.AnnouncePeakRate})
}

func execOutput(name string, args ...string) (string, error) {
	b, err := exec.Command(name, args...).Output()
	return string(b), err
}
