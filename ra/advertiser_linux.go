package ra

import (
	"context"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/mdlayher/ndp"
	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netns"
	"golang.org/x/net/ipv6"

	"github.com/v6bridge/v6bridge/internal/netnsdo"
)

// Advertiser advertises the host as the default router to chosen container
// addresses behind bridges: as soon as an address is chosen, then every
// Interval. The zero value is not usable; use New.
type Advertiser struct {
	log   logrus.FieldLogger
	netns netns.NsHandle // where the bridges are; 0: this process's namespace
	mu    sync.Mutex
	// bridges holds one sender per bridge with targets.
	bridges map[string]*sender
	wg      sync.WaitGroup
}

// sender advertises on one bridge. targets is guarded by Advertiser.mu.
type sender struct {
	stop    context.CancelFunc
	targets []netip.Addr
	kick    chan struct{} // targets changed
}

// New returns an Advertiser with no targets, in this process's network
// namespace.
func New(log logrus.FieldLogger) *Advertiser { return NewIn(0, log) }

// NewIn returns an Advertiser for bridges in network namespace ns (tests).
func NewIn(ns netns.NsHandle, log logrus.FieldLogger) *Advertiser {
	return &Advertiser{log: log, netns: ns, bridges: map[string]*sender{}}
}

// SetTargets makes the advertiser advertise to exactly these addresses,
// keyed by the bridge they are behind: new addresses hear from it at once,
// addresses left out never again. It never fails: a bridge that cannot be
// served yet is retried.
func (a *Advertiser) SetTargets(targets map[string][]netip.Addr) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for name, s := range a.bridges {
		if len(targets[name]) == 0 {
			s.stop()
			delete(a.bridges, name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(targets)) {
		addrs := targets[name]
		if len(addrs) == 0 {
			continue
		}
		if s, ok := a.bridges[name]; ok {
			if !slices.Equal(s.targets, addrs) {
				s.targets = slices.Clone(addrs)
				select {
				case s.kick <- struct{}{}:
				default:
				}
			}
			continue
		}
		ctx, stop := context.WithCancel(context.Background())
		s := &sender{stop: stop, targets: slices.Clone(addrs), kick: make(chan struct{}, 1)}
		a.bridges[name] = s
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			a.serve(ctx, name, s)
		}()
	}
}

// Close stops advertising.
func (a *Advertiser) Close() {
	a.SetTargets(nil)
	a.wg.Wait()
}

func (a *Advertiser) targets(s *sender) []netip.Addr {
	a.mu.Lock()
	defer a.mu.Unlock()
	return s.targets
}

// listen opens the bridge's NDP socket (send only), in a.netns when set.
func (a *Advertiser) listen(name string) (c *ndp.Conn, ifi *net.Interface, err error) {
	open := func() error {
		if ifi, err = net.InterfaceByName(name); err != nil {
			return err
		}
		if c, _, err = ndp.Listen(ifi, ndp.LinkLocal); err != nil {
			return err
		}
		var f ipv6.ICMPFilter
		f.SetAll(true) // nothing is read: queue nothing
		return c.SetICMPFilter(&f)
	}
	if a.netns == 0 {
		return c, ifi, open()
	}
	return c, ifi, netnsdo.Do(a.netns, open)
}

// serve advertises on one bridge until ctx ends: to new targets when
// kicked, to all of them every Interval. A bridge without a link-local
// address yet is retried every second.
func (a *Advertiser) serve(ctx context.Context, name string, s *sender) {
	log := a.log.WithField("bridge", name)
	var c *ndp.Conn
	var msg *ndp.RouterAdvertisement
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	sent := map[netip.Addr]bool{}
	all := time.Now() // next advertisement to every target
	for {
		if c == nil {
			conn, ifi, err := a.listen(name)
			if err != nil {
				log.WithError(err).Debug("router advertisements: retrying")
			} else {
				c, msg = conn, Advertisement(ifi.HardwareAddr)
			}
		}
		if c != nil {
			every := !time.Now().Before(all)
			now := map[netip.Addr]bool{}
			for _, to := range a.targets(s) {
				if sent[to] && !every {
					now[to] = true
					continue
				}
				if err := c.WriteTo(msg, nil, to); err != nil {
					// Retried at the next round or change.
					log.WithError(err).WithField("to", to).Debug("router advertisement")
					continue
				}
				now[to] = true
				log.WithField("to", to).Debug("advertised the default router")
			}
			sent = now
			if every {
				all = time.Now().Add(Interval)
			}
		}
		wait := time.Until(all)
		if c == nil {
			wait = time.Second
		}
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		case <-time.After(wait):
		}
	}
}
