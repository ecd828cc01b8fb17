package nat

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/v6bridge/v6bridge/internal/nftledger"
)

// TableConfig configures a Table.
type TableConfig struct {
	// NetNS is a file descriptor of the network namespace to work in; 0
	// means the current one.
	NetNS int
	// Log receives state changes (Info), repairs and coexistence findings
	// (Warn). Nil discards.
	Log logrus.FieldLogger
	// FastPath adds the flowtable of State.FastPath to every state applied,
	// if the kernel supports it (ProbeFastPath); otherwise the table works
	// without and NewTable logs why.
	FastPath bool
	// Ledger, if set, vouches for generations this process made in other
	// tables (the NDP ingress filter's, ndp.Config.Ledger): a patch goes on
	// top of them without listing our tables first.
	Ledger *nftledger.Ledger
}

// Table is v6bridge's nftables table in one network namespace. All writes
// go through one mutex, so batches of concurrent callers never mix.
type Table struct {
	conn *nftables.Conn
	log  logrus.FieldLogger
	coex *Coexistence
	// ledger vouches for batches of this process in other tables.
	ledger *nftledger.Ledger
	mu     sync.Mutex
	// model is the last state applied successfully, indexed for
	// UpdateEndpoints; nil before the first Apply.
	model *Model
	gen   uint32 // ruleset generation when fp was taken
	fp    uint64 // fingerprint of our table as we left it
	known bool   // gen, fp, shape and applied are valid
	// shape is what fp hashes: chains with rule handles, sets with element
	// counts; a patch updates the counts instead of listing every element.
	shape tableShape
	// applied is the ruleset in the kernel when known: the base of patches.
	// UpdateEndpoints leaves it nil; the next Apply builds it from model.
	applied *Ruleset
	patched int // Applies done as a patch (tests)
	listed  int // listings of our tables (tests)
	// window, when set (tests), runs right before ("before") and right
	// after ("after") each batch of ours is sent: where another party's
	// batch must not pass for ours.
	window func(at string)

	monMu   sync.Mutex
	monDead bool // the monitor's socket failed: Watch re-opens it

	links       *kernelLinks
	fastPath    bool           // flowtable on (configured and supported)
	fastPathErr error          // why not, when configured
	ftIndex     map[string]int // flowtable devices in the kernel and their indexes
}

// NewTable opens a netlink connection for nftables in cfg.NetNS. It does
// not change anything in the kernel.
func NewTable(cfg TableConfig) (*Table, error) {
	log := cfg.Log
	if log == nil {
		l := logrus.New()
		l.SetOutput(nopWriter{})
		log = l
	}
	conn, err := newConn(cfg.NetNS)
	if err != nil {
		return nil, err
	}
	links, err := newKernelLinks(cfg.NetNS)
	if err != nil {
		return nil, err
	}
	coex := &Coexistence{conn: conn, log: log}
	t := &Table{conn: conn, log: log.WithField("table", TableFamily+" "+TableName), coex: coex, links: links, ledger: cfg.Ledger}
	if cfg.FastPath {
		if err := ProbeFastPath(cfg.NetNS); err != nil {
			t.fastPathErr = err
			t.log.WithError(err).Warn("fast path off: established connections take the forward chain")
		} else {
			t.fastPath = true
		}
	}
	return t, nil
}

// FastPath reports whether the applied states get the flowtable, and if
// it was asked for but is off, why.
func (t *Table) FastPath() (bool, error) { return t.fastPath, t.fastPathErr }

// build is build (of a State Validate accepted) with the fast path as
// configured, the flowtable limited to the devices that exist now; devs
// are those with their indexes.
func (t *Table) build(s State) (r *Ruleset, devs map[string]int) {
	s.FastPath = t.fastPath
	r = build(s)
	for i := range r.Flowtables {
		f := &r.Flowtables[i]
		var idx map[string]int
		f.Devices, idx = t.links.present(f.Devices)
		if devs == nil {
			devs = idx
		}
	}
	return r, devs
}

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }

