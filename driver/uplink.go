package driver

import (
	"fmt"
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
		if err := d.prepareHostLocked(); err != nil {
			return fmt.Errorf("prepare the host for the new uplink: %w", err)
		}
	} else if !d.hostAddrsChanged() {
		return nil
	}
	if err := d.syncLocked(everything); err != nil {
		return fmt.Errorf("follow the uplink: %w", err)
	}
	return nil
}
