package ndp

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/sirupsen/logrus"

	"github.com/v6bridge/v6bridge/internal/nftledger"
	"github.com/v6bridge/v6bridge/ndp/ndpproto"
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
	// ProcSys is where sysctls are written (kernel mode and hand-over);
	// "" is /proc/sys.
	ProcSys string
	// SourceRate and TotalRate cap the answers per second to one
	// solicitor and in all, DADRate the duplicate address detection
	// defences per second for one target; 0 means DefaultSourceRate,
	// DefaultTotalRate, DefaultDADRate, negative no limit (native mode).
	SourceRate, TotalRate, DADRate float64
	// RouterRate caps the answers per second to the uplink's default
	// router (burst twice), from a reserve nobody else spends and outside
	// TotalRate; 0 means DefaultRouterRate, negative no limit.
	RouterRate float64
	// AnnounceRate paces unsolicited advertisements and priming
	// solicitations, per second in all; 0 means DefaultAnnounceRate.
	AnnounceRate float64
	// PrimeRouter also sends, for each new address, a solicitation from
	// it to the uplink's default router (as ndpresponder does), so the
	// router learns the address before any traffic.
	PrimeRouter bool
	// NoIngressFilter leaves out the ingress filter (see IngressFilter)
	// that drops solicitations for addresses of the uplinks' prefixes
	// nobody here answers for.
	NoIngressFilter bool
	// Followed says the caller follows the uplinks (a link.Follower told
	// of the responder's UplinkChanged); else Run follows them itself.
	Followed bool
	// Ledger, if set, records the generations of the ingress filter's
	// nftables batches, so the firewall (nat.TableConfig.Ledger, the same
	// Ledger) takes them as harmless without listing its tables.
	Ledger *nftledger.Ledger
	// Log receives one Info line per address started or stopped and a
	// Debug line per answer; nil discards.
	Log logrus.FieldLogger
}

// normalize fills the defaults in and checks the values, naming the
// setting, the bad value and what is accepted.
func (c Config) normalize() (Config, error) {
	if c.Mode == "" {
		c.Mode = ndpproto.ModeNative
	}
	if c.Source == "" {
		c.Source = ndpproto.SourceLinkLocal
	}
	if c.AnnounceRate == 0 {
		c.AnnounceRate = DefaultAnnounceRate
	}
	if c.AnnounceRate < 0 {
		return c, fmt.Errorf("ndp announce rate %v: want a positive number of advertisements per second", c.AnnounceRate)
	}
	if c.ProcSys == "" {
		c.ProcSys = "/proc/sys"
	}
	if c.Log == nil {
		l := logrus.New()
		l.Out = discard{}
		c.Log = l
	}
	if !slices.Contains([]string{ndpproto.ModeNative, ndpproto.ModeKernel, ndpproto.ModeOff}, c.Mode) {
		return c, fmt.Errorf("ndp mode %q: want %q, %q or %q", c.Mode, ndpproto.ModeNative, ndpproto.ModeKernel, ndpproto.ModeOff)
	}
	if !slices.Contains([]string{ndpproto.SourceLinkLocal, ndpproto.SourceTarget, ndpproto.SourceGlobal}, c.Source) {
		return c, fmt.Errorf("ndp source %q: want %q, %q or %q", c.Source, ndpproto.SourceLinkLocal, ndpproto.SourceTarget, ndpproto.SourceGlobal)
	}
	if c.Mode != ndpproto.ModeOff && len(c.Uplinks) == 0 {
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
	// Solicitations that passed the capture filter (native mode): those
	// for targets answered for; the kernel drops the rest unseen.
	Solicitations uint64
	// Answered solicitations; AnsweredUnicast and AnsweredDAD of them were
	// unicast reachability probes and duplicate address detection probes,
	// KernelAnswered were answered by the uplink's ingress filter (native
	// mode; they count in Solicitations too, and those it found over a
	// budget in Limited).
	Answered, AnsweredUnicast, AnsweredDAD, KernelAnswered uint64
	// Ignored solicitations, and how many for each reason (the Reason
	// constants, plus "malformed").
	Ignored        uint64
	IgnoredReasons map[string]uint64
	// Limited are solicitations that would have been answered but were
	// over a budget, per reason (ReasonSourceLimit, ReasonTotalLimit,
	// ReasonDADLimit).
	Limited map[string]uint64
	// SocketDrops are packets the kernel dropped because the capture
	// socket's queue was full.
	SocketDrops uint64
	// FilterCoarse is set when a capture filter passes more than the
	// targets (too many to list exactly; the responder still decides).
	FilterCoarse bool
	// IngressDropped are solicitations the uplinks' ingress filters
	// dropped (for addresses of their prefixes nobody here answers
	// for); IngressProblem says why a filter is not in place, if so.
	IngressDropped uint64
	IngressProblem string
	// Unsolicited advertisements sent; Primed solicitations sent from new
	// addresses to the uplink's router.
	Unsolicited, Primed uint64
	// AnnouncePending are announcements waiting for their turn;
	// AnnouncePeakRate the highest rate they went out at, per second.
	AnnouncePending  int
	AnnouncePeakRate float64
	// Addrs and Ranges are answered for now.
	Addrs  []netip.Addr
	Ranges []netip.Prefix
}

// counters are the Responder's live counters.
type counters struct {
	solicitations, answered, answeredUnicast, answeredDAD atomic.Uint64
	ignored, unsolicited, primed                          atomic.Uint64
	reasonMu                                              sync.Mutex
	reasons, limited                                      map[string]uint64
}

func (c *counters) init() {
	c.reasons, c.limited = map[string]uint64{}, map[string]uint64{}
}

// ignore counts a solicitation not answered for reason; limited ones are
// the budget reasons.
func (c *counters) ignore(reason string, limited bool) {
	c.ignored.Add(1)
	c.reasonMu.Lock()
	if limited {
		c.limited[reason]++
	} else {
		c.reasons[reason]++
	}
	c.reasonMu.Unlock()
}

func (c *counters) stats() Stats {
	s := Stats{
		Solicitations:   c.solicitations.Load(),
		Answered:        c.answered.Load(),
		AnsweredUnicast: c.answeredUnicast.Load(),
		AnsweredDAD:     c.answeredDAD.Load(),
		Ignored:         c.ignored.Load(),
		Unsolicited:     c.unsolicited.Load(),
		Primed:          c.primed.Load(),
	}
	c.reasonMu.Lock()
	s.IgnoredReasons, s.Limited = maps.Clone(c.reasons), maps.Clone(c.limited)
	c.reasonMu.Unlock()
	if s.IgnoredReasons == nil {
		s.IgnoredReasons = map[string]uint64{}
	}
	if s.Limited == nil {
		s.Limited = map[string]uint64{}
	}
	return s
}
