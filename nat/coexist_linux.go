package nat

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/sirupsen/logrus"

	"github.com/v6bridge/v6bridge/internal/nftledger"
)

// IfacePrefix is the name prefix of v6bridge's bridges (and host veths);
// the coexistence rules match interfaces by it.
const IfacePrefix = "v6b-"

// Names in the engine's ip6tables (iptables-nft) table.
const (
	xtTable      = "filter"
	xtForward    = "FORWARD"
	xtDockerUser = "DOCKER-USER"
)

// Finding kinds reported by Coexistence.Ensure.
const (
	FindingDockerIP6Tables = "docker-ip6tables" // the engine's ip6tables FORWARD policy drop
	FindingDockerNFTables  = "docker-nftables"  // the engine's nftables backend (ip6 docker-bridges)
	FindingFirewalld       = "firewalld"
	FindingUFW             = "ufw"
)

// Finding is another firewall found beside ours and what it means for
// v6bridge's traffic.
type Finding struct {
	Kind    string
	Message string
}

// Coexistence makes v6bridge's traffic pass other firewalls that would drop
// it: an accept in our table does not stop another table's drop, since
// every base chain on a hook sees the packet.
//
// What it changes outside our table (besides the guard table, which Table
// keeps itself), and nothing else:
//   - If the iptables-nft table "ip6 filter" exists, its FORWARD chain has
//     policy drop (the engine's ip6tables, default since engine 27) and a
//     DOCKER-USER chain exists, it inserts at the top of DOCKER-USER the
//     rule ip6tables would write for
//     `-I DOCKER-USER -m mark --mark M/M -j ACCEPT` with M = MarkJudged |
//     MarkPass (so `ip6tables -S DOCKER-USER` lists it), once: a rule
//     already there is not added again. Only packets our forward chains
//     accepted into our bridges, or from them to an uplink, carry both
//     bits: what leaves our bridges for another interface (the engine's
//     own bridges, where its rules guard unpublished ports) is left to the
//     engine's rules, and without our table the engine's FORWARD policy
//     drops our bridges' traffic instead of this rule opening it. The rules
//     earlier versions inserted (`-i v6b-+ -j ACCEPT`, `-o v6b-+ -j ACCEPT`,
//     which opened everything once our table was gone, and the mark rule
//     with MarkJudged alone, which accepted everything leaving our bridges
//     towards any interface) are deleted. Remove deletes all of these
//     rules.
//
// Our own table still drops what must be dropped, since a drop is final
// across tables and an accept is not. Everything else is only reported as
// findings: a FORWARD policy drop without DOCKER-USER, the engine's
// nftables backend (which leaves foreign bridges alone; the guard table
// closes them without our table), firewalld and ufw (which need the
// operator to trust the v6b-* interfaces). Rules of iptables-legacy are
// invisible to nftables and not detected.
type Coexistence struct {
	conn   *nftables.Conn
	log    logrus.FieldLogger
	ledger *nftledger.Ledger // sends the rule changes; nil: conn.Flush
	seen   string            // findings last logged, to log changes only
}

// NewCoexistence opens a netlink connection for nftables in cfg.NetNS.
// Table.Apply already runs a Coexistence of its own; this is for callers
// that want the findings or Remove on their own.
func NewCoexistence(cfg TableConfig) (*Coexistence, error) {
	conn, err := newConn(cfg.NetNS)
	if err != nil {
		return nil, err
	}
	log := cfg.Log
	if log == nil {
		l := logrus.New()
		l.SetOutput(nopWriter{})
		log = l
	}
	return &Coexistence{conn: conn, log: log, ledger: cfg.Ledger}, nil
}