func newConn(netns int) (*nftables.Conn, error) {
	var opts []nftables.ConnOption
	if netns != 0 {
		opts = append(opts, nftables.WithNetNSFd(netns))
	}
	conn, err := nftables.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("nftables connection: %w", err)
	}
	return conn, nil
}

// Apply builds the ruleset of s and replaces our table with it in one
// atomic batch: packets see either the old table or the new one, never a
// table without its drop rules. Then it makes sure other firewalls let our
// bridges' traffic through (see Coexistence.Ensure); a failure there is
// logged, not returned, since our own table is in place.
//
// Connections the new state no longer allows (see Revoked) are deleted
// from conntrack afterwards, so they stop at once, fast path or not.
func (t *Table) Apply(s State) error {
	m, err := NewModel(s) // validates s, once
	if err != nil {
		return err
	}
	r, devs := t.build(s)
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.patchOrApplyLocked(r, devs); err != nil {
		return err
	}
	var revs []Revocation
	if t.model != nil {
		revs = Revoked(t.model.State(), s)
	}
	t.model = m
	t.log.WithField("networks", len(s.Networks)).Info("firewall applied")
	t.revokeLocked(revs)
	t.ensureCoexistenceLocked()
	return nil
}

// revokeLocked deletes the connections of rs from conntrack, after the
// rules that refuse them are in place (else a packet in between would
// open them again). A failure is logged: the rules are applied, and the
// connections end when conntrack forgets them.
func (t *Table) revokeLocked(rs []Revocation) {
	if len(rs) == 0 {
		return
	}
	n, err := t.links.revoke(rs)
	log := t.log.WithField("revoked", len(rs))
	if err != nil {
		log.WithError(err).Warn("stop connections the firewall no longer allows")
		return
	}
	log.WithField("connections", n).Debug("stopped connections the firewall no longer allows")
}

// holdsOursLocked reports whether the kernel holds our tables as we
// left them, so a patch may go on top. No batch since ours, or only
// batches the ledger vouches for (this process's NDP ingress filter),
// says so at once; after another party's batch (moved: the engine's
// iptables, an operator's nft) our tables are listed and compared with
// the fingerprint, which costs a listing instead of a rebuild, and the
// generation is taken as ours when they are intact. err says why not: the
// generation could not be read (moved false), or the listing failed (nil:
// the contents differ).
func (t *Table) holdsOursLocked() (ok, moved bool, err error) {
	g, err := t.conn.GetGen()
	if err != nil {
		return false, false, fmt.Errorf("nftables generation: %w", err)
	}
	if t.known && (g.ID == t.gen || t.ledger.Ours(t.gen, g.ID)) {
		t.gen = g.ID
		return true, false, nil
	}
	fp, err := t.fingerprint()
	if err != nil || !t.known || fp != t.fp {
		return false, true, err
	}
	t.gen = g.ID
	return true, true, nil
}

// patchOrApplyLocked changes only the elements that differ when the kernel
// holds what we applied last and only set elements change (Diff), still in
// one atomic batch; otherwise, or if the patch fails, it replaces the table.
// Either way the table ends up as Build made it (TestPrivilegedPatchEqualsRebuild).
func (t *Table) patchOrApplyLocked(r *Ruleset, devs map[string]int) error {
	if t.applied == nil && t.known && t.model != nil {
		t.applied, _ = t.build(t.model.State())
	}
	// A flowtable device deleted and created again (a bridge after a
	// reboot) is no longer hooked: only a new flowtable hooks it again.
	if patches, ok := Diff(t.applied, r); ok && t.known && maps.Equal(devs, t.ftIndex) {
		if same, _, _ := t.holdsOursLocked(); same {
			err := t.patchLocked(patches)
			if err == nil {
				t.applied = r
				t.patched++
				return nil
			}
			t.log.WithError(err).Debug("patching the table failed, replacing it")
		}
	}
	return t.applyLocked(r, devs)
}

