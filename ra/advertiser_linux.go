package ra

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/mdlayher/ndp"
	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netns"

	"github.com/v6bridge/v6bridge/internal/netnsdo"
)

var allNodes = netip.MustParseAddr("ff02::1")

// Advertiser advertises the host as the default router on a set of
// bridges: periodically, and in answer to router solicitations. The zero
// value is not usable; use New.
type Advertiser struct {
	log     logrus.FieldLogger
	netns   netns.NsHandle // where the bridges are; 0: this process's namespace
	mu      sync.Mutex
	bridges map[string]context.CancelFunc
	wg      sync.WaitGroup
}

// New returns an Advertiser on no bridge, in this process's network
// namespace.
func New(log logrus.FieldLogger) *Advertiser { return NewIn(0, log) }

// NewIn returns an Advertiser for bridges in network namespace ns (tests).
func NewIn(ns netns.NsHandle, log logrus.FieldLogger) *Advertiser {
	return &Advertiser{log: log, netns: ns, bridges: map[string]context.CancelFunc{}}
}

// listen opens the bridge's NDP socket, in a.netns when set.
func (a *Advertiser) listen(name string) (c *ndp.Conn, ifi *net.Interface, err error) {
	open := func() error {
		if ifi, err = net.InterfaceByName(name); err != nil {
			return err
		}
		c, _, err = ndp.Listen(ifi, ndp.LinkLocal)
		return err
	}
	if a.netns == 0 {
		return c, ifi, open()
	}
	return c, ifi, netnsdo.Do(a.netns, open)
}

// SetBridges makes the advertiser serve exactly these bridges: it starts on
// the new ones and stops on the ones left out. It never fails: a bridge
// that cannot be served yet (no link-local address before it has a port)
// is retried.
func (a *Advertiser) SetBridges(names []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for name, stop := range a.bridges {
		if !slices.Contains(names, name) {
			stop()
			delete(a.bridges, name)
		}
	}
	for _, name := range names {
		if _, ok := a.bridges[name]; ok {
			continue
		}
		ctx, stop := context.WithCancel(context.Background())
		a.bridges[name] = stop
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			a.serve(ctx, name)
		}()
	}
}

// Close stops advertising on every bridge.
func (a *Advertiser) Close() {
	a.SetBridges(nil)
	a.wg.Wait()
}

// serve advertises on one bridge until ctx ends.
func (a *Advertiser) serve(ctx context.Context, name string) {
	log := a.log.WithField("bridge", name)
	for ctx.Err() == nil {
		err := a.advertise(ctx, name)
		if ctx.Err() != nil {
			return
		}
		log.WithError(err).Debug("router advertisements: retrying")
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

func (a *Advertiser) advertise(ctx context.Context, name string) error {
	c, ifi, err := a.listen(name)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.JoinGroup(netip.MustParseAddr("ff02::2")); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { _ = c.SetReadDeadline(time.Now()) })
	defer stop()
	msg := Advertisement(ifi.HardwareAddr)
	send := func(to netip.Addr) error { return c.WriteTo(msg, nil, to) }
	if err := send(allNodes); err != nil {
		return err
	}
	a.log.WithField("bridge", name).Debug("advertising the default router")
	next := time.Now().Add(Interval)
	for {
		if err := c.SetReadDeadline(next); err != nil {
			return err
		}
		m, _, _, err := c.ReadFrom()
		if ctx.Err() != nil {
			return nil
		}
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			if err := send(allNodes); err != nil {
				return err
			}
			next = time.Now().Add(Interval)
		case err != nil:
			return err
		default:
			if _, ok := m.(*ndp.RouterSolicitation); ok {
				// Answer to all nodes: a soliciting host may have no
				// address the unicast answer could go to yet (RFC 4861
				// 6.2.6 allows either).
				if err := send(allNodes); err != nil {
					return err
				}
			}
		}
	}
}
