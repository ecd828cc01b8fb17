package nat

import (
	"context"
	"fmt"
	"time"

	"github.com/google/nftables"
)

// Watch repairs our table and the guard table when they are deleted or
// changed behind our back (`nft flush ruleset`, a firewall reload): it
// listens to nftables change events (the netlink monitor) and, after each
// burst of them, compares the tables with what we applied (see check). It
// also re-runs the coexistence check when anything in the ruleset changed,
// since the engine may create DOCKER-USER after us. interval is a safety
// net: a check also runs that often, and the monitor is re-opened, should
// its socket fail (e.g. events lost under load). The check is cheap while
// nothing changes: one netlink request for the ruleset generation. Watch
// returns when ctx is done.
func (t *Table) Watch(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	changed := make(chan struct{}, 1)
	var stop func()
	defer func() {
		if stop != nil {
			stop()
		}
	}()
	for {
		if stop == nil {
			var err error
			if stop, err = t.monitor(changed); err != nil {
				t.log.WithError(err).Warn("nftables monitor; checking every " + interval.String() + " only")
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case _, ok := <-changed:
			if !ok {
				return
			}
			// Let a burst (one batch is one event group, iptables-restore
			// several) settle, then check once.
			time.Sleep(20 * time.Millisecond)
			select {
			case <-changed:
			default:
			}
		}
		if err := t.check(); err != nil {
			t.log.WithError(err).Warn("firewall check")
		}
		if stop != nil && t.monitorDead() {
			stop()
			stop = nil
		}
	}
}

// monitor subscribes to nftables change events and signals changed (never
// blocking) after each committed batch.
func (t *Table) monitor(changed chan<- struct{}) (stop func(), err error) {
	mon := nftables.NewMonitor(nftables.WithMonitorEventBuffer(64))
	events, err := t.conn.AddGenerationalMonitor(mon)
	if err != nil {
		return nil, fmt.Errorf("subscribe to nftables events: %w", err)
	}
	t.monMu.Lock()
	t.monDead = false
	t.monMu.Unlock()
	go func() {
		for ev := range events {
			if ev.GeneratedBy != nil && ev.GeneratedBy.Error != nil {
				t.log.WithError(ev.GeneratedBy.Error).Warn("nftables monitor failed, re-opening it")
				t.monMu.Lock()
				t.monDead = true
				t.monMu.Unlock()
			}
			select {
			case changed <- struct{}{}:
			default:
			}
		}
	}()
	return func() { _ = mon.Close() }, nil
}

func (t *Table) monitorDead() bool {
	t.monMu.Lock()
	defer t.monMu.Unlock()
	return t.monDead
}

// check compares the kernel's table with what we applied and repairs it.
func (t *Table) check() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.model == nil {
		return nil
	}
	ok, moved, err := t.holdsOursLocked()
	if ok {
		if moved {
			// Someone else changed the ruleset; ours is intact.
			t.ensureCoexistenceLocked()
		}
		return nil
	}
	if !moved {
		return err
	}
	r, devs := t.build(t.model.State())
	t.log.WithField("reason", reason(err)).Warn("firewall table changed behind our back, applying it again")
	if err := t.applyLocked(r, devs); err != nil {
		return err
	}
	t.ensureCoexistenceLocked()
	return nil
}

func reason(fpErr error) string {
	if fpErr != nil {
		return fpErr.Error()
	}
	return "contents differ"
}