// Ensure detects other firewalls, inserts the DOCKER-USER accept rules if
// needed and missing, and returns what it found. It is cheap enough to run
// on every Apply: a few netlink dumps, no write unless a rule is missing.
func (c *Coexistence) Ensure() ([]Finding, error) {
	var findings []Finding
	tables, err := c.conn.ListTables()
	if err != nil {
		return nil, fmt.Errorf("list nftables tables: %w", err)
	}
	var filter *nftables.Table
	for _, t := range tables {
		switch {
		case t.Family == nftables.TableFamilyIPv6 && t.Name == xtTable:
			filter = t
		case t.Family == nftables.TableFamilyIPv6 && t.Name == "docker-bridges":
			findings = append(findings, Finding{FindingDockerNFTables,
				"the engine's nftables backend (table ip6 docker-bridges) is active; it leaves v6b-* bridges alone (table ip6 " + GuardTableName + " closes them should table ip6 " + TableName + " go)"})
		case t.Name == "firewalld":
			findings = append(findings, Finding{FindingFirewalld,
				"firewalld is active; put the v6b-* bridges in a trusted zone or its forward rules reject their traffic"})
		}
	}
	if filter != nil {
		f, err := c.ensureDockerUser(filter)
		if err != nil {
			return findings, err
		}
		findings = append(findings, f...)
	}
	c.logFindings(findings)
	return findings, nil
}

func (c *Coexistence) logFindings(fs []Finding) {
	var b strings.Builder
	for _, f := range fs {
		b.WriteString(f.Kind + ": " + f.Message + "\n")
	}
	if b.String() == c.seen {
		return
	}
	c.seen = b.String()
	for _, f := range fs {
		c.log.WithField("firewall", f.Kind).Warn(f.Message)
	}
}

func (c *Coexistence) ensureDockerUser(filter *nftables.Table) ([]Finding, error) {
	var findings []Finding
	chains, err := c.conn.ListChainsOfTableFamily(nftables.TableFamilyIPv6)
	if err != nil {
		return nil, fmt.Errorf("list ip6 chains: %w", err)
	}
	var forward, user *nftables.Chain
	for _, ch := range chains {
		if ch.Table.Name != xtTable {
			continue
		}
		switch {
		case ch.Name == xtForward:
			forward = ch
		case ch.Name == xtDockerUser:
			user = ch
		case strings.HasPrefix(ch.Name, "ufw6-"):
			if len(findings) == 0 || findings[len(findings)-1].Kind != FindingUFW {
				findings = append(findings, Finding{FindingUFW,
					"ufw is active; allow routed traffic of the v6b-* bridges (ufw route allow in on v6b-... ) or its forward policy drops it"})
			}
		}
	}
	if forward == nil || forward.Policy == nil || *forward.Policy != nftables.ChainPolicyDrop {
		return findings, nil
	}
	if user == nil {
		return append(findings, Finding{FindingDockerIP6Tables,
			"ip6tables FORWARD has policy drop and there is no DOCKER-USER chain: traffic of v6b-* bridges is dropped; start the engine with ip6tables or accept v6b-+ in FORWARD"}), nil
	}
	rules, err := c.conn.GetRules(filter, user)
	if err != nil {
		return nil, fmt.Errorf("list %s rules: %w", xtDockerUser, err)
	}
	haveMark, changed := false, false
	for _, r := range rules {
		switch {
		case isMarkAcceptRule(r, dockerUserMark):
			haveMark = true
		case isOldAcceptRule(r):
			if err := c.conn.DelRule(r); err != nil {
				return nil, fmt.Errorf("delete old accept rule from %s: %w", xtDockerUser, err)
			}
			changed = true
		}
	}
	if !haveMark {
		c.conn.InsertRule(&nftables.Rule{Table: filter, Chain: user, Exprs: markAcceptExprs(dockerUserMark)})
		changed = true
	}
	if !changed {
		return findings, nil
	}
	if err := c.ledger.Flush(c.conn); err != nil {
		return nil, fmt.Errorf("insert the accept rule for marked packets into ip6 %s %s: %w", xtTable, xtDockerUser, err)
	}
	c.log.WithField("chain", "ip6 filter "+xtDockerUser).Info(fmt.Sprintf("accepting packets judged by table %s (mark 0x%x) in the engine's ip6tables", TableName, dockerUserMark))
	return findings, nil
}

