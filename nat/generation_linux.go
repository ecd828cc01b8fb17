package nat

import (
	"errors"
	"fmt"
	"maps"

	"github.com/google/nftables"

	"github.com/v6bridge/v6bridge/internal/nftledger"
)

// holdsOursLocked reports whether the kernel holds our tables as we
// left them, so a patch may go on top. No batch since ours, or only
// batches the ledger vouches for (this process's NDP ingress filter,
// coexistence rule and fast-path probe), says so at once; after another
// party's batch (moved: the engine's iptables, an operator's nft) our
// tables are listed and compared with the fingerprint, which costs a
// listing instead of a rebuild, and the generation is taken as ours when
// they are intact. err says why not: the
// generation could not be read (moved false), or the listing failed (nil:
// the contents differ).
func (t *Table) holdsOursLocked() (ok, moved bool, err error) {
	g, err := t.conn.GetGen()
	if err != nil {
		return false, false, fmt.Errorf("nftables generation: %w", err)
	}
	if t.known && t.ledger.Ours(t.gen, g.ID) {
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
		added, deleted, err := t.queuePatch(tbl, p)
		if err != nil {
			t.ledger.Discard(t.conn)
			return err
		}
		k := setKey(TableName, p.Set.Name)
		counts[k] += len(added) - len(deleted)
		for _, e := range deleted {
			sums[k] -= elementHash(e)
		}
		for _, e := range added {
			sums[k] += elementHash(e)
		}
	}
	// The patch is right only on the generation holdsOursLocked checked:
	// the kernel refuses the batch (ERESTART) if any other came since,
	// and then ours is that generation + 1.
	verified := t.gen
	b := t.ledger.BatchOn(t.conn, verified)
	t.runWindow("before")
	if err := b.Send(); err != nil {
		// Nothing of the batch was applied; the caller rebuilds.
		return fmt.Errorf("patch nftables table %s %s: %w", TableFamily, TableName, err)
	}
	t.runWindow("after")
	t.known = false
	t.shape.counts, t.shape.sums = counts, sums
	g, ok := b.Gen()
	switch {
	case ok:
		// Nothing came after ours: the generation is ours.
		t.gen, t.fp, t.known = g, t.shape.hash(), true
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

// rememberLocked records the generation and fingerprint after our batch
// b, sent: only when the generation read after listing our tables is the
// batch's (b.Gen: the one before it + 1) is the listing certainly ours
// alone. Another party's batch between ours and the listing would
// otherwise be taken as ours and never be repaired; then nothing is
// recorded and the next check rebuilds.
func (t *Table) rememberLocked(b *nftledger.Batch) {
	t.known = false
	sh, err := t.readShape()
	if err != nil {
		return
	}
	g, ok := b.Gen()
	if !ok {
		return
	}
	t.shape = sh
	t.gen, t.fp, t.known = g, sh.hash(), true
}

// queuePatch queues the element changes of p on t's connection and returns
// the elements it adds and deletes, for the table's shape.
func (t *Table) queuePatch(tbl *nftables.Table, p SetPatch) (added, deleted []nftables.SetElement, err error) {
	del, add := p.Set, p.Set
	del.Elements, add.Elements = p.Delete, p.Add
	set, deleted, err := nftSet(tbl, del)
	if err != nil {
		return nil, nil, err
	}
	if _, added, err = nftSet(tbl, add); err != nil {
		return nil, nil, err
	}
	if len(deleted) > 0 {
		if err := t.conn.SetDeleteElements(set, deleted); err != nil {
			return nil, nil, fmt.Errorf("set %s: %w", p.Set.Name, err)
		}
	}
	if len(added) > 0 {
		if err := t.conn.SetAddElements(set, added); err != nil {
			return nil, nil, fmt.Errorf("set %s: %w", p.Set.Name, err)
		}
	}
	return added, deleted, nil
}
