package ndp

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/mdlayher/socket"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/v6bridge/v6bridge/ndp/ndpproto"
)

// backend carries out one mode's part of a plan on an uplink and records
// in u.st what succeeded. Callers hold r.mu.
type backend interface {
	apply(u *uplink, p ndpproto.UplinkPlan) []error
}

var (
	_ backend = nativeBackend{}
	_ backend = kernelBackend{}
	_ backend = offBackend{}
)

// nativeBackend joins and leaves solicited-node groups, follows ranges with
// ALLMULTI, reloads the capture filter, and has the proxy entries a
// previous run left for the hand-over taken back (by takeBackLoop, once
// its own answering runs).
type nativeBackend struct{ r *Responder }

func (b nativeBackend) apply(u *uplink, p ndpproto.UplinkPlan) []error {
	var errs []error
	for _, g := range p.Leave {
		u.groups.leave(g)
	}
	for _, g := range p.Join {
		if err := u.groups.join(g); err != nil {
			errs = append(errs, err)
		}
	}
	if wantAll := len(u.st.Ranges) > 0; wantAll != u.allmulti {
		opt := unix.PACKET_DROP_MEMBERSHIP
		if wantAll {
			opt = unix.PACKET_ADD_MEMBERSHIP
		}
		mreq := &unix.PacketMreq{Ifindex: int32(u.index), Type: unix.PACKET_MR_ALLMULTI}
		if err := u.pc.SetsockoptPacketMreq(unix.SOL_PACKET, opt, mreq); err != nil {
			errs = append(errs, fmt.Errorf("ndp uplink %q: allmulti %v: %w", u.name, wantAll, err))
		} else {
			u.allmulti = wantAll
		}
	}
	if len(p.Stop)+len(p.Start) > 0 || !u.filtered || !slices.Equal(u.filteredRanges, u.st.Ranges) {
		if err := loadFilter(u); err != nil {
			errs = append(errs, err)
		}
	}
	if len(p.DelProxy) > 0 {
		b.r.kickTakeBack()
	}
	return errs
}

// loadFilter attaches the capture filter for u's addresses and ranges,
// replacing the old one atomically.
func loadFilter(u *uplink) error {
	addrs := make([]netip.Addr, 0, len(u.st.Addrs))
	for a := range u.st.Addrs {
		addrs = append(addrs, a)
	}
	prog, coarse := ndpproto.BuildFilter(addrs, u.st.Ranges)
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return fmt.Errorf("ndp uplink %q: assemble capture filter: %w", u.name, err)
	}
	// A coarse filter passes whole groups of addresses: another address
	// of a group already passed changes nothing, and attaching costs a
	// copy and check of the whole program.
	if !u.filtered || !slices.Equal(raw, u.filterRaw) {
		if err := u.pc.SetBPF(raw); err != nil {
			return fmt.Errorf("ndp uplink %q: attach capture filter: %w", u.name, err)
		}
	}
	u.coarse, u.filtered, u.filteredRanges, u.filterRaw = coarse, true, slices.Clone(u.st.Ranges), raw
	return nil
}

func attachFilter(pc *socket.Conn, prog []bpf.Instruction) error {
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return fmt.Errorf("assemble capture filter: %w", err)
	}
	if err := pc.SetBPF(raw); err != nil {
		return fmt.Errorf("attach capture filter: %w", err)
	}
	return nil
}

// kernelBackend installs and removes proxy-neighbour entries.
type kernelBackend struct{ r *Responder }

func (b kernelBackend) apply(u *uplink, p ndpproto.UplinkPlan) []error {
	var errs []error
	for _, a := range p.DelProxy {
		if err := b.r.delProxy(u, a); err != nil {
			errs = append(errs, err)
		}
	}
	for _, a := range p.AddProxy {
		if err := b.r.addProxy(u, a); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// offBackend answers nothing.
type offBackend struct{}

func (offBackend) apply(*uplink, ndpproto.UplinkPlan) []error { return nil }
