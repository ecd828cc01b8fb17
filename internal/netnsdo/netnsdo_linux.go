// Package netnsdo runs a function with the calling goroutine's OS thread
// inside another network namespace. /proc/sys/net and new sockets follow
// the namespace of the thread, so kernel code that acts in a namespace
// other than its own (kernel tests, the link package's sysctls) goes
// through here.
package netnsdo

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// Do runs fn on a locked OS thread that has entered ns, then moves the
// thread back. Only fn's own goroutine is inside ns: goroutines it starts
// run elsewhere, but sockets it opens stay bound to ns. If the thread
// cannot return to its namespace it stays locked and dies with the
// goroutine, rather than running unrelated code in the wrong namespace. Do
// returns fn's error, or the error entering or leaving ns.
func Do(ns netns.NsHandle, fn func() error) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("get current netns: %w", err)
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter netns %s: %w", ns, err)
	}
	ferr := fn()
	if err := netns.Set(orig); err != nil {
		return fmt.Errorf("restore netns: %w", err)
	}
	runtime.UnlockOSThread()
	return ferr
}