// patchLocked sends the element changes in one batch and records the new
// generation and fingerprint without listing the table again.
func (t *Table) patchLocked(patches []SetPatch) error {
	if len(patches) == 0 {
		return nil
	}
	for _, p := range patches {
		if p.Set.Name == SetBridges {
			// The guard table holds the bridges too: rebuild both.
			return errBridgesChange
		}
	}
	tbl := &nftables.Table{Family: nftables.TableFamilyIPv6, Name: TableName}
	counts := maps.Clone(t.shape.counts)
	sums := maps.Clone(t.shape.sums)
	if counts == nil || sums == nil {
		counts, sums = map[string]int{}, map[string]uint64{}
	}
	for _, p := range patches {
		del := p.Set
		del.Elements = p.Delete
		set, delElems, err := nftSet(tbl, del)
		if err != nil {
			_ = t.conn.Flush()
			return err
		}
		add := p.Set
		add.Elements = p.Add
		_, addElems, err := nftSet(tbl, add)
		if err != nil {
			_ = t.conn.Flush()
			return err
		}
		if len(delElems) > 0 {
			if err := t.conn.SetDeleteElements(set, delElems); err != nil {
				_ = t.conn.Flush()
				return fmt.Errorf("set %s: %w", p.Set.Name, err)
			}
		}
		if len(addElems) > 0 {
			if err := t.conn.SetAddElements(set, addElems); err != nil {
				_ = t.conn.Flush()
				return fmt.Errorf("set %s: %w", p.Set.Name, err)
			}
		}
		k := setKey(TableName, p.Set.Name)
		counts[k] += len(addElems) - len(delElems)
		for _, e := range delElems {
			sums[k] -= elementHash(e)
		}
		for _, e := range addElems {
			sums[k] += elementHash(e)
		}
	}
	// The patch is right only on the generation holdsOursLocked checked:
	// the kernel refuses the batch (ERESTART) if any other came since,
	// and then ours is that generation + 1.
	verified := t.gen
	t.runWindow("before")
	var err error
	if verified != 0 {
		err = t.conn.FlushWithGenID(verified)
	} else {
		err = t.conn.Flush() // 0 asks for no check; the test below still holds
	}
	if err != nil {
		// Nothing of the batch was applied; the caller rebuilds.
		return fmt.Errorf("patch nftables table %s %s: %w", TableFamily, TableName, err)
	}
	t.runWindow("after")
	t.known = false
	t.shape.counts, t.shape.sums = counts, sums
	g, err := t.conn.GetGen()
	switch {
	case err == nil && g.ID == verified+1:
		// Nothing came after ours: the generation is ours.
		t.gen, t.fp, t.known = g.ID, t.shape.hash(), true
	case verified != 0:
		// Ours is verified+1 and another batch came after it (or the
		// generation could not be read): the next check lists our tables
		// and compares them with what this patch left.
		t.gen, t.fp, t.known = verified+1, t.shape.hash(), true
	}
	// Otherwise unknown: the next Apply rebuilds, Watch re-checks.
	return nil
}

func (t *Table) runWindow(at string) {
	if t.window != nil {
		t.window(at)
	}
}

// errBridgesChange makes a patch fall back to a rebuild of both tables.
var errBridgesChange = errors.New("the bridges change")

// applyLocked replaces our table with r and the guard table with
// BuildGuard(r), in one batch; devs are r's flowtable devices with their
// indexes (Table.build).
func (t *Table) applyLocked(r *Ruleset, devs map[string]int) error {
	err := addRuleset(t.conn, r)
	if err == nil {
		err = addRuleset(t.conn, BuildGuard(r))
	}
	if err != nil {
		// Flush drops what was queued; nothing was sent.
		_ = t.conn.Flush()
		return fmt.Errorf("build nftables batch: %w", err)
	}
	before, berr := t.conn.GetGen()
	t.runWindow("before")
	if err := t.conn.Flush(); err != nil {
		t.known = false
		return fmt.Errorf("apply nftables table %s %s: %w", TableFamily, TableName, err)
	}
	t.runWindow("after")
	t.known = false
	if berr == nil {
		t.rememberLocked(before.ID)
	}
	t.applied = r
	t.ftIndex = devs
	return nil
}

