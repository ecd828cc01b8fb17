package main

import (
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/v6bridge/v6bridge/internal/nettest"
)

// A socket a live process answers on is never taken over; a stale socket
// file (its process died) is replaced.
func TestListenUnixRefusesLiveSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v6bridge.sock")
	first, err := listenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	nettest.ServeConns(t, first, func(c net.Conn) { c.Close() })
	_, err = listenUnix(path)
	if !errors.Is(err, errSocketLive) || !strings.Contains(err.Error(), path) {
		t.Fatalf("second listen: %v, want errSocketLive naming %s", err, path)
	}
	// The first still serves.
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("first instance's socket gone: %v", err)
	}
	c.Close()
	// Dead: the file stays behind, as after a crash.
	first.(*net.UnixListener).SetUnlinkOnClose(false)
	first.Close()
	l, err := listenUnix(path)
	if err != nil {
		t.Fatalf("listen over a stale socket: %v", err)
	}
	l.Close()
}
