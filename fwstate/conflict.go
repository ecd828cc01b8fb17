package fwstate

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/v6bridge/v6bridge/netspec"
)

// ErrPortConflict is wrapped by the error of Conflict (and so of nat's
// CheckConflicts, Build and Model.Update) when two mappings claim the same
// host address, protocol and port.
var ErrPortConflict = errors.New("host port already published")

// ConflictError says which host port two endpoints both publish.
type ConflictError struct {
	Proto    uint8
	HostPort uint16
	HostAddr netip.Addr // invalid: every host address
	Owner    netip.Addr // endpoint that published it first (in State order)
	Other    netip.Addr // endpoint that asked for it again
}

// Error names the host port, the endpoint asking again and its owner.
func (e *ConflictError) Error() string {
	on := "every host address"
	if e.HostAddr.IsValid() {
		on = e.HostAddr.String()
	}
	return fmt.Sprintf("publish for %s: host port %s/%d on %s is already published by %s",
		e.Other, netspec.ProtoName(e.Proto), e.HostPort, on, e.Owner)
}

// Unwrap makes errors.Is(err, ErrPortConflict) true.
func (e *ConflictError) Unwrap() error { return ErrPortConflict }

// Conflict is the one rule for host ports published twice: mapping a of
// endpoint owner and mapping b of endpoint other conflict when they have
// the same protocol, overlapping host port ranges and overlapping host
// addresses (an invalid HostAddr means every host address, and overlaps
// all). It returns nil when they do not conflict, else a *ConflictError
// naming the first host port both claim. The caller decides which pairs
// to ask about (the same mapping repeated by one endpoint is not a
// conflict, and mappings of internal networks publish nothing).
func Conflict(owner netip.Addr, a Mapping, other netip.Addr, b Mapping) error {
	if a.Proto != b.Proto {
		return nil
	}
	if a.HostAddr.IsValid() && b.HostAddr.IsValid() && a.HostAddr != b.HostAddr {
		return nil
	}
	lo, hi := max(a.HostFirst, b.HostFirst), min(a.HostLast, b.HostLast)
	if lo > hi {
		return nil
	}
	h := a.HostAddr
	if !h.IsValid() {
		h = b.HostAddr
	}
	return &ConflictError{Proto: a.Proto, HostPort: lo, HostAddr: h, Owner: owner, Other: other}
}
