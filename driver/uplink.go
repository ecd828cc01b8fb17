package driver

import (
	"fmt"
	"slices"
)

// UplinkChanged brings what hangs on the uplinks up to date after they
// changed (the uplink follower tells it): published ports serve the host
// addresses the uplinks have now (the firewall's host-address set, both
// ways), and after an uplink was created again (relinked: a new link under
// the same name) the host settings it needs are made again (PrepareHost)
// and the firewall is applied whole, which hooks its flowtable to the new
// link. Without either change it does nothing.
func (d *Driver) UplinkChanged(relinked bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if relinked {
		changed, err := d.cfg.Links.PrepareHost(d.cfg.Uplinks)
		if err != nil {
			return fmt.Errorf("prepare the host for the new uplink: %w", err)
		}
		for _, c := range changed {
			d.log.WithField("sysctl", c).Info("changed host setting")
		}
	} else if d.synced && slices.Equal(d.cfg.Host.UplinkAddrs(), d.syncedHostAddrs) {
		return nil
	}
	if err := d.syncLocked(everything); err != nil {
		return fmt.Errorf("follow the uplink: %w", err)
	}
	return nil
}
