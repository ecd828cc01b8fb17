package nftledger

import "github.com/google/nftables"

// Flush sends conn's queued batch, one that leaves the firewall's tables
// alone (the NDP ingress filter's table, the coexistence rule in the
// engine's ip6tables, the fast-path probe), and records its generation when
// it is certainly this batch's: the generation read before the batch and
// the one read after differ by one, so no other batch came in between.
// When either read fails, or another batch came, nothing is recorded and
// the firewall lists its tables as it would after any other party's batch.
// With a nil l it is conn.Flush.
func (l *Ledger) Flush(conn *nftables.Conn) error {
	if l == nil {
		return conn.Flush()
	}
	b := l.Batch(conn)
	if err := b.Send(); err != nil {
		return err
	}
	if g, ok := b.Gen(); ok {
		l.record(g)
	}
	return nil
}

// Discard ends conn's batch after building it failed, so the next batch
// starts empty. google/nftables has no call that only drops what was
// queued: Discard flushes and ignores the error. When the library refused
// one of the messages (it keeps the first such error) nothing is sent;
// messages queued before an error of the caller's own are sent, and not
// recorded, so the firewall takes them as another party's batch.
func (l *Ledger) Discard(conn *nftables.Conn) {
	_ = conn.Flush()
}

// Batch is one batch of this process in the firewall's own tables (package
// nat: its table and the guard table, whole or patched) on its way to the
// kernel: the messages queued on its connection and the generation they go
// on top of. It is not recorded: the firewall keeps the generation of its
// own batches itself, with the fingerprint of what they left.
type Batch struct {
	conn  *nftables.Conn
	base  uint32 // the generation the batch goes on top of
	based bool   // base is known: read before the batch, or checked by the kernel
	at    uint32 // the kernel takes the batch only on top of this generation; 0: on any
}

// Batch starts a batch of conn's queued messages on the generation the
// ruleset is at now. When that cannot be read the batch is still sent,
// and Gen never calls it certain.
func (l *Ledger) Batch(conn *nftables.Conn) *Batch {
	b := &Batch{conn: conn}
	if g, err := conn.GetGen(); err == nil {
		b.base, b.based = g.ID, true
	}
	return b
}

// BatchOn starts a batch of conn's queued messages that the kernel takes
// only on top of generation gen, the one the caller checked its tables at
// (FlushWithGenID: the kernel refuses the batch with ERESTART if any other
// came since, and then nothing of it is applied). Gen 0 asks for no check;
// the batch is still taken to go on top of 0.
func (l *Ledger) BatchOn(conn *nftables.Conn, gen uint32) *Batch {
	return &Batch{conn: conn, base: gen, based: true, at: gen}
}

// Send sends the batch, all of it or nothing.
func (b *Batch) Send() error {
	return b.conn.FlushWithGenID(b.at) // 0 is Flush: no check
}

// Gen returns the generation the batch made when it is certainly this
// batch's: the ruleset is at base + 1 now, so no other batch came before
// or after it. Call it after Send, and after reading what the batch left
// (a listing), so that what was read is certainly this batch's too.
func (b *Batch) Gen() (uint32, bool) {
	if !b.based {
		return 0, false
	}
	g, err := b.conn.GetGen()
	if err != nil || g.ID != b.base+1 {
		return 0, false
	}
	return g.ID, true
}