// dockerUserMark is the mark the DOCKER-USER rule accepts (see
// Coexistence).
const dockerUserMark = MarkJudged | MarkPass

// markAcceptExprs is what iptables-nft writes for
// `-m mark --mark M/M -j ACCEPT`: the mark match, a counter, accept.
func markAcceptExprs(m uint32) []expr.Any {
	return append(markMatch(m, false), &expr.Counter{}, &expr.Verdict{Kind: expr.VerdictAccept})
}

// isOldAcceptRule reports whether r is a DOCKER-USER rule of an earlier
// version: an interface accept or the mark accept of MarkJudged alone.
func isOldAcceptRule(r *nftables.Rule) bool {
	return ourAcceptRule(r) != 0 || isMarkAcceptRule(r, MarkJudged)
}

// isMarkAcceptRule reports whether r is the rule of markAcceptExprs(m).
func isMarkAcceptRule(r *nftables.Rule, m uint32) bool {
	want := markAcceptExprs(m)
	if len(r.Exprs) != len(want) {
		return false
	}
	for i, e := range r.Exprs {
		if _, ok := e.(*expr.Counter); ok {
			if _, ok := want[i].(*expr.Counter); ok {
				continue
			}
			return false
		}
		a, err1 := expr.Marshal(byte(nftables.TableFamilyIPv6), e)
		b, err2 := expr.Marshal(byte(nftables.TableFamilyIPv6), want[i])
		if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
			return false
		}
	}
	return true
}

// ourAcceptRule returns the meta key (iifname or oifname) if r is one of
// the interface accept rules of earlier versions, else 0.
func ourAcceptRule(r *nftables.Rule) expr.MetaKey {
	if len(r.Exprs) != 4 {
		return 0
	}
	m, ok := r.Exprs[0].(*expr.Meta)
	if !ok || (m.Key != expr.MetaKeyIIFNAME && m.Key != expr.MetaKeyOIFNAME) {
		return 0
	}
	cmp, ok := r.Exprs[1].(*expr.Cmp)
	if !ok || cmp.Op != expr.CmpOpEq || cmp.Register != m.Register || !bytes.Equal(cmp.Data, []byte(IfacePrefix)) {
		return 0
	}
	if _, ok := r.Exprs[2].(*expr.Counter); !ok {
		return 0
	}
	v, ok := r.Exprs[3].(*expr.Verdict)
	if !ok || v.Kind != expr.VerdictAccept {
		return 0
	}
	return m.Key
}

// Remove deletes the accept rule Ensure inserted and the interface rules of
// earlier versions; nothing to remove is success.
func (c *Coexistence) Remove() error {
	filter := &nftables.Table{Family: nftables.TableFamilyIPv6, Name: xtTable}
	chains, err := c.conn.ListChainsOfTableFamily(nftables.TableFamilyIPv6)
	if err != nil {
		return fmt.Errorf("list ip6 chains: %w", err)
	}
	for _, ch := range chains {
		if ch.Table.Name != xtTable || ch.Name != xtDockerUser {
			continue
		}
		rules, err := c.conn.GetRules(filter, ch)
		if err != nil {
			return fmt.Errorf("list %s rules: %w", xtDockerUser, err)
		}
		n := 0
		for _, r := range rules {
			if isMarkAcceptRule(r, dockerUserMark) || isOldAcceptRule(r) {
				if err := c.conn.DelRule(r); err != nil {
					return fmt.Errorf("delete rule from %s: %w", xtDockerUser, err)
				}
				n++
			}
		}
		if n == 0 {
			return nil
		}
		if err := c.ledger.Flush(c.conn); err != nil {
			return fmt.Errorf("delete v6bridge's accept rules from ip6 %s %s: %w", xtTable, xtDockerUser, err)
		}
		c.log.WithField("chain", "ip6 filter "+xtDockerUser).Info("removed v6bridge's accept rules")
	}
	return nil
}
