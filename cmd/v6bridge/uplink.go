package main

import (
	"github.com/sirupsen/logrus"

	"github.com/v6bridge/v6bridge/driver"
	"github.com/v6bridge/v6bridge/link"
	"github.com/v6bridge/v6bridge/metrics"
	"github.com/v6bridge/v6bridge/ndp"
)

// newUplinkFollower follows the uplinks from now on (Run starts telling);
// made before the parts so no change between their start and Run is
// missed: Run tells what changed since.
func newUplinkFollower(uplinks []string, m *metrics.Metrics, log logrus.FieldLogger) (*link.Follower, error) {
	cfg := link.FollowConfig{Uplinks: uplinks, Log: log}
	if m != nil {
		cfg.Changed, cfg.Reattached = m.UplinkChanged, m.UplinkReattached
	}
	return link.NewFollower(cfg)
}

// tellUplinkParts makes the NDP responder and the driver (firewall,
// published ports) follow the uplinks: NDP first, so the new link answers
// for the containers before traffic is let through to them.
func tellUplinkParts(f *link.Follower, resp *ndp.Responder, d *driver.Driver) {
	f.Tell(link.Part{Name: "ndp", Changed: resp.UplinkChanged})
	f.Tell(link.Part{Name: "firewall", Changed: func(c link.Change) error {
		if !c.Reattach() && !c.AddrsChanged() {
			return nil
		}
		return d.UplinkChanged(c.Reattach())
	}})
}
