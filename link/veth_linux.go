package link

import (
	"bytes"
	"errors"
	"fmt"
	"net"

	"github.com/sirupsen/logrus"
	"github.com/v6bridge/v6bridge/netspec"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// EnsureVeth creates the veth pair spec.HostName <-> spec.PeerName or
// verifies and repairs it: MTU on both ends (if spec.MTU > 0), the peer's
// MAC (if given), the host end attached to spec.Bridge, up, and with the
// "isolated" bridge-port flag if spec.Isolated or the bridge was ensured
// isolated. The peer stays in this namespace and down: the engine moves
// and renames it. A HostName link that is not a veth is replaced; a veth
// whose peer is not PeerName here (another endpoint's, its peer maybe in a
// container) is an error and left alone. If the call fails, the pair it created is
// deleted again.
func (k *Kernel) EnsureVeth(spec netspec.VethSpec) (err error) {
	for _, n := range []string{spec.HostName, spec.PeerName, spec.Bridge} {
		if err := validName(n); err != nil {
			return fmt.Errorf("ensure veth: %w", err)
		}
	}
	if spec.HostName == spec.PeerName {
		return fmt.Errorf("ensure veth %q: peer has the same name", spec.HostName)
	}
	if spec.MTU < 0 {
		return fmt.Errorf("ensure veth %q: negative MTU %d", spec.HostName, spec.MTU)
	}
	if spec.MAC != nil && len(spec.MAC) != 6 {
		return fmt.Errorf("ensure veth %q: peer MAC %s is not an Ethernet address", spec.HostName, spec.MAC)
	}
	log := k.log.WithFields(logrus.Fields{"iface": spec.HostName, "bridge": spec.Bridge})

	brLink, err := k.linkByName(spec.Bridge)
	if err != nil {
		return fmt.Errorf("ensure veth %q: bridge %q: %w", spec.HostName, spec.Bridge, err)
	}
	br, ok := brLink.(*netlink.Bridge)
	if !ok {
		return fmt.Errorf("ensure veth %q: %q is not an existing bridge", spec.HostName, spec.Bridge)
	}

	host, peer, created, err := k.ensureVethPair(spec, log)
	if err != nil {
		return fmt.Errorf("ensure veth %q: %w", spec.HostName, err)
	}
	if created {
		defer func() {
			if err == nil {
				return
			}
			if derr := k.h.LinkDel(host); derr != nil && !notFound(derr) {
				log.WithError(derr).Warn("could not delete the half-made veth")
			}
		}()
	}

	k.mu.Lock()
	isolated := spec.Isolated || k.isolated[spec.Bridge]
	k.mu.Unlock()
	if err := k.configureVeth(host, peer, br, spec, isolated, log); err != nil {
		return fmt.Errorf("ensure veth %q: %w", spec.HostName, err)
	}
	return nil
}

// ensureVethPair returns the two ends of the pair, creating it if missing
// and replacing a HostName link that is not the right pair.
func (k *Kernel) ensureVethPair(spec netspec.VethSpec, log logrus.FieldLogger) (host, peer netlink.Link, created bool, err error) {
	host, err = k.linkByName(spec.HostName)
	if err != nil {
		return nil, nil, false, err
	}
	if host != nil {
		peer, err = k.vethPeer(host)
		if err != nil {
			return nil, nil, false, err
		}
		if peer != nil && peer.Attrs().Name == spec.PeerName {
			return host, peer, false, nil
		}
		if _, ok := host.(*netlink.Veth); ok {
			// Another endpoint's pair (its peer moved into a container or
			// named otherwise): deleting it would cut that container off.
			other := "in another namespace"
			if peer != nil {
				other = fmt.Sprintf("%q", peer.Attrs().Name)
			}
			return nil, nil, false, fmt.Errorf("a veth %q with peer %s exists already, not %q: it belongs to another endpoint and is left alone", spec.HostName, other, spec.PeerName)
		}
		if err := k.h.LinkDel(host); err != nil && !notFound(err) {
			return nil, nil, false, fmt.Errorf("delete mismatched %s %q: %w", host.Type(), spec.HostName, err)
		}
		log.WithField("type", host.Type()).Info("deleted mismatched link to recreate the veth")
	}

	attrs := netlink.NewLinkAttrs()
	attrs.Name = spec.HostName
	attrs.MTU = spec.MTU
	attrs.Alias = k.mark
	veth := &netlink.Veth{
		LinkAttrs:        attrs,
		PeerName:         spec.PeerName,
		PeerHardwareAddr: spec.MAC,
		PeerMTU:          uint32(spec.MTU),
	}
	if err := k.h.LinkAdd(veth); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return nil, nil, false, fmt.Errorf("add veth to peer %q: a link of one of the names exists: %w", spec.PeerName, err)
		}
		return nil, nil, false, fmt.Errorf("add veth to peer %q: %w", spec.PeerName, err)
	}
	log.WithField("peer", spec.PeerName).Info("created veth")
	host, err = k.h.LinkByName(spec.HostName)
	if err == nil {
		peer, err = k.vethPeer(host)
	}
	if err == nil && (peer == nil || peer.Attrs().Name != spec.PeerName) {
		err = fmt.Errorf("peer %q not found after creating the pair", spec.PeerName)
	}
	if err != nil {
		if host != nil {
			_ = k.h.LinkDel(host)
		}
		return nil, nil, false, fmt.Errorf("find new veth: %w", err)
	}
	return host, peer, true, nil
}

