package ndp

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/sirupsen/logrus"
)

// Modes of answering (Config.Mode, NDP_PROXY).
const (
	// ModeNative answers in process: solicitations are captured on the
	// uplink and advertisements sent from it (the default).
	ModeNative = "native"
	// ModeKernel installs kernel proxy-neighbour entries and lets the
	// kernel answer.
	ModeKernel = "kernel"
	// ModeOff answers nothing.
	ModeOff = "off"
)

// ErrRangeUnsupported is returned by SetTargets in kernel mode when ranges
// are asked for: the kernel proxies single addresses only. The single
// addresses are still applied.
var ErrRangeUnsupported = errors.New("kernel ndp proxy cannot answer for ranges")

// Config configures a Responder.
type Config struct {
	// Uplinks are the interfaces the provider's router solicits on. Each
	// address is answered on the uplink whose on-link prefix contains it,
	// else on the first. Required unless Mode is ModeOff.
	Uplinks []string
	// Mode is ModeNative (also for ""), ModeKernel or ModeOff.
	Mode string
	// Source is the advertisements' IPv6 source: SourceLinkLocal (also for
	// ""), SourceTarget or SourceGlobal. Native mode and unsolicited
	// advertisements only; the kernel picks its own.
	Source string
	// Router sets the Router flag of the advertisements.
	Router bool
	// ProcSys is where sysctls are written (kernel mode); "" is /proc/sys.
	ProcSys string
	// Log receives one Info line per address started or stopped and a
	// Debug line per answer; nil discards.
	Log logrus.FieldLogger
}

// normalize fills the defaults in and checks the values, naming the
// setting, the bad value and what is accepted.
func (c Config) normalize() (Config, error) {
	if c.Mode == "" {
		c.Mode = ModeNative
	}
	if c.Source == "" {
		c.Source = SourceLinkLocal
	}
	if c.ProcSys == "" {
		c.ProcSys = "/proc/sys"
	}
	if c.Log == nil {
		l := logrus.New()
		l.Out = discard{}
		c.Log = l
	}
	if !slices.Contains([]string{ModeNative, ModeKernel, ModeOff}, c.Mode) {
		return c, fmt.Errorf("ndp mode %q: want %q, %q or %q", c.Mode, ModeNative, ModeKernel, ModeOff)
	}
	if !slices.Contains([]string{SourceLinkLocal, SourceTarget, SourceGlobal}, c.Source) {
		return c, fmt.Errorf("ndp source %q: want %q, %q or %q", c.Source, SourceLinkLocal, SourceTarget, SourceGlobal)
	}
	if c.Mode != ModeOff && len(c.Uplinks) == 0 {
		return c, fmt.Errorf("ndp mode %q needs at least one uplink", c.Mode)
	}
	seen := map[string]bool{}
	for _, u := range c.Uplinks {
		if u == "" || len(u) > 15 || seen[u] {
			return c, fmt.Errorf("ndp uplink %q: want distinct interface names of 1 to 15 characters", u)
		}
		seen[u] = true
	}
	c.Uplinks = slices.Clone(c.Uplinks)
	return c, nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// Stats are a Responder's counters since it was created.
type Stats struct {
	// Solicitations seen on the uplinks (native mode).
	Solicitations uint64
	// Answered solicitations; AnsweredUnicast and AnsweredDAD of them were
	// unicast reachability probes and duplicate address detection probes.
	Answered, AnsweredUnicast, AnsweredDAD uint64
	// Ignored solicitations, and how many for each reason (the Reason
	// constants, plus "malformed").
	Ignored        uint64
	IgnoredReasons map[string]uint64
	// Unsolicited advertisements sent.
	Unsolicited uint64
	// Addrs and Ranges are answered for now.
	Addrs  []netip.Addr
	Ranges []netip.Prefix
}

// ReasonMalformed counts solicitations that did not parse.
const ReasonMalformed = "malformed"
