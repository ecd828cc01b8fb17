package ndp

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/sirupsen/logrus"

	"github.com/v6bridge/v6bridge/ndp/ingress"
	"github.com/v6bridge/v6bridge/ndp/ndpproto"
)

// ingressState is an uplink's ingress filter as installed. Guarded by
// Responder.mu.
type ingressState struct {
	table  *nftables.Table // nil: not installed
	set    *nftables.Set
	answer *nftables.Set // nil: no answers in the kernel
	have   ndpproto.IngressFilter
	own    []netip.Addr // the uplink's addresses have was planned with
	index  int          // the uplink's link the table was made for (its answers name it)
	err    error        // the last failure, until a sync succeeds
	// noAnswer is set once a filter with answers failed where one without
	// them worked: the kernel lacks something answering needs.
	noAnswer bool
	// retired are the counters of the tables the filter had before this
	// one (replaced, or removed), so that Stats counts since the start
	// and not since the last rebuild.
	retired map[string]uint64
}

// kernelAnswer is how u's ingress filter answers: only in native mode,
// and not on a kernel that could not build the answers (noAnswer).
// Callers hold r.mu.
func (r *Responder) kernelAnswer(u *uplink) *ndpproto.KernelAnswer {
	if r.cfg.Mode != ndpproto.ModeNative || !u.up || u.ingress.noAnswer {
		return nil
	}
	a := ndpproto.NewKernelAnswer(r.decideConfig(u), r.cfg.SourceRate, r.cfg.TotalRate)
	a.Reserve(u.router, r.cfg.RouterRate)
	return a
}

// openIngress opens the lasting netlink connection that owns the ingress
// tables. Callers hold nothing.
func (r *Responder) openIngress() error {
	opts := []nftables.ConnOption{nftables.AsLasting()}
	if !r.own {
		opts = append(opts, nftables.WithNetNSFd(int(r.ns)))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return fmt.Errorf("ndp ingress filter: nftables connection: %w", err)
	}
	r.nft = c
	return nil
}

// syncIngress moves u's ingress filter to what u answers for and holds.
// It never fails the caller: the filter only sheds load, so a failure
// removes it (solicitations then all reach the stack, as without it), is
// logged once and shows in Stats, and the next sync tries again. A kernel
// that cannot answer (no nft_dup_netdev, say) gets the filter without the
// answers, and the capture loop answers everything. Callers hold r.mu.
func (r *Responder) syncIngress(u *uplink) {
	if r.nft == nil {
		return
	}
	want := ndpproto.PlanIngress(u.st, u.own, r.kernelAnswer(u))
	err := r.applyIngress(u, want)
	if err != nil && want.Answer != nil {
		want.Answer, want.Answered = nil, nil
		if r.applyIngress(u, want) == nil {
			r.log.WithField("iface", u.name).WithError(err).Warn("ndp: the kernel cannot answer solicitations in the ingress filter; the capture loop answers them all")
			u.ingress.noAnswer, err = true, nil
		}
	}
	if err == nil {
		u.ingress.own = slices.Clone(u.own)
		if u.ingress.err != nil {
			r.log.WithField("iface", u.name).Info("ndp: ingress filter in place again")
		}
		u.ingress.err = nil
		return
	}
	if u.ingress.err == nil || u.ingress.err.Error() != err.Error() {
		r.log.WithField("iface", u.name).WithError(err).Warn("ndp: ingress filter failed; solicitations for every address reach the kernel until it is back")
	}
	u.ingress.err = err
	r.removeIngress(u)
}

// syncIngressUpdate brings u's filter up to date after the addresses
// start began and stop ended being answered (u.st holds the result), with
// only the set elements they change (UpdateIngress): a Join costs the same
// with a thousand addresses as with one. When the rules change, or the
// filter is not in place, or the update fails, it is syncIngress.
func (r *Responder) syncIngressUpdate(u *uplink, start, stop []netip.Addr) {
	st := &u.ingress
	// The uplink's own addresses pass too: planned with others than now
	// (an address gained or lost since, refreshUplink), only the whole
	// plan is right.
	if r.nft == nil || st.table == nil || st.err != nil || st.index != u.index || !slices.Equal(st.own, u.own) {
		r.syncIngress(u)
		return
	}
	d, ok := ndpproto.UpdateIngress(&st.have, u.st, u.own, r.kernelAnswer(u), start, stop)
	if !ok {
		r.syncIngress(u)
		return
	}
	if err := r.updateIngressSets(u, d); err != nil {
		// st.have no longer says what the kernel holds: forgotten, the
		// whole way replaces the table (and retries, falls back, logs).
		st.have = ndpproto.IngressFilter{}
		r.log.WithField("iface", u.name).WithError(err).Debug("ndp: update of the ingress filter's sets failed, syncing it whole")
		r.syncIngress(u)
	}
}

