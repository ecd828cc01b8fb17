package link

import (
	"fmt"
	"os"
	"strings"

	"github.com/v6bridge/v6bridge/internal/netnsdo"

	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netns"
)

// inNS runs fn with the calling goroutine's thread inside k's namespace.
// /proc/sys/net shows the namespace of the thread that opens it, so every
// sysctl read and write goes through here. If the thread cannot return to
// its namespace it stays locked and dies with the goroutine, rather than
// running unrelated code in the wrong namespace.
func (k *Kernel) inNS(fn func() error) error {
	if k.ns <= 0 { // New normalised "current" to netns.None()
		return fn()
	}
	return netnsdo.Do(k.ns, fn)
}

// readSysctl returns the value of a sysctl in k's namespace, trimmed.
func (k *Kernel) readSysctl(key ...string) (string, error) {
	var v string
	err := k.inNS(func() error {
		b, err := os.ReadFile(sysctlPath(k.procSys, key...))
		v = strings.TrimSpace(string(b))
		return err
	})
	if err != nil {
		return "", fmt.Errorf("read %s: %w", sysctlName(key...), err)
	}
	return v, nil
}

// ensureSysctl sets a sysctl in k's namespace to want unless it already
// has that value, and returns the old value and whether it wrote.
func (k *Kernel) ensureSysctl(want string, key ...string) (old string, changed bool, err error) {
	ns := k.ns
	if ns <= 0 {
		ns = netns.None()
	}
	old, changed, err = EnsureSysctl(ns, k.procSys, want, key...)
	if changed {
		k.log.WithFields(logrus.Fields{"sysctl": sysctlName(key...), "old": old, "new": want}).Info("set sysctl")
	}
	return old, changed, err
}

// ReadSysctl returns the value of the sysctl key (path elements under
// procSys) in network namespace ns (netns.None(): the calling thread's),
// trimmed.
func ReadSysctl(ns netns.NsHandle, procSys string, key ...string) (string, error) {
	var v string
	read := func() error {
		b, err := os.ReadFile(sysctlPath(procSys, key...))
		v = strings.TrimSpace(string(b))
		return err
	}
	var err error
	if ns.IsOpen() {
		err = netnsdo.Do(ns, read)
	} else {
		err = read()
	}
	if err != nil {
		return "", fmt.Errorf("read %s: %w", sysctlName(key...), err)
	}
	return v, nil
}

// EnsureSysctl sets the sysctl key (path elements under procSys, e.g.
// "net", "ipv6", "conf", "eth0", "proxy_ndp") to want in network namespace
// ns unless it already has that value, and returns the old value and
// whether it wrote. With netns.None() it acts in the calling thread's
// namespace. A missing key is an error, not a new file.
func EnsureSysctl(ns netns.NsHandle, procSys, want string, key ...string) (old string, changed bool, err error) {
	do := func(fn func() error) error { return fn() }
	if ns.IsOpen() {
		do = func(fn func() error) error { return netnsdo.Do(ns, fn) }
	}
	err = do(func() error {
		path := sysctlPath(procSys, key...)
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		old = strings.TrimSpace(string(b))
		if old == want {
			return nil
		}
		// O_WRONLY without O_CREATE: a missing key is an error, not a file.
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		if _, err := f.WriteString(want); err != nil {
			f.Close()
			return err
		}
		changed = true
		return f.Close()
	})
	if err != nil {
		return old, false, fmt.Errorf("set %s=%s: %w", sysctlName(key...), want, err)
	}
	return old, changed, nil
}

// PrepareHost sets what the data path needs host wide and returns a
// "key: old -> new" line for each sysctl it changed. First, on each
// uplink whose accept_ra is 1, accept_ra=2: a host that learns its default
// route from router advertisements would otherwise drop it once forwarding
// is on. Then net.ipv6.conf.all.forwarding=1 and default.forwarding=1.
// Values already right are not written.
func (k *Kernel) PrepareHost(uplinks []string) (changed []string, err error) {
	for _, u := range uplinks {
		if err := validName(u); err != nil {
			return changed, fmt.Errorf("prepare host: uplink: %w", err)
		}
	}
	for _, u := range uplinks {
		key := []string{"net", "ipv6", "conf", u, "accept_ra"}
		cur, err := k.readSysctl(key...)
		if err != nil {
			return changed, fmt.Errorf("prepare host: uplink %q: %w", u, err)
		}
		if cur != "1" {
			continue // 0: RAs ignored anyway; 2: already right
		}
		old, did, err := k.ensureSysctl("2", key...)
		if err != nil {
			return changed, fmt.Errorf("prepare host: uplink %q: %w", u, err)
		}
		if did {
			changed = append(changed, change(sysctlName(key...), old, "2"))
		}
	}
	for _, scope := range []string{"all", "default"} {
		key := []string{"net", "ipv6", "conf", scope, "forwarding"}
		old, did, err := k.ensureSysctl("1", key...)
		if err != nil {
			return changed, fmt.Errorf("prepare host: %w", err)
		}
		if did {
			changed = append(changed, change(sysctlName(key...), old, "1"))
		}
	}
	return changed, nil
}