// UpdateEndpoints changes the entries of the endpoints in us (see
// EndpointUpdate) on top of the last Apply, in one atomic batch: it checks
// and patches only what those endpoints contribute, so attaching one more
// container costs the same with ten or a thousand on the host. When the
// kernel does not hold what we applied last, or the patch fails, it
// replaces the table with the whole updated state instead. On error
// nothing changed.
func (t *Table) UpdateEndpoints(us []EndpointUpdate) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.model == nil {
		return ErrNoModel
	}
	undo := t.model.snapshot(us)
	revs := t.model.revocations(us)
	patches, err := t.model.Update(us)
	if err != nil {
		return err
	}
	if t.known {
		if same, _, _ := t.holdsOursLocked(); same {
			err := t.patchLocked(patches)
			if err == nil {
				t.applied = nil
				t.patched++
				t.log.WithField("endpoints", len(us)).Debug("firewall patched")
				t.revokeLocked(revs)
				return nil
			}
			t.log.WithError(err).Debug("patching the table failed, replacing it")
		}
	}
	r, devs := t.build(t.model.State())
	if err := t.applyLocked(r, devs); err != nil {
		t.model.revert(us, undo)
		return err
	}
	t.revokeLocked(revs)
	t.ensureCoexistenceLocked()
	return nil
}

// rememberLocked records the generation and fingerprint after our batch,
// sent on top of generation before: only when the generation read after
// listing our tables is before + 1 is the listing certainly ours alone
// (the ledger's test, nftledger.Ledger.Flush). Another party's batch between
// ours and the listing would otherwise be taken as ours and never be
// repaired; then nothing is recorded and the next check rebuilds.
func (t *Table) rememberLocked(before uint32) {
	t.known = false
	sh, err := t.readShape()
	if err != nil {
		return
	}
	g, err := t.conn.GetGen()
	if err != nil || g.ID != before+1 {
		return
	}
	t.shape = sh
	t.gen, t.fp, t.known = g.ID, sh.hash(), true
}

func (t *Table) ensureCoexistenceLocked() {
	if _, err := t.coex.Ensure(); err != nil {
		t.log.WithError(err).Warn("coexistence with other firewalls")
	}
}

// Delete removes our table and the guard table (missing tables are
// success) and the coexistence rules added to other tables. Watch stops
// repairing until the next Apply.
func (t *Table) Delete() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.model = nil
	t.known = false
	t.applied = nil
	t.ftIndex = nil
	for _, name := range []string{TableName, GuardTableName} {
		tbl := &nftables.Table{Family: nftables.TableFamilyIPv6, Name: name}
		// Adding first makes the delete succeed whether or not it exists.
		t.conn.AddTable(tbl)
		t.conn.DelTable(tbl)
	}
	if err := t.conn.Flush(); err != nil {
		return fmt.Errorf("delete nftables tables %s %s and %s: %w", TableFamily, TableName, GuardTableName, err)
	}
	if err := t.coex.Remove(); err != nil {
		return err
	}
	t.log.Info("firewall removed")
	return nil
}

