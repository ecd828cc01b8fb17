package ipam

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/sirupsen/logrus"
)

// AddressOptions say what an address is for, as the engine's RequestAddress
// options do (internal/api decodes them).
type AddressOptions struct {
	// Gateway: the network's gateway address.
	Gateway bool
	// Name is the endpoint's name, if the engine sends it (engines >= 29):
	// an endpoint re-requesting without an address gets the one it had
	// last, if it is free.
	Name string
}

// RequestAddress allocates an address of pool poolID and returns it with
// the pool's prefix length.
//
// addr is a bare IP or "". With opts.Gateway it is the pool's gateway:
// addr, or the first address of the subnet. Otherwise a given addr is honoured exactly (anywhere in the
// subnet, even outside the ip-range), and without one the next free address
// of the range comes in round-robin order.
func (m *IPAM) RequestAddress(poolID, addr string, opts AddressOptions) (netip.Prefix, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.pools[poolID]
	if !ok {
		return netip.Prefix{}, refuse(ErrUnknownPool, "pool %q does not exist (released, or never requested from v6bridge)", poolID)
	}
	var want netip.Addr
	if strings.TrimSpace(addr) != "" {
		a, err := parseAddr(addr)
		if err != nil {
			return netip.Prefix{}, err
		}
		want = a
	}
	gateway := opts.Gateway
	var (
		got netip.Addr
		err error
	)
	switch {
	case p.rec.Placeholder && gateway:
		return placeholderGateway(p, want)
	case gateway:
		got, err = m.takeGateway(p, want)
	case want.IsValid():
		got, err = m.takeStatic(p, want)
	default:
		got, err = m.takeRemembered(p, opts.Name)
		if !got.IsValid() && err == nil {
			got, err = m.takeNext(p)
		}
	}
	if err != nil {
		return netip.Prefix{}, err
	}
	delete(p.freed, got)
	if name := opts.Name; name != "" && !gateway && p.names[name] != got {
		if err := m.be.putName(p.rec.ID, nameRecord{Name: name, Addr: got}); err != nil {
			m.log.WithError(err).WithField("pool", p.rec.ID).Warn("remember endpoint address")
		} else {
			p.names[name] = got
		}
	}
	if !gateway {
		m.forgetOtherNames(p, got, opts.Name)
	}
	return netip.PrefixFrom(got, p.rec.Prefix.Bits()), nil
}

// parseAddr parses an address as the engine sends it: a bare IP (a CIDR
// suffix is tolerated and dropped).
func parseAddr(s string) (netip.Addr, error) {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '/'); i >= 0 {
		s = s[:i]
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, refuse(ErrInvalidRequest, "address %q is not an IP address: accepted is a bare address such as fd12:3456:789a:1::10",
			s)
	}
	return a, nil
}

// checkInPool refuses an address a caller asked for that is outside the
// pool's subnet or may never be handed out.
func checkInPool(p *pool, a netip.Addr, what string) error {
	if !p.rec.Prefix.Contains(a) {
		return refuse(ErrOutOfRange, "%s %s is not in subnet %s", what, a, p.rec.Prefix)
	}
	if p.rec.Placeholder && p.alloc.isReserved(a) {
		return refuse(ErrReservedAddress, "%s %s is reserved in the IPv4 placeholder pool %s: pick another address",
			what, a, p.rec.Prefix)
	}
	if a == p.rec.Prefix.Addr() {
		return refuse(ErrReservedAddress, "%s %s is the subnet-router anycast address of %s (all-zero host part): pick another address",
			what, a, p.rec.Prefix)
	}
	return nil
}

// takeGateway allocates the gateway of an IPv6 pool. m.mu is held.
func (m *IPAM) takeGateway(p *pool, want netip.Addr) (netip.Addr, error) {
	if !want.IsValid() {
		want = p.rec.Prefix.Addr().Next()
	}
	if err := checkInPool(p, want, "gateway"); err != nil {
		return netip.Addr{}, err
	}
	if want == p.gateway {
		return want, nil // a repeated request
	}
	if p.gateway.IsValid() {
		return netip.Addr{}, refuse(ErrAddressInUse, "pool %s already has gateway %s; a second gateway %s is not accepted",
			p.rec.Prefix, p.gateway, want)
	}
	if p.alloc.inUse(want) {
		return netip.Addr{}, refuse(ErrAddressInUse, "gateway %s is already in use in subnet %s", want, p.rec.Prefix)
	}
	if err := m.be.putAddr(p.rec.ID, addrRecord{Addr: want, Gateway: true}); err != nil {
		return netip.Addr{}, err
	}
	p.take(want)
	p.gateway = want
	m.log.WithFields(logrus.Fields{"pool": p.rec.ID, "addr": want}).Info("Gateway address allocated")
	return want, nil
}