// vethPeer returns the other end of a veth that is in this namespace, or
// nil if l is not a veth or its peer is elsewhere (moved into a container).
func (k *Kernel) vethPeer(l netlink.Link) (netlink.Link, error) {
	if _, ok := l.(*netlink.Veth); !ok {
		return nil, nil
	}
	// IFLA_LINK is the peer's index; IFLA_LINK_NETNSID is set only when
	// the peer lives in another namespace.
	a := l.Attrs()
	if a.ParentIndex == 0 || a.NetNsID >= 0 {
		return nil, nil
	}
	p, err := k.h.LinkByIndex(a.ParentIndex)
	if notFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("find peer of %q: %w", a.Name, err)
	}
	return p, nil
}

// configureVeth brings an existing pair to spec, changing only what
// differs. The peer is never set up.
func (k *Kernel) configureVeth(host, peer netlink.Link, br *netlink.Bridge, spec netspec.VethSpec, isolated bool, log logrus.FieldLogger) error {
	if spec.MTU > 0 {
		for _, l := range []netlink.Link{host, peer} {
			if l.Attrs().MTU == spec.MTU {
				continue
			}
			if err := k.h.LinkSetMTU(l, spec.MTU); err != nil {
				return fmt.Errorf("set mtu %d on %q: %w", spec.MTU, l.Attrs().Name, err)
			}
			log.WithFields(logrus.Fields{"link": l.Attrs().Name, "mtu": spec.MTU}).Info("set veth mtu")
		}
	}
	if spec.MAC != nil && !bytes.Equal(peer.Attrs().HardwareAddr, spec.MAC) {
		if err := k.h.LinkSetHardwareAddr(peer, spec.MAC); err != nil {
			return fmt.Errorf("set mac %s on peer %q: %w", spec.MAC, spec.PeerName, err)
		}
		log.WithField("mac", spec.MAC.String()).Info("set peer mac")
	}
	if host.Attrs().MasterIndex != br.Attrs().Index {
		if err := k.h.LinkSetMasterByIndex(host, br.Attrs().Index); err != nil {
			return fmt.Errorf("attach to bridge %q: %w", spec.Bridge, err)
		}
		log.Info("attached veth to bridge")
	}
	// The flags live on the bridge port, so after attaching.
	if err := k.ensureIsolated(host, isolated); err != nil {
		return err
	}
	if err := k.ensureHairpin(host); err != nil {
		return err
	}
	if err := k.ensureMark(host); err != nil {
		return err
	}
	if host.Attrs().Flags&net.FlagUp == 0 {
		if err := k.h.LinkSetUp(host); err != nil {
			return fmt.Errorf("set up: %w", err)
		}
	}
	return nil
}

// DeleteVeth deletes the veth whose host end is hostName, and with it its
// peer. A missing link is success; a link of that name that is not a veth
// is left alone and reported.
func (k *Kernel) DeleteVeth(hostName string) error {
	if err := validName(hostName); err != nil {
		return fmt.Errorf("delete veth: %w", err)
	}
	return k.deleteLink("veth", hostName, func(l netlink.Link) bool { _, ok := l.(*netlink.Veth); return ok }, "iface")
}
