package link

import (
	"encoding/binary"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/v6bridge/v6bridge/internal/nlretry"
)

// AddrDumper lists the addresses of one link with a dump the kernel
// filters. netlink's Handle.AddrList asks for every address of the
// namespace and drops the other links' here: with a link-local address on
// every container's veth, reading the uplink's addresses on each Join cost
// more the more containers the host had. With NETLINK_GET_STRICT_CHK on
// its socket (Linux >= 4.20) the kernel sends only the link's addresses;
// where the option is refused, AddrList answers instead. Safe for
// concurrent use.
type AddrDumper struct {
	sock *nl.SocketHandle // nil: the kernel cannot filter, use h
	h    *netlink.Handle
}

// NewAddrDumper opens the dumper's netlink socket in ns (netns.None(): the
// current namespace); h answers where the kernel cannot filter.
func NewAddrDumper(ns netns.NsHandle, h *netlink.Handle) *AddrDumper {
	d := &AddrDumper{h: h}
	s, err := nl.GetNetlinkSocketAt(ns, netns.None(), unix.NETLINK_ROUTE)
	if err != nil {
		return d
	}
	if unix.SetsockoptInt(s.GetFd(), unix.SOL_NETLINK, unix.NETLINK_GET_STRICT_CHK, 1) != nil {
		s.Close()
		return d
	}
	d.sock = &nl.SocketHandle{Socket: s}
	return d
}

// Close releases the socket.
func (d *AddrDumper) Close() {
	if d.sock != nil {
		d.sock.Socket.Close()
	}
}

// List returns l's addresses of family, retrying an interrupted dump
// (nlretry).
func (d *AddrDumper) List(l netlink.Link, family int) ([]netlink.Addr, error) {
	if d.sock == nil {
		return nlretry.Dump(func() ([]netlink.Addr, error) { return d.h.AddrList(l, family) })
	}
	index := l.Attrs().Index
	return nlretry.Dump(func() ([]netlink.Addr, error) {
		req := nl.NewNetlinkRequest(unix.RTM_GETADDR, unix.NLM_F_DUMP)
		msg := nl.NewIfAddrmsg(family)
		msg.Index = uint32(index)
		req.AddData(msg)
		req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: d.sock}
		msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWADDR)
		var out []netlink.Addr
		for _, m := range msgs {
			a, ok, perr := parseAddr(m)
			if perr != nil {
				return nil, fmt.Errorf("parse address of link %d: %w", index, perr)
			}
			if ok && a.LinkIndex == index {
				out = append(out, a)
			}
		}
		return out, err
	})
}

// parseAddr reads the parts of an RTM_NEWADDR message v6bridge uses:
// address with prefix length, scope, flags and link. ok is false for a
// message without an address.
func parseAddr(m []byte) (a netlink.Addr, ok bool, err error) {
	if len(m) < unix.SizeofIfAddrmsg {
		return a, false, fmt.Errorf("message of %d bytes", len(m))
	}
	msg := nl.DeserializeIfAddrmsg(m)
	attrs, err := nl.ParseRouteAttr(m[msg.Len():])
	if err != nil {
		return a, false, err
	}
	a.LinkIndex, a.Scope, a.Flags = int(msg.Index), int(msg.Scope), int(msg.Flags)
	var local, address net.IP
	for _, at := range attrs {
		switch at.Attr.Type {
		case unix.IFA_ADDRESS:
			address = net.IP(at.Value)
		case unix.IFA_LOCAL:
			local = net.IP(at.Value)
		case unix.IFA_FLAGS:
			if len(at.Value) >= 4 {
				a.Flags = int(binary.NativeEndian.Uint32(at.Value))
			}
		}
	}
	ip := address
	if local != nil {
		ip = local // a point-to-point address: IFA_ADDRESS is the peer
	}
	if ip == nil {
		return a, false, nil
	}
	a.IPNet = &net.IPNet{IP: ip, Mask: net.CIDRMask(int(msg.Prefixlen), 8*len(ip))}
	return a, true, nil
}