// takeStatic allocates a requested address. m.mu is held.
func (m *IPAM) takeStatic(p *pool, want netip.Addr) (netip.Addr, error) {
	if err := checkInPool(p, want, "address"); err != nil {
		return netip.Addr{}, err
	}
	if p.alloc.inUse(want) {
		what := "in use"
		if want == p.gateway {
			what = "the gateway"
		}
		return netip.Addr{}, refuse(ErrAddressInUse, "address %s is already %s in subnet %s", want, what, p.rec.Prefix)
	}
	if m.heldByEndpoint(want) {
		return netip.Addr{}, refuse(ErrAddressInUse, "address %s is still held by an endpoint of subnet %s (the engine released it while the container is attached, "+
			"e.g. after a sysctl disabled its IPv6): it is free once that container leaves the network; pick another address", want, p.rec.Prefix)
	}
	if err := m.be.putAddr(p.rec.ID, addrRecord{Addr: want}); err != nil {
		return netip.Addr{}, err
	}
	p.take(want)
	m.log.WithFields(logrus.Fields{"pool": p.rec.ID, "addr": want}).Info("Requested address allocated")
	return want, nil
}

// takeRemembered gives an endpoint the address it had last, if it is still
// free and in the range; otherwise it returns the zero address and no error.
// m.mu is held.
func (m *IPAM) takeRemembered(p *pool, name string) (netip.Addr, error) {
	a, ok := p.names[name]
	if name == "" || !ok || p.alloc.inUse(a) || p.alloc.isReserved(a) || !p.rec.Range.Contains(a) || m.heldByEndpoint(a) {
		return netip.Addr{}, nil
	}
	if err := m.be.putAddr(p.rec.ID, addrRecord{Addr: a}); err != nil {
		return netip.Addr{}, err
	}
	p.take(a)
	m.log.WithFields(logrus.Fields{"pool": p.rec.ID, "addr": a, "endpoint": name}).Info("Address allocated again to the same endpoint")
	return a, nil
}

// takeNext allocates the next free address of the pool's range in
// round-robin order. m.mu is held.
func (m *IPAM) takeNext(p *pool) (netip.Addr, error) {
	a, ok := p.alloc.next()
	// Skip addresses an endpoint still holds (Config.Held): marked used
	// for this scan only, so they come back once the endpoint is gone.
	var skipped []netip.Addr
	for ok && m.heldByEndpoint(a) {
		p.alloc.add(a)
		skipped = append(skipped, a)
		a, ok = p.alloc.next()
	}
	for _, s := range skipped {
		p.alloc.remove(s)
	}
	if len(skipped) > 0 {
		m.log.WithFields(logrus.Fields{"pool": p.rec.ID, "skipped": skipped}).Info("Addresses released by the engine but still held by an endpoint skipped")
	}
	if !ok {
		return netip.Addr{}, refuse(ErrPoolExhausted, "%s", exhaustedText(p))
	}
	if err := m.be.putAddr(p.rec.ID, addrRecord{Addr: a}); err != nil {
		return netip.Addr{}, err
	}
	if err := m.be.putCursor(p.rec.ID, a); err != nil {
		if derr := m.be.deleteAddr(p.rec.ID, a); derr != nil {
			m.log.WithFields(logrus.Fields{"pool": p.rec.ID, "addr": a}).WithError(derr).Warn("Undo address allocation")
		}
		return netip.Addr{}, err
	}
	p.take(a)
	p.alloc.cursor = a
	m.log.WithFields(logrus.Fields{"pool": p.rec.ID, "addr": a}).Info("Address allocated")
	return a, nil
}

// heldByEndpoint reports whether an endpoint of the driver still has a
// (Config.Held).
func (m *IPAM) heldByEndpoint(a netip.Addr) bool {
	return m.held != nil && m.held(a)
}

// exhaustedText describes an exhausted pool.
func exhaustedText(p *pool) string {
	if p.rec.Placeholder {
		return fmt.Sprintf("placeholder IPv4 pool %s is exhausted: all %d addresses a v6bridge network has on engines before Docker 28 are in use; "+
			"spread the containers over more networks, or use Docker >= 28 with --ipv4=false",
			p.rec.Prefix, p.alloc.capacity())
	}
	where := fmt.Sprintf("subnet %s", p.rec.Prefix)
	if p.rec.Range != p.rec.Prefix {
		where += fmt.Sprintf(" (ip-range %s)", p.rec.Range)
	}
	return fmt.Sprintf("pool %s is exhausted: all %d usable of its %s addresses are in use; use a larger subnet or ip-range",
		where, p.alloc.capacity(), prefixSizeText(p.rec.Range))
}

// ReleaseAddress frees an address of pool poolID. Unknown pools and
// addresses succeed.
func (m *IPAM) ReleaseAddress(poolID, addr string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.pools[poolID]
	if !ok {
		return nil
	}
	a, err := parseAddr(addr)
	if err != nil {
		return err
	}
	if !p.has(a) {
		return nil
	}
	if err := m.be.deleteAddr(poolID, a); err != nil {
		return err
	}
	p.free(a)
	p.freed[a] = m.now()
	m.log.WithFields(logrus.Fields{"pool": poolID, "addr": a}).Info("Address released")
	return nil
}
