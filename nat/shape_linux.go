package nat

import (
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

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
