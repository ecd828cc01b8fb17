package hostos

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/sirupsen/logrus"
)

// fakeKernel is a host of two uplinks: up0 with a ULA and a global /64,
// and up1; any other uplink cannot be read.
type fakeKernel struct{}

var errNoLink = errors.New("link not found")

var (
	up0Global = netip.MustParsePrefix("2001:db8:1234:a1::1/64")
	up0ULA    = netip.MustParsePrefix("fd00:5::1/64")
	up1Global = netip.MustParsePrefix("2001:db8:6::1/64")
)

func (fakeKernel) uplink(name string) ([]netip.Prefix, error) {
	switch name {
	case "up0":
		return []netip.Prefix{up0ULA, up0Global}, nil
	case "up1":
		return []netip.Prefix{up1Global}, nil
	}
	return nil, fmt.Errorf("%q: %w", name, errNoLink)
}

func (k fakeKernel) HostAddrs() ([]netip.Addr, error) {
	return []netip.Addr{up0Global.Addr(), up0ULA.Addr(), up1Global.Addr()}, nil
}

func (k fakeKernel) UplinkAddrs(up string) ([]netip.Addr, error) {
	ps, err := k.uplink(up)
	var out []netip.Addr
	for _, p := range ps {
		out = append(out, p.Addr())
	}
	return out, err
}

func (k fakeKernel) UplinkPrefixes(up string) ([]netip.Prefix, error) { return k.uplink(up) }

func (k fakeKernel) UplinkGateways(up string) ([]netip.Addr, error) {
	ps, err := k.uplink(up)
	if err != nil {
		return nil, err
	}
	return []netip.Addr{ps[len(ps)-1].Masked().Addr().Next()}, nil
}

func (k fakeKernel) LinkMTU(name string) (int, error) {
	if _, err := k.uplink(name); err != nil {
		return 0, err
	}
	return 1480, nil
}

func quiet() logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

var cmpNet = cmp.Options{cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })}

// TestOS: the facts of the uplinks, an unreadable uplink left out of the
// lists and reported by the calls that return errors, and PUBLIC_PREFIX
// given or taken from the uplinks' first global prefix.
func TestOS(t *testing.T) {
	given := netip.MustParsePrefix("2001:db8:99::/64")
	type facts struct {
		Uplink   []netip.Addr
		Prefixes []netip.Prefix
		Public   netip.Prefix
		PubErr   string
		Gateways []netip.Addr
		GwErr    string
		MTU      int
	}
	tests := []struct {
		name    string
		uplinks []string
		public  netip.Prefix
		want    facts
	}{
		{"two uplinks", []string{"up0", "up1"}, netip.Prefix{}, facts{
			Uplink:   []netip.Addr{up0ULA.Addr(), up0Global.Addr(), up1Global.Addr()},
			Prefixes: []netip.Prefix{up0ULA.Masked(), up0Global.Masked(), up1Global.Masked()},
			Public:   up0Global.Masked(),
			Gateways: []netip.Addr{netip.MustParseAddr("2001:db8:1234:a1::1"), netip.MustParseAddr("2001:db8:6::1")},
			MTU:      1480,
		}},
		{"PUBLIC_PREFIX given", []string{"up0"}, given, facts{
			Uplink:   []netip.Addr{up0ULA.Addr(), up0Global.Addr()},
			Prefixes: []netip.Prefix{up0ULA.Masked(), up0Global.Masked(), given},
			Public:   given,
			Gateways: []netip.Addr{netip.MustParseAddr("2001:db8:1234:a1::1")},
			MTU:      1480,
		}},
		{"first uplink unreadable", []string{"gone", "up1"}, netip.Prefix{}, facts{
			Uplink:   []netip.Addr{up1Global.Addr()},
			Prefixes: []netip.Prefix{up1Global.Masked()},
			Public:   up1Global.Masked(),
			Gateways: []netip.Addr{netip.MustParseAddr("2001:db8:6::1")},
			GwErr:    `"gone": link not found`,
		}},
		{"no uplink", nil, netip.Prefix{}, facts{PubErr: "uplink  has no global IPv6 prefix"}},
	}
	errText := func(err error) string {
		if err == nil {
			return ""
		}
		return strings.TrimSpace(err.Error())
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := New(fakeKernel{}, tt.uplinks, tt.public, quiet())
			var got facts
			got.Uplink = o.UplinkAddrs()
			got.Prefixes = o.PublicPrefixes()
			p, err := o.PublicPrefix()
			got.Public, got.PubErr = p, errText(err)
			gws, err := o.DefaultGateways()
			got.Gateways, got.GwErr = gws, errText(err)
			got.MTU = o.UplinkMTU()
			if diff := cmp.Diff(tt.want, got, cmpNet); diff != "" {
				t.Errorf("facts (-want +got):\n%s", diff)
			}
		})
	}
}

// TestTestState: the double returns its fields, and a changed field is
// what the next call returns.
func TestTestState(t *testing.T) {
	a := netip.MustParseAddr("2001:db8::1")
	s := &TestState{Uplink: []netip.Addr{a}, HostErr: errNoLink, MTU: 1500}
	var st State = s
	if got := st.UplinkAddrs(); len(got) != 1 || got[0] != a {
		t.Errorf("UplinkAddrs = %v, want [%s]", got, a)
	}
	if _, err := st.HostAddrs(); !errors.Is(err, errNoLink) {
		t.Errorf("HostAddrs error = %v, want %v", err, errNoLink)
	}
	s.Uplink = nil
	if got := st.UplinkAddrs(); got != nil {
		t.Errorf("UplinkAddrs after the change = %v, want none", got)
	}
	if st.UplinkMTU() != 1500 {
		t.Errorf("UplinkMTU = %d, want 1500", st.UplinkMTU())
	}
}