// updateIngressSets changes the elements of u's allow and answer sets by
// d, in one batch.
func (r *Responder) updateIngressSets(u *uplink, d ndpproto.IngressDelta) error {
	if d.Empty() {
		return nil
	}
	st := &u.ingress
	// Answers stop before the address stops passing, and pass before
	// they start.
	var errs []error
	if len(d.AnswerDel) > 0 {
		errs = append(errs, r.nft.SetDeleteElements(st.answer, ingress.AnswerElements(d.AnswerDel)))
	}
	if len(d.Del) > 0 {
		errs = append(errs, r.nft.SetDeleteElements(st.set, ingress.AddrElements(d.Del)))
	}
	if len(d.Add) > 0 {
		errs = append(errs, r.nft.SetAddElements(st.set, ingress.AddrElements(d.Add)))
	}
	if len(d.AnswerAdd) > 0 {
		errs = append(errs, r.nft.SetAddElements(st.answer, ingress.AnswerElements(d.AnswerAdd)))
	}
	if err := errors.Join(errs...); err != nil {
		r.cfg.Ledger.Discard(r.nft)
		return fmt.Errorf("ndp ingress filter %q: update addresses: %w", u.name, err)
	}
	if err := r.cfg.Ledger.Flush(r.nft); err != nil {
		return fmt.Errorf("ndp ingress filter %q: update addresses (%d allowed, %d answered added; %d, %d removed): %w",
			u.name, len(d.Add), len(d.AnswerAdd), len(d.Del), len(d.AnswerDel), err)
	}
	return nil
}

// applyIngress installs want: the whole table the first time or when the
// rules change (one atomic batch replacing the old table), else only the
// allow set's changed elements.
func (r *Responder) applyIngress(u *uplink, want ndpproto.IngressFilter) error {
	st := &u.ingress
	if st.table != nil && st.index == u.index && st.have.SameRules(want) {
		var d ndpproto.IngressDelta
		d.Add, d.Del = ndpproto.AllowDiff(st.have.Allow, want.Allow)
		d.AnswerAdd, d.AnswerDel = ndpproto.AllowDiff(st.have.Answered, want.Answered)
		if err := r.updateIngressSets(u, d); err != nil {
			return err
		}
		st.have.Allow, st.have.Answered = want.Allow, want.Answered
		return nil
	}

	t := &nftables.Table{Family: nftables.TableFamilyNetdev, Name: ingress.Table(u.name), Flags: nftables.TableFlagOwner}
	if st.table != nil {
		r.retireCounters(u)
		r.nft.DelTable(st.table)
	}
	r.nft.AddTable(t)
	accept := nftables.ChainPolicyAccept
	ch := r.nft.AddChain(&nftables.Chain{
		Name: ingress.Chain, Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookIngress, Priority: nftables.ChainPriorityFilter,
		Device: u.name, Policy: &accept,
	})
	set := &nftables.Set{Table: t, Name: ingress.AllowSet, KeyType: nftables.TypeIP6Addr}
	if err := r.nft.AddSet(set, ingress.AddrElements(slices.Collect(maps.Keys(want.Allow)))); err != nil {
		return fmt.Errorf("ndp ingress filter %q: set: %w", u.name, err)
	}
	var answer *nftables.Set
	if want.Answer != nil {
		var err error
		if answer, err = ingress.AddAnswerRules(r.nft, t, ch, u.name, u.index, want); err != nil {
			return err
		}
	}
	for _, p := range want.Served {
		r.nft.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: ingress.DropRule(p, want.Ranges, set), UserData: []byte(ingress.TagDrop)})
	}
	if err := r.cfg.Ledger.Flush(r.nft); err != nil {
		return fmt.Errorf("ndp ingress filter %q: create table %s: %w", u.name, t.Name, err)
	}
	if st.table == nil {
		r.log.WithFields(logrus.Fields{"iface": u.name, "table": t.Name, "prefixes": want.Served, "answers": want.Answer != nil}).Info("ndp: ingress filter drops solicitations for addresses nobody here answers for")
	}
	st.table, st.set, st.answer, st.have, st.index = t, set, answer, ndpproto.CloneIngress(want), u.index
	return nil
}

// removeIngress deletes u's table, if it was installed.
func (r *Responder) removeIngress(u *uplink) {
	st := &u.ingress
	if st.table == nil {
		return
	}
	r.retireCounters(u)
	r.nft.DelTable(st.table)
	if err := r.cfg.Ledger.Flush(r.nft); err != nil {
		r.log.WithField("iface", u.name).WithError(err).Debug("ndp: remove ingress filter")
	}
	st.table, st.set, st.answer, st.have = nil, nil, nil, ndpproto.IngressFilter{}
}

// ingressCounters returns the packets u's filters counted so far, by rule
// tag: the table's and those of the tables before it. Callers hold r.mu.
func (r *Responder) ingressCounters(u *uplink) map[string]uint64 {
	n := r.tableCounters(u)
	if len(u.ingress.retired) > 0 && n == nil {
		n = map[string]uint64{}
	}
	for tag, c := range u.ingress.retired {
		n[tag] += c
	}
	return n
}

// retireCounters keeps the counters of u's table before it is replaced or
// removed. Callers hold r.mu.
func (r *Responder) retireCounters(u *uplink) {
	for tag, c := range r.tableCounters(u) {
		if u.ingress.retired == nil {
			u.ingress.retired = map[string]uint64{}
		}
		u.ingress.retired[tag] += c
	}
}

// tableCounters reads the packets u's table counted, by rule tag. Callers
// hold r.mu.
func (r *Responder) tableCounters(u *uplink) map[string]uint64 {
	if r.nft == nil || u.ingress.table == nil {
		return nil
	}
	n := map[string]uint64{}
	chains := []string{ingress.Chain}
	if u.ingress.answer != nil {
		chains = append(chains, ingress.BudgetChain, ingress.ReplyChain)
	}
	for _, name := range chains {
		rules, err := r.nft.GetRules(u.ingress.table, &nftables.Chain{Name: name, Table: u.ingress.table})
		if err != nil {
			return nil
		}
		for _, rule := range rules {
			for _, e := range rule.Exprs {
				if c, ok := e.(*expr.Counter); ok {
					n[string(rule.UserData)] += c.Packets
				}
			}
		}
	}
	return n
}
