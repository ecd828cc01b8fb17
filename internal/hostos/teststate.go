package hostos

import (
	"net/netip"
	"slices"
)

// TestState is a State of plain data for tests: each method returns its
// field (a copy of it), and the methods that can fail return the error
// field beside it. A test may change the fields between calls (the host
// gained an address); the zero TestState is a host with no addresses, no
// prefixes, no gateways and the kernel's default MTU.
type TestState struct {
	Host        []netip.Addr   // HostAddrs
	HostErr     error          // HostAddrs' error
	Uplink      []netip.Addr   // UplinkAddrs
	Prefixes    []netip.Prefix // PublicPrefixes
	Public      netip.Prefix   // PublicPrefix
	PublicErr   error          // PublicPrefix's error
	Gateways    []netip.Addr   // DefaultGateways
	GatewaysErr error          // DefaultGateways' error
	MTU         int            // UplinkMTU
}

var _ State = (*TestState)(nil)

// HostAddrs implements State.
func (s *TestState) HostAddrs() ([]netip.Addr, error) { return slices.Clone(s.Host), s.HostErr }

// UplinkAddrs implements State.
func (s *TestState) UplinkAddrs() []netip.Addr { return slices.Clone(s.Uplink) }

// PublicPrefixes implements State.
func (s *TestState) PublicPrefixes() []netip.Prefix { return slices.Clone(s.Prefixes) }

// PublicPrefix implements State.
func (s *TestState) PublicPrefix() (netip.Prefix, error) { return s.Public, s.PublicErr }

// DefaultGateways implements State.
func (s *TestState) DefaultGateways() ([]netip.Addr, error) {
	return slices.Clone(s.Gateways), s.GatewaysErr
}

// UplinkMTU implements State.
func (s *TestState) UplinkMTU() int { return s.MTU }
