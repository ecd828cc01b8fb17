// Package hostos is the host's operating system as v6bridge's driver and
// IPAM see it: a few facts about the host's addresses and its uplinks,
// behind one small interface, State, so the driver and the IPAM ask the
// kernel nothing themselves and their tests hand them plain data
// (TestState), as CoreRAD's internal/system does.
//
// The real State, OS, reads the kernel through package link (the Kernel
// interface; this package imports no netlink) each time it is asked, so a
// changed uplink address is seen at the next request.
package hostos

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/v6bridge/v6bridge/netspec"
)

// State is what v6bridge needs to know of the host's operating system.
type State interface {
	// HostAddrs returns the host's own global and ULA addresses on every
	// interface but v6bridge's bridges and veths: a --subnet containing
	// one is refused, and automatic subnets avoid them.
	HostAddrs() ([]netip.Addr, error)
	// UplinkAddrs returns the host's global addresses (ULA included) on
	// the uplinks: where published ports listen and what masquerade
	// uses. An uplink that cannot be read is left out (and logged).
	UplinkAddrs() []netip.Addr
	// PublicPrefixes returns the on-link prefixes of the uplinks and
	// PUBLIC_PREFIX if given: a subnet inside one defaults to mode
	// public. An uplink that cannot be read is left out (and logged).
	PublicPrefixes() []netip.Prefix
	// PublicPrefix returns PUBLIC_PREFIX, where automatic subnets of
	// public networks are carved from: the given one, or else the first
	// on-link global (not ULA) prefix of the uplinks, normally the
	// provider's /64; an error when there is none.
	PublicPrefix() (netip.Prefix, error)
	// DefaultGateways returns the next hops of the IPv6 default routes
	// through the uplinks: an automatic subnet never contains one.
	DefaultGateways() ([]netip.Addr, error)
	// UplinkMTU returns the first uplink's MTU, which new bridges default
	// to; 0 (the kernel's default) when it cannot be read.
	UplinkMTU() int
}

// Kernel is what OS reads the host through; *link.Kernel satisfies it.
type Kernel interface {
	HostAddrs() ([]netip.Addr, error)
	UplinkAddrs(uplink string) ([]netip.Addr, error)
	UplinkPrefixes(uplink string) ([]netip.Prefix, error)
	UplinkGateways(uplink string) ([]netip.Addr, error)
	LinkMTU(name string) (int, error)
}

// OS is the State of this host, read from the kernel at each question.
type OS struct {
	k       Kernel
	uplinks []string
	public  netip.Prefix
	log     logrus.FieldLogger
}

var _ State = (*OS)(nil)

// New returns the State of the host k reads, with its outside interfaces
// uplinks. public is PUBLIC_PREFIX if given (zero: the uplinks' first
// global /64). log receives a warning for each uplink that cannot be read.
func New(k Kernel, uplinks []string, public netip.Prefix, log logrus.FieldLogger) *OS {
	return &OS{k: k, uplinks: uplinks, public: public, log: log}
}

// HostAddrs implements State.
func (o *OS) HostAddrs() ([]netip.Addr, error) {
	return o.k.HostAddrs()
}

// UplinkAddrs implements State.
func (o *OS) UplinkAddrs() []netip.Addr {
	return readUplinks(o, "read uplink addresses", o.k.UplinkAddrs)
}

// uplinkPrefixes are the on-link prefixes of the uplinks.
func (o *OS) uplinkPrefixes() []netip.Prefix {
	out := readUplinks(o, "read uplink prefixes", o.k.UplinkPrefixes)
	for i, p := range out {
		out[i] = p.Masked()
	}
	return out
}

// readUplinks returns what read returns for each uplink, leaving out the
// uplinks it fails for with a warning: what.
func readUplinks[T any](o *OS, what string, read func(uplink string) ([]T, error)) []T {
	var out []T
	for _, up := range o.uplinks {
		vs, err := read(up)
		if err != nil {
			o.log.WithError(err).WithField("iface", up).Warn(what)
			continue
		}
		out = append(out, vs...)
	}
	return out
}

// PublicPrefixes implements State.
func (o *OS) PublicPrefixes() []netip.Prefix {
	out := o.uplinkPrefixes()
	if o.public.IsValid() {
		out = append(out, o.public)
	}
	return out
}

// PublicPrefix implements State.
func (o *OS) PublicPrefix() (netip.Prefix, error) {
	if o.public.IsValid() {
		return o.public, nil
	}
	for _, p := range o.uplinkPrefixes() {
		if !netspec.IsULA(p.Addr()) {
			return p, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("uplink %s has no global IPv6 prefix", strings.Join(o.uplinks, ","))
}

// DefaultGateways implements State: the gateways of every uplink that
// could be read, and the errors of the others.
func (o *OS) DefaultGateways() ([]netip.Addr, error) {
	var out []netip.Addr
	var errs []error
	for _, up := range o.uplinks {
		gws, err := o.k.UplinkGateways(up)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, gws...)
	}
	return out, errors.Join(errs...)
}

// UplinkMTU implements State.
func (o *OS) UplinkMTU() int {
	if len(o.uplinks) == 0 {
		return 0
	}
	m, err := o.k.LinkMTU(o.uplinks[0])
	if err != nil {
		return 0
	}
	return m
}
