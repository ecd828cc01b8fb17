package driver

import (
	"errors"
	"fmt"
	"maps"
	"strings"

	"github.com/v6bridge/v6bridge/netspec"
)

// Reconcile makes the kernel match the persisted state: host settings,
// bridges re-created (after a reboot), links carrying this instance's mark
// that no record claims removed, the firewall and NDP rebuilt. It refuses
// (ErrForeignLinks, before changing anything) when the kernel holds links
// of another instance, or links of this one while the state holds no
// network: this plugin runs on the wrong state directory. A network whose
// bridge cannot be ensured is reported (Problems, status) and the rest is
// served.
func (d *Driver) Reconcile() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	owned, err := d.cfg.Links.OwnedLinks()
	if err != nil {
		return fmt.Errorf("list v6bridge's links: %w", err)
	}
	if err := d.checkOwnership(owned); err != nil {
		return err
	}
	if err := d.prepareHostLocked(); err != nil {
		return fmt.Errorf("prepare host: %w", err)
	}
	d.problems = map[string]string{}
	claimed := map[string]bool{}
	for _, n := range d.sortedNetworks() {
		claimed[n.Bridge] = true
		if err := d.cfg.Links.EnsureBridge(d.bridgeSpec(n)); err != nil {
			d.problem(n.ID, fmt.Errorf("ensure bridge: %w", err))
		}
	}
	for _, e := range d.sortedEndpoints() {
		claimed[e.HostVeth] = true
		if _, bad := d.problems[e.NetworkID]; bad {
			continue
		}
		ok, err := d.cfg.Links.LinkExists(e.HostVeth)
		if err != nil {
			d.problem(e.NetworkID, fmt.Errorf("endpoint %s: %w", short(e.ID, 12), err))
			continue
		}
		if !ok && e.Joined {
			// The container's link is gone (its netns died with a reboot or
			// a crash); the engine will delete the endpoint. Until then it
			// publishes nothing and NDP does not answer for it.
			d.log.WithField("endpoint", short(e.ID, 12)).Info("endpoint's link is gone, unpublishing it")
			ss := d.pub.save([]string{e.Sandbox}, e)
			d.leaveLocked(e)
			if err := d.persistChanged(ss); err != nil {
				d.log.WithError(err).WithField("endpoint", short(e.ID, 12)).Warn("save unpublished endpoint; it is unpublished until the next start")
			}
		}
	}
	d.sweep(owned, claimed)
	return d.syncLocked(everything)
}

// ErrForeignLinks says the kernel holds v6bridge links another state
// directory made: this plugin is not on the state it should be.
var ErrForeignLinks = errors.New("the kernel holds v6bridge links of another state directory")

// checkOwnership refuses to go on when owned links show that this
// instance runs on the wrong state: links marked by another instance, or
// its own marks while the state holds no network.
func (d *Driver) checkOwnership(owned []netspec.OwnedLink) error {
	if d.cfg.Instance == "" {
		return nil
	}
	var foreign, mine []string
	var other netspec.OwnedLink
	for _, l := range owned {
		switch l.Instance {
		case "":
		case d.cfg.Instance:
			mine = append(mine, l.Name)
		default:
			foreign = append(foreign, l.Name)
			other = l
		}
	}
	if len(foreign) > 0 {
		return fmt.Errorf("%w: %s belong to v6bridge instance %s, whose state directory is %s; this one is instance %s on %s. "+
			"Start this plugin on %s (managed plugin: docker plugin set <plugin> state.source=%s), or stop the other instance and delete its links (ip link del ...) first",
			ErrForeignLinks, strings.Join(foreign, ", "), other.Instance, other.StateDir, d.cfg.Instance, d.cfg.StateDir, other.StateDir, other.StateDir)
	}
	if len(mine) > 0 && len(d.networks) == 0 && d.cfg.NoSweep == "" {
		return fmt.Errorf("%w: state directory %s (instance %s) records no network, but its links %s exist: the records were lost or replaced; "+
			"restore them (%s/quarantine may hold unreadable ones), or delete those links (ip link del ...) to start empty",
			ErrForeignLinks, d.cfg.StateDir, d.cfg.Instance, strings.Join(mine, ", "), d.cfg.StateDir)
	}
	return nil
}

// sweep deletes the owned links that no record claims and that carry this
// instance's mark; unmarked ones are reported and left.
func (d *Driver) sweep(owned []netspec.OwnedLink, claimed map[string]bool) {
	for _, l := range owned {
		if claimed[l.Name] {
			continue
		}
		log := d.log.WithField("iface", l.Name)
		switch {
		case d.cfg.NoSweep != "":
			log.WithField("reason", d.cfg.NoSweep).Warn("orphaned link left in place")
			continue
		case d.cfg.Instance != "" && l.Instance != d.cfg.Instance:
			log.Warn("orphaned link without this instance's mark left in place (made by an older v6bridge or by hand): delete it with ip link del if nothing uses it")
			continue
		}
		var err error
		if l.Bridge {
			log.Info("removing orphaned bridge")
			err = d.cfg.Links.DeleteBridge(l.Name)
		} else {
			log.Info("removing orphaned veth")
			err = d.cfg.Links.DeleteVeth(l.Name)
		}
		if err != nil {
			log.WithError(err).Warn("remove orphaned link")
		}
	}
}

// problem records and logs a network that Reconcile could not bring up.
func (d *Driver) problem(networkID string, err error) {
	d.problems[networkID] = err.Error()
	d.log.WithError(err).WithField("network", short(networkID, 12)).Error("network not reconciled; serving the others")
}

// Problems returns the networks Reconcile could not bring up, by id, with
// the error.
func (d *Driver) Problems() map[string]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return maps.Clone(d.problems)
}

// prepareHostLocked makes the host settings v6bridge needs (PrepareHost)
// and logs each one it changed.
func (d *Driver) prepareHostLocked() error {
	changed, err := d.cfg.Links.PrepareHost(d.cfg.Uplinks)
	if err != nil {
		return err
	}
	for _, c := range changed {
		d.log.WithField("sysctl", c).Info("changed host setting")
	}
	return nil
}
