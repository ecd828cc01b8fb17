package nettest

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"

	"github.com/v6bridge/v6bridge/internal/netnsdo"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// KernelEnv is the environment variable that asks for the kernel tests:
// V6B_KERNEL=1 (make test-kernel sets it).
const KernelEnv = "V6B_KERNEL"

// RequireRoot is the kernel tests' gate. It skips the test unless
// V6B_KERNEL=1, whatever the uid, so that `go test ./...` is a unit run that
// creates no namespace even as root. Asked for, the kernel tests need root
// (CAP_NET_ADMIN, and CAP_SYS_ADMIN for setns): without it the test fails
// instead of skipping, so a kernel run cannot pass having tested nothing.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Getenv(KernelEnv) != "1" {
		t.Skipf("kernel test: set %s=1, as root (make test-kernel)", KernelEnv)
	}
	if os.Geteuid() != 0 {
		t.Fatalf("%s=1: the kernel tests need root (CAP_NET_ADMIN, CAP_SYS_ADMIN), euid is %d", KernelEnv, os.Geteuid())
	}
}

// NewNS creates an anonymous network namespace, sets its loopback up and
// returns a handle to it. The calling goroutine's thread is returned to its original namespace
// before NewNS returns. The handle is closed by t.Cleanup, which frees the
// namespace once nothing else (a socket, a process) holds it. The test is
// skipped unless V6B_KERNEL=1 (RequireRoot).
func NewNS(t testing.TB) netns.NsHandle {
	t.Helper()
	RequireRoot(t)

	ns, err := newNS()
	if err != nil {
		t.Fatalf("new netns: %v", err)
	}
	t.Cleanup(func() { ns.Close() })

	h := Handle(t, ns)
	lo, err := h.LinkByName("lo")
	if err == nil {
		err = h.LinkSetUp(lo)
	}
	if err != nil {
		t.Fatalf("set lo up in new netns: %v", err)
	}
	return ns
}

// newNS creates the namespace on a locked thread. If the thread cannot go
// back to its original namespace it stays locked, so the runtime retires it
// when the goroutine ends instead of reusing it elsewhere.
func newNS() (netns.NsHandle, error) {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return netns.None(), fmt.Errorf("get current netns: %w", err)
	}
	defer orig.Close()

	ns, err := netns.New()
	if err != nil {
		// netns.New may have failed after the unshare; go back in any case.
		if serr := netns.Set(orig); serr != nil {
			return netns.None(), fmt.Errorf("new netns: %w (and restoring: %v)", err, serr)
		}
		runtime.UnlockOSThread()
		return netns.None(), fmt.Errorf("new netns: %w", err)
	}
	if err := netns.Set(orig); err != nil {
		ns.Close()
		return netns.None(), fmt.Errorf("restore netns: %w", err)
	}
	runtime.UnlockOSThread()
	return ns, nil
}

// Do runs fn on a locked OS thread that has entered ns, then moves the
// thread back. Only fn's own goroutine is inside ns: goroutines it starts
// run elsewhere, but sockets it opens stay bound to ns after it returns.
// Do returns fn's error, or the error entering or leaving ns.
func Do(t testing.TB, ns netns.NsHandle, fn func() error) error {
	t.Helper()
	return do(ns, fn)
}

func do(ns netns.NsHandle, fn func() error) error { return netnsdo.Do(ns, fn) }

// Open runs open inside ns and returns what it opened: a socket opened so
// stays bound to ns. t.Cleanup closes it; an error fails the test.
func Open[C io.Closer](t testing.TB, ns netns.NsHandle, open func() (C, error)) C {
	t.Helper()
	var c C
	if err := do(ns, func() (err error) {
		c, err = open()
		return err
	}); err != nil {
		t.Fatalf("open in %s: %v", ns, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Handle returns a netlink handle acting in ns, closed by t.Cleanup.
func Handle(t testing.TB, ns netns.NsHandle) *netlink.Handle {
	t.Helper()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatalf("netlink handle in %s: %v", ns, err)
	}
	t.Cleanup(h.Close)
	return h
}

// Connect creates a veth pair between namespaces a and b: aName with
// address aAddr in a, bName with bAddr in b (either address may be the zero
// Prefix for none). Addresses are added without duplicate address
// detection so they are usable at once, and both ends are set up. The pair
// goes away with its namespaces.
func Connect(t testing.TB, a netns.NsHandle, aName string, aAddr netip.Prefix, b netns.NsHandle, bName string, bAddr netip.Prefix) {
	t.Helper()
	ha := Handle(t, a)
	hb := Handle(t, b)

	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: aName},
		PeerName:      bName,
		PeerNamespace: netlink.NsFd(int(b)),
	}
	if err := ha.LinkAdd(veth); err != nil {
		t.Fatalf("connect %s-%s: add veth: %v", aName, bName, err)
	}
	for _, end := range []struct {
		h    *netlink.Handle
		name string
		addr netip.Prefix
	}{{ha, aName, aAddr}, {hb, bName, bAddr}} {
		if err := setUp(end.h, end.name, end.addr); err != nil {
			t.Fatalf("connect %s-%s: %v", aName, bName, err)
		}
	}
}

// setUp adds addr (if valid) to the link name without DAD and sets it up.
func setUp(h *netlink.Handle, name string, addr netip.Prefix) error {
	l, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find %s: %w", name, err)
	}
	if addr.IsValid() {
		a := &netlink.Addr{IPNet: PrefixNet(addr), Flags: unix.IFA_F_NODAD}
		if err := h.AddrAdd(l, a); err != nil {
			return fmt.Errorf("add %s to %s: %w", addr, name, err)
		}
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("set %s up: %w", name, err)
	}
	return nil
}

// PrefixNet converts p to the *net.IPNet netlink wants, keeping the host
// bits (an interface address, not a network).
func PrefixNet(p netip.Prefix) *net.IPNet {
	bits := 128
	if p.Addr().Is4() {
		bits = 32
	}
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), bits)}
}