// Watch repairs our table and the guard table when they are deleted or
// changed behind our back (`nft flush ruleset`, a firewall reload): it
// listens to nftables change events (the netlink monitor) and, after each
// burst of them, compares the tables with what we applied (see check). It
// also re-runs the coexistence check when anything in the ruleset changed,
// since the engine may create DOCKER-USER after us. interval is a safety
// net: a check also runs that often, and the monitor is re-opened, should
// its socket fail (e.g. events lost under load). The check is cheap while
// nothing changes: one netlink request for the ruleset generation. Watch
// returns when ctx is done.
func (t *Table) Watch(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	changed := make(chan struct{}, 1)
	var stop func()
	defer func() {
		if stop != nil {
			stop()
		}
	}()
	for {
		if stop == nil {
			var err error
			if stop, err = t.monitor(changed); err != nil {
				t.log.WithError(err).Warn("nftables monitor; checking every " + interval.String() + " only")
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case _, ok := <-changed:
			if !ok {
				return
			}
			// Let a burst (one batch is one event group, iptables-restore
			// several) settle, then check once.
			time.Sleep(20 * time.Millisecond)
			select {
			case <-changed:
			default:
			}
		}
		if err := t.check(); err != nil {
			t.log.WithError(err).Warn("firewall check")
		}
		if stop != nil && t.monitorDead() {
			stop()
			stop = nil
		}
	}
}

// monitor subscribes to nftables change events and signals changed (never
// blocking) after each committed batch.
func (t *Table) monitor(changed chan<- struct{}) (stop func(), err error) {
	mon := nftables.NewMonitor(nftables.WithMonitorEventBuffer(64))
	events, err := t.conn.AddGenerationalMonitor(mon)
	if err != nil {
		return nil, fmt.Errorf("subscribe to nftables events: %w", err)
	}
	t.monMu.Lock()
	t.monDead = false
	t.monMu.Unlock()
	go func() {
		for ev := range events {
			if ev.GeneratedBy != nil && ev.GeneratedBy.Error != nil {
				t.log.WithError(ev.GeneratedBy.Error).Warn("nftables monitor failed, re-opening it")
				t.monMu.Lock()
				t.monDead = true
				t.monMu.Unlock()
			}
			select {
			case changed <- struct{}{}:
			default:
			}
		}
	}()
	return func() { _ = mon.Close() }, nil
}

func (t *Table) monitorDead() bool {
	t.monMu.Lock()
	defer t.monMu.Unlock()
	return t.monDead
}

// check compares the kernel's table with what we applied and repairs it.
func (t *Table) check() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.model == nil {
		return nil
	}
	ok, moved, err := t.holdsOursLocked()
	if ok {
		if moved {
			// Someone else changed the ruleset; ours is intact.
			t.ensureCoexistenceLocked()
		}
		return nil
	}
	if !moved {
		return err
	}
	r, devs := t.build(t.model.State())
	t.log.WithField("reason", reason(err)).Warn("firewall table changed behind our back, applying it again")
	if err := t.applyLocked(r, devs); err != nil {
		return err
	}
	t.ensureCoexistenceLocked()
	return nil
}

func reason(fpErr error) string {
	if fpErr != nil {
		return fpErr.Error()
	}
	return "contents differ"
}

// errTableMissing is returned by fingerprint when our table is gone.
var errTableMissing = errors.New("table missing")

// tableShape identifies the contents of our table and the guard table:
// every chain with its type, hook, priority and policy, every rule with its
// handle (re-created rules get new ones) and expressions (a rule replaced in
// place keeps its handle), every set with its elements. Elements are hashed
// one by one and summed, so a patch updates the sum with what it deleted
// and added, without listing the set.
type tableShape struct {
	chains string            // per table: chains, rule handles and expression hashes
	sets   []string          // setKey of each set in order; anonymous ones prefixed "anon "
	counts map[string]int    // elements per named set (by setKey)
	sums   map[string]uint64 // sum of elementHash per named set
}

func setKey(table, set string) string { return table + " " + set }

func (sh tableShape) hash() uint64 {
	h := fnv.New64a()
	io.WriteString(h, sh.chains)
	for _, n := range sh.sets {
		if strings.HasPrefix(n, "anon ") {
			fmt.Fprintf(h, " %s", n)
			continue
		}
		fmt.Fprintf(h, " set %s %d %x", n, sh.counts[n], sh.sums[n])
	}
	return h.Sum64()
}

