package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/v6bridge/v6bridge/plan"
)

// requestAuto answers an IPv6 pool request without --subnet with the next
// free subnet of the address plan: plan.Carve over the space autoSubnet
// picks, avoiding every IPv6 pool (explicit ones included), the host's
// addresses and the uplink's gateways. The pool is persisted like any
// other, so the network keeps its subnet across restarts.
func (m *IPAM) requestAuto(opts poolOptions, subPool string) (Pool, error) {
	if v := strings.TrimSpace(subPool); v != "" {
		return Pool{}, refuse(ErrSubnetRequired, "ip-range %q needs --subnet: give the subnet it lies in, or leave both out for an automatic subnet from the address plan", v)
	}
	var public func() (netip.Prefix, error)
	if m.host != nil {
		public = m.host.PublicPrefix
	}
	space, bits, name, err := autoSubnet(opts, public, m.pubLen, m.ulaHost, m.ulaLen)
	if err != nil {
		return Pool{}, err
	}
	var avoid plan.Avoid
	if m.host != nil {
		for _, f := range []struct {
			what string
			fn   func() ([]netip.Addr, error)
		}{{"the host's addresses", m.host.HostAddrs}, {"the uplink's gateways", m.host.DefaultGateways}} {
			as, err := f.fn()
			if err != nil {
				return Pool{}, fmt.Errorf("carve a subnet from %s: read %s: %w", name, f.what, err)
			}
			avoid.Addrs = append(avoid.Addrs, as...)
		}
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range m.pools {
		if !p.rec.Placeholder {
			avoid.Prefixes = append(avoid.Prefixes, p.rec.Prefix)
		}
	}
	subnet, err := plan.Carve(space, bits, avoid)
	if errors.Is(err, plan.ErrExhausted) {
		return Pool{}, refuse(ErrPoolExhausted, "no automatic /%d is free in %s: it holds %s of them, and each is used by a v6bridge network or holds an address of the host or its gateway; "+
			"remove a network, give --subnet, or ask for another size with --ipam-opt %s=N",
			bits, name, plan.Held(space, bits), OptPrefixLen)
	}
	if err != nil {
		return Pool{}, fmt.Errorf("carve a subnet from %s: %w", name, err)
	}
	return m.addV6Pool(subnet, subnet, opts, "IPv6 pool carved from the address plan")
}

// ulaFile is the file in the IPAM state directory holding the generated
// ULA_PREFIX.
const ulaFile = "ula.json"

// ulaRecord is the persisted ULA prefix.
type ulaRecord struct {
	Prefix netip.Prefix `json:"prefix"`
}

// setULA sets the ULA prefix in effect: cfg when given, else the one
// persisted at an earlier start, else a new random /48 that is persisted.
func (m *IPAM) setULA(cfg netip.Prefix) error {
	ula := cfg
	if ula.IsValid() {
		if err := plan.CheckULA("ULA_PREFIX", ula); err != nil {
			return err
		}
	} else {
		saved, err := m.be.loadULA()
		if err != nil {
			return err
		}
		if ula = saved; ula.IsValid() {
			if err := plan.CheckULA("persisted ULA prefix ("+ulaFile+")", ula); err != nil {
				return err
			}
		} else {
			if ula, err = plan.NewULA(nil); err != nil {
				return err
			}
			if err := m.be.putULA(ula); err != nil {
				return err
			}
			m.log.WithField("pool", ula).Info("Generated this host's ULA prefix (set ULA_PREFIX to choose one)")
		}
	}
	host, err := plan.HostULA(ula, 0)
	if err != nil {
		return err
	}
	m.ula, m.ulaHost = ula, host
	m.log.WithFields(logrus.Fields{"ula": ula, "ula_host": host}).Debug("ULA prefix in effect")
	return nil
}

// ULA returns ULA_PREFIX in effect and this host's ULA /64 inside it, from
// which nat and internal networks get automatic subnets.
func (m *IPAM) ULA() (prefix, host netip.Prefix) {
	return m.ula, m.ulaHost
}

// LoadULA reads the ULA prefix an IPAM with state directory stateDir
// generated; ok is false when it has generated none yet. It writes nothing.
func LoadULA(stateDir string) (p netip.Prefix, ok bool, err error) {
	p, err = loadULAFile(stateDir)
	return p, p.IsValid(), err
}
