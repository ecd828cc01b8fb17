// Package nlretry retries netlink dumps the kernel interrupted.
//
// A netlink dump (list links, addresses, routes) that races with a change
// to what it lists ends with NLM_F_DUMP_INTR; vishvananda/netlink v1.3.1
// then returns the partial result together with ErrDumpInterrupted. The
// answer is to dump again: moby, cilium and the CNI plugins all do.
package nlretry

import "errors"

// Attempts is how many times Dump runs a dump before giving up.
const Attempts = 5

// ErrInterrupted is what Dump retries on. It is netlink.ErrDumpInterrupted
// on Linux; a variable so tests can use it without a kernel.
var ErrInterrupted error = errDumpInterrupted

// Dump runs fn until it returns something other than an interrupted dump,
// at most Attempts times. The last error (still wrapping the interruption
// if every attempt was interrupted) is returned with the last result.
func Dump[T any](fn func() (T, error)) (T, error) {
	var (
		v   T
		err error
	)
	for range Attempts {
		v, err = fn()
		if !errors.Is(err, ErrInterrupted) {
			return v, err
		}
	}
	return v, err
}
