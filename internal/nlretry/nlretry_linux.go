package nlretry

import "github.com/vishvananda/netlink"

var errDumpInterrupted = netlink.ErrDumpInterrupted
