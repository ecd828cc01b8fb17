package nftledger

import "github.com/google/nftables"

// Flush sends conn's queued batch and records its generation in l when it
// is certainly this batch's: the generation read before the batch and the
// one read after differ by one, so no other batch came in between. When
// either read fails, or another batch came, nothing is recorded and the
// firewall lists its tables as it would after any other party's batch.
// With a nil l it is conn.Flush.
func (l *Ledger) Flush(conn *nftables.Conn) error {
	if l == nil {
		return conn.Flush()
	}
	before, berr := conn.GetGen()
	if err := conn.Flush(); err != nil {
		return err
	}
	if after, err := conn.GetGen(); berr == nil && err == nil && after.ID == before.ID+1 {
		l.Record(after.ID)
	}
	return nil
}
