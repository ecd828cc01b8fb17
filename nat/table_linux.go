package nat

import (
	"fmt"
	"sync"

	"github.com/google/nftables"
	"github.com/sirupsen/logrus"

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
	// Ledger sends every batch of the Table and its Coexistence. Shared
	// with the NDP ingress filter (ndp.Config.Ledger), it vouches for the
	// filter's batches in its own table: a patch goes on top of them
	// without listing our tables first. Nil: a ledger of the Table's own.
	Ledger *nftledger.Ledger
}

// Table is v6bridge's nftables table in one network namespace. All writes
// go through one mutex, so batches of concurrent callers never mix.
type Table struct {
	conn *nftables.Conn
	log  logrus.FieldLogger
	coex *Coexistence
	// ledger sends our batches and vouches for those of this process in
	// other tables; never nil.
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
	ledger := cfg.Ledger
	if ledger == nil {
		ledger = &nftledger.Ledger{}
	}
	coex := &Coexistence{conn: conn, log: log, ledger: ledger}
	t := &Table{conn: conn, log: log.WithField("table", TableFamily+" "+TableName), coex: coex, links: links, ledger: ledger}
	if cfg.FastPath {
		if err := probeFastPath(cfg.NetNS, ledger); err != nil {
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

// applyLocked replaces our table with r and the guard table with
// BuildGuard(r), in one batch; devs are r's flowtable devices with their
// indexes (Table.build).
func (t *Table) applyLocked(r *Ruleset, devs map[string]int) error {
	err := addRuleset(t.conn, r)
	if err == nil {
		err = addRuleset(t.conn, BuildGuard(r))
	}
	if err != nil {
		t.ledger.Discard(t.conn)
		return fmt.Errorf("build nftables batch: %w", err)
	}
	b := t.ledger.Batch(t.conn)
	t.runWindow("before")
	if err := b.Send(); err != nil {
		t.known = false
		return fmt.Errorf("apply nftables table %s %s: %w", TableFamily, TableName, err)
	}
	t.runWindow("after")
	t.rememberLocked(b)
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
	if err := t.ledger.Batch(t.conn).Send(); err != nil {
		return fmt.Errorf("delete nftables tables %s %s and %s: %w", TableFamily, TableName, GuardTableName, err)
	}
	if err := t.coex.Remove(); err != nil {
		return err
	}
	t.log.Info("firewall removed")
	return nil
}