// elementHash hashes what identifies one element as the kernel lists it
// and as we send it.
func elementHash(e nftables.SetElement) uint64 {
	h := fnv.New64a()
	for _, b := range [][]byte{e.Key, e.KeyEnd, e.Val} {
		fmt.Fprintf(h, "%d:", len(b))
		h.Write(b)
	}
	fmt.Fprintf(h, "%t %t", e.IntervalEnd, e.IntervalOpen)
	return h.Sum64()
}

// fingerprint hashes the tables' shape as the kernel has it now.
func (t *Table) fingerprint() (uint64, error) {
	sh, err := t.readShape()
	if err != nil {
		return 0, err
	}
	return sh.hash(), nil
}

func (t *Table) readShape() (tableShape, error) {
	t.listed++
	sh := tableShape{counts: map[string]int{}, sums: map[string]uint64{}}
	chains, err := t.conn.ListChainsOfTableFamily(nftables.TableFamilyIPv6)
	if err != nil {
		return sh, fmt.Errorf("list chains: %w", err)
	}
	var b strings.Builder
	for _, name := range []string{TableName, GuardTableName} {
		if err := t.readTableShape(name, chains, &sh, &b); err != nil {
			return sh, err
		}
	}
	sh.chains = b.String()
	return sh, nil
}

func (t *Table) readTableShape(name string, all []*nftables.Chain, sh *tableShape, b *strings.Builder) error {
	tbl, err := t.conn.ListTableOfFamily(name, nftables.TableFamilyIPv6)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("%w: %s", errTableMissing, name)
		}
		return fmt.Errorf("list table %s: %w", name, err)
	}
	var chains []*nftables.Chain
	for _, c := range all {
		if c.Table.Name == name {
			chains = append(chains, c)
		}
	}
	slices.SortFunc(chains, func(a, b *nftables.Chain) int { return compareStr(a.Name, b.Name) })
	fmt.Fprintf(b, "table %s:", name)
	for _, c := range chains {
		fmt.Fprintf(b, " chain %s %s", c.Name, c.Type)
		if c.Hooknum != nil {
			fmt.Fprintf(b, " hook %d", *c.Hooknum)
		}
		if c.Priority != nil {
			fmt.Fprintf(b, " prio %d", *c.Priority)
		}
		if c.Policy != nil {
			fmt.Fprintf(b, " policy %d", *c.Policy)
		}
		rules, err := t.conn.GetRules(tbl, &nftables.Chain{Name: c.Name, Table: tbl})
		if err != nil {
			return fmt.Errorf("list rules of %s %s: %w", name, c.Name, err)
		}
		fmt.Fprintf(b, " %d:", len(rules))
		for _, r := range rules {
			fmt.Fprintf(b, " %d/%x", r.Handle, ruleHash(r))
		}
	}
	sets, err := t.conn.GetSets(tbl)
	if err != nil {
		return fmt.Errorf("list sets of %s: %w", name, err)
	}
	slices.SortFunc(sets, func(a, b *nftables.Set) int { return compareStr(a.Name, b.Name) })
	for _, s := range sets {
		k := setKey(name, s.Name)
		if s.Anonymous {
			sh.sets = append(sh.sets, "anon "+k)
			continue
		}
		elems, err := t.conn.GetSetElements(s)
		if err != nil {
			return fmt.Errorf("list elements of %s: %w", k, err)
		}
		sh.sets = append(sh.sets, k)
		sh.counts[k] = len(elems)
		var sum uint64
		for _, e := range elems {
			sum += elementHash(e)
		}
		sh.sums[k] = sum
	}
	return nil
}

// ruleHash hashes a rule's expressions as netlink encodes them, and its
// comment.
func ruleHash(r *nftables.Rule) uint64 {
	h := fnv.New64a()
	for _, e := range r.Exprs {
		b, err := expr.Marshal(byte(nftables.TableFamilyIPv6), e)
		if err != nil {
			fmt.Fprintf(h, "%T?", e)
			continue
		}
		h.Write(b)
	}
	h.Write(r.UserData)
	return h.Sum64()
}

func compareStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
