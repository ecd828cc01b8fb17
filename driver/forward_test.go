package driver

import (
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/v6bridge/v6bridge/portfwd"
)

// loopbackPort listens on a free port of [::1] for tcp: a program of the
// host holding it. Close frees it.
func loopbackPort(t *testing.T) (net.Listener, int) {
	t.Helper()
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln, ln.Addr().(*net.TCPAddr).Port
}

func forwardBound(fw *portfwd.Forwarder, port int) (bound bool, problem string) {
	for _, s := range fw.Status() {
		if strings.Contains(s.Forward, fmt.Sprintf(" [::1]:%d->", port)) {
			return s.Bound, s.Problem
		}
	}
	return false, "no such forward"
}

// TestSquatterOnLoopbackPortDuringRestart: a container publishes
// [::1]:P; while the plugin restarts, another program takes P. The plugin
// starts anyway and names the holder in the forward's status; other
// containers join and leave; a container asking for another held port
// fails alone, naming its holder; when P is free, the forward binds by
// itself, without the container restarting.
func TestSquatterOnLoopbackPortDuringRestart(t *testing.T) {
	log := logrus.New()
	log.SetOutput(io.Discard)
	r := newRig(t)
	r.fwd = portfwd.New(log, portfwd.Limits{})
	r.d = r.reopen(t)
	mustNetwork(t, r, netA, "fd00:1::/112", nil)
	for i, ep := range []string{ep1, ep2, ep3} {
		mustEndpoint(t, r, netA, ep, fmt.Sprintf("fd00:1::%d/112", 10+i))
	}
	probe, p := loopbackPort(t)
	probe.Close()
	if _, err := r.d.Join(JoinRequest{NetworkID: netA, EndpointID: ep1, SandboxKey: "sb1", Ports: portmap("::1", p, 5432)}); err != nil {
		t.Fatal(err)
	}
	if ok, problem := forwardBound(r.fwd.(*portfwd.Forwarder), p); !ok {
		t.Fatalf("forward of [::1]:%d before the restart: %s", p, problem)
	}

	// The restart, with a squatter in between.
	r.fwd.(*portfwd.Forwarder).Close()
	squat, err := net.Listen("tcp6", fmt.Sprintf("[::1]:%d", p))
	if err != nil {
		t.Fatal(err)
	}
	defer squat.Close()
	fw := portfwd.New(log, portfwd.Limits{})
	defer fw.Close()
	r.fwd = fw
	r.d = r.reopen(t)
	if err := r.d.Reconcile(); err != nil {
		t.Fatalf("start with a held forwarded port: %v", err)
	}
	holder := fmt.Sprintf("pid %d (", os.Getpid())
	if ok, problem := forwardBound(fw, p); ok || !strings.Contains(problem, holder) {
		t.Fatalf("status of the held forward: bound %v, %q, want the holder %q named", ok, problem, holder)
	}

	// Other containers start and stop.
	_, q := loopbackPort(t)
	probe, free := loopbackPort(t)
	probe.Close()
	for range 2 {
		if _, err := r.d.Join(JoinRequest{NetworkID: netA, EndpointID: ep2, SandboxKey: "sb2", Ports: portmap("", 8080, 80)}); err != nil {
			t.Fatalf("another container's join: %v", err)
		}
		if err := r.d.Leave(netA, ep2); err != nil {
			t.Fatalf("another container's leave: %v", err)
		}
	}
	// One asking for a held port fails alone.
	_, err = r.d.Join(JoinRequest{NetworkID: netA, EndpointID: ep3, SandboxKey: "sb3", Ports: portmap("::1", q, 80)})
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("[::1]:%d", q)) || !strings.Contains(err.Error(), holder) {
		t.Fatalf("join asking for held [::1]:%d: %v, want the port and its holder named", q, err)
	}
	if r.d.endpoints[ep3].Joined {
		t.Fatal("the failed join left its endpoint joined")
	}
	if _, err := r.d.Join(JoinRequest{NetworkID: netA, EndpointID: ep2, SandboxKey: "sb2", Ports: portmap("::1", free, 80)}); err != nil {
		t.Fatalf("a join after the failed one: %v", err)
	}

	squat.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, problem := forwardBound(fw, p)
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the forward never bound once [::1]:%d was free: %s", p, problem)
		}
		time.Sleep(50 * time.Millisecond)
	}
	c, err := net.Dial("tcp6", fmt.Sprintf("[::1]:%d", p))
	if err != nil {
		t.Fatalf("connect to the freed forward: %v", err)
	}
	c.Close()
}
