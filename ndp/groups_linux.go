package ndp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	mndp "github.com/mdlayher/ndp"
	"github.com/sirupsen/logrus"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// groupJoiner holds an uplink's solicited-node group memberships (native
// mode): each group joined on one of a few ICMPv6 sockets that receive
// nothing (their filter blocks every message) and exist only so the kernel
// sends MLD reports and lets the groups' frames in. A socket's joins are
// bounded by its option memory, so it opens another when one is full.
// Joined groups are recorded in the uplink's state. Callers hold r.mu.
type groupJoiner struct {
	r     *Responder
	u     *uplink
	on    map[netip.Addr]*mndp.Conn // group -> the socket it is joined on
	conns []*mndp.Conn
}

func (j *groupJoiner) init(r *Responder, u *uplink) {
	j.r, j.u, j.on = r, u, map[netip.Addr]*mndp.Conn{}
}

// join joins g, on the newest socket or a new one when that is full.
func (j *groupJoiner) join(g netip.Addr) error {
	if _, ok := j.on[g]; ok {
		j.u.st.Groups[g] = struct{}{}
		return nil
	}
	for attempt := 0; attempt < 2; attempt++ {
		if len(j.conns) == 0 || attempt > 0 {
			c, err := j.open()
			if err != nil {
				return err
			}
			j.conns = append(j.conns, c)
		}
		c := j.conns[len(j.conns)-1]
		err := c.JoinGroup(g)
		switch {
		case err == nil, errors.Is(err, unix.EADDRINUSE):
			j.on[g] = c
			j.u.st.Groups[g] = struct{}{}
			return nil
		case errors.Is(err, unix.ENOMEM) || errors.Is(err, unix.ENOBUFS):
			continue
		default:
			return fmt.Errorf("ndp uplink %q: join %s: %w", j.u.name, g, err)
		}
	}
	return fmt.Errorf("ndp uplink %q: join %s: out of socket option memory", j.u.name, g)
}

// leave leaves g; failures are logged (the group is gone with the socket
// at the latest).
func (j *groupJoiner) leave(g netip.Addr) {
	delete(j.u.st.Groups, g)
	c, ok := j.on[g]
	if !ok {
		return
	}
	delete(j.on, g)
	if err := c.LeaveGroup(g); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) && !errors.Is(err, unix.ENODEV) {
		j.r.log.WithFields(logrus.Fields{"iface": j.u.name, "group": g}).WithError(err).Warn("ndp: leave group")
	}
}

// open opens a join socket in the responder's namespace.
func (j *groupJoiner) open() (*mndp.Conn, error) {
	var c *mndp.Conn
	err := j.r.inNS(func() error {
		var err error
		ifi := &net.Interface{Index: j.u.index, Name: j.u.name, MTU: 1280}
		c, _, err = mndp.Listen(ifi, mndp.Unspecified)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ndp uplink %q: open join socket: %w", j.u.name, err)
	}
	var f ipv6.ICMPFilter
	f.SetAll(true)
	if err := c.SetICMPFilter(&f); err != nil {
		c.Close()
		return nil, fmt.Errorf("ndp uplink %q: filter join socket: %w", j.u.name, err)
	}
	return c, nil
}

// close closes the sockets, which leaves every group.
func (j *groupJoiner) close() error {
	var errs []error
	for _, c := range j.conns {
		errs = append(errs, c.Close())
	}
	j.conns = nil
	clear(j.on)
	if j.u != nil {
		clear(j.u.st.Groups)
	}
	return errors.Join(errs...)
}
