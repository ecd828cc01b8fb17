package ndp

import (
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// IngressTable names the netdev table of the ingress filter on uplink
// (see IngressFilter).
func IngressTable(uplink string) string { return "v6bridge-ndp-" + uplink }

const (
	ingressChain = "ingress"
	ingressSet   = "allow"
)

// ingressState is an uplink's ingress filter as installed. Guarded by
// Responder.mu.
type ingressState struct {
	table *nftables.Table // nil: not installed
	set   *nftables.Set
	have  IngressFilter
	err   error // the last failure, until a sync succeeds
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
// logged once and shows in Stats, and the next sync tries again. Callers
// hold r.mu.
func (r *Responder) syncIngress(u *uplink) {
	if r.nft == nil {
		return
	}
	want := PlanIngress(u.st, u.own)
	err := r.applyIngress(u, want)
	if err == nil {
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

// applyIngress installs want: the whole table the first time or when the
// rules change (one atomic batch replacing the old table), else only the
// allow set's changed elements.
func (r *Responder) applyIngress(u *uplink, want IngressFilter) error {
	st := &u.ingress
	if st.table != nil && st.have.SameRules(want) {
		add, del := allowDiff(st.have.Allow, want.Allow)
		if len(add)+len(del) == 0 {
			return nil
		}
		if len(del) > 0 {
			if err := r.nft.SetDeleteElements(st.set, addrElements(del)); err != nil {
				return fmt.Errorf("ndp ingress filter %q: delete %d addresses: %w", u.name, len(del), err)
			}
		}
		if len(add) > 0 {
			if err := r.nft.SetAddElements(st.set, addrElements(add)); err != nil {
				return fmt.Errorf("ndp ingress filter %q: add %d addresses: %w", u.name, len(add), err)
			}
		}
		if err := r.nft.Flush(); err != nil {
			return fmt.Errorf("ndp ingress filter %q: update allowed addresses: %w", u.name, err)
		}
		st.have.Allow = want.Allow
		return nil
	}

	t := &nftables.Table{Family: nftables.TableFamilyNetdev, Name: IngressTable(u.name), Flags: nftables.TableFlagOwner}
	if st.table != nil {
		r.nft.DelTable(st.table)
	}
	r.nft.AddTable(t)
	accept := nftables.ChainPolicyAccept
	ch := r.nft.AddChain(&nftables.Chain{
		Name: ingressChain, Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookIngress, Priority: nftables.ChainPriorityFilter,
		Device: u.name, Policy: &accept,
	})
	set := &nftables.Set{Table: t, Name: ingressSet, KeyType: nftables.TypeIP6Addr}
	allow := make([]netip.Addr, 0, len(want.Allow))
	for a := range want.Allow {
		allow = append(allow, a)
	}
	if err := r.nft.AddSet(set, addrElements(allow)); err != nil {
		return fmt.Errorf("ndp ingress filter %q: set: %w", u.name, err)
	}
	for _, p := range want.Served {
		r.nft.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: ingressRule(p, want.Ranges, set)})
	}
	if err := r.nft.Flush(); err != nil {
		return fmt.Errorf("ndp ingress filter %q: create table %s: %w", u.name, t.Name, err)
	}
	if st.table == nil {
		r.log.WithFields(logrus.Fields{"iface": u.name, "table": t.Name, "prefixes": want.Served}).Info("ndp: ingress filter drops solicitations for addresses nobody here answers for")
	}
	st.table, st.set, st.have = t, set, cloneIngress(want)
	return nil
}

// removeIngress deletes u's table, if it was installed.
func (r *Responder) removeIngress(u *uplink) {
	st := &u.ingress
	if st.table == nil {
		return
	}
	r.nft.DelTable(st.table)
	if err := r.nft.Flush(); err != nil {
		r.log.WithField("iface", u.name).WithError(err).Debug("ndp: remove ingress filter")
	}
	st.table, st.set, st.have = nil, nil, IngressFilter{}
}

// ingressDropped reads the packets u's filter dropped so far from its
// rules' counters. Callers hold r.mu.
func (r *Responder) ingressDropped(u *uplink) uint64 {
	if r.nft == nil || u.ingress.table == nil {
		return 0
	}
	rules, err := r.nft.GetRules(u.ingress.table, &nftables.Chain{Name: ingressChain, Table: u.ingress.table})
	if err != nil {
		return 0
	}
	var n uint64
	for _, rule := range rules {
		for _, e := range rule.Exprs {
			if c, ok := e.(*expr.Counter); ok {
				n += c.Packets
			}
		}
	}
	return n
}

// ingressRule drops Neighbor Solicitations whose target is in served,
// outside every range and not in the allow set.
func ingressRule(served netip.Prefix, ranges []netip.Prefix, allow *nftables.Set) []expr.Any {
	e := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_ICMPV6}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{typeNeighSolic}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 8, Len: 16},
	}
	e = append(e, prefixMatch(served, expr.CmpOpEq)...)
	for _, q := range ranges {
		e = append(e, prefixMatch(q, expr.CmpOpNeq)...)
	}
	return append(e,
		&expr.Lookup{SourceRegister: 1, SetName: allow.Name, SetID: allow.ID, Invert: true},
		&expr.Counter{},
		&expr.Verdict{Kind: expr.VerdictDrop},
	)
}

// prefixMatch compares the address in register 1, masked to p's length
// into register 2, with p.
func prefixMatch(p netip.Prefix, op expr.CmpOp) []expr.Any {
	mask := make([]byte, 16)
	for i := range p.Bits() {
		mask[i/8] |= 0x80 >> (i % 8)
	}
	return []expr.Any{
		&expr.Bitwise{SourceRegister: 1, DestRegister: 2, Len: 16, Mask: mask, Xor: make([]byte, 16)},
		&expr.Cmp{Op: op, Register: 2, Data: p.Masked().Addr().AsSlice()},
	}
}

func addrElements(addrs []netip.Addr) []nftables.SetElement {
	out := make([]nftables.SetElement, len(addrs))
	for i, a := range addrs {
		out[i] = nftables.SetElement{Key: a.AsSlice()}
	}
	return out
}
