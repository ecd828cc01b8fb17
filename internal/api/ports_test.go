package api

import (
	"fmt"
	"strings"
	"testing"

	"github.com/v6bridge/v6bridge/portfwd"
)

// TestLoopbackRangeBounded: -p [::1]:10000-20000:10000-20000 arrives as
// one binding per port and is refused above portfwd.MaxPorts, saying what
// is accepted; the same range on [::], and MaxPorts on [::1], are not.
func TestLoopbackRangeBounded(t *testing.T) {
	bindings := func(host string, n int) map[string]any {
		var bs []any
		for i := range n {
			bs = append(bs, map[string]any{"Proto": 6.0, "Port": float64(10000 + i), "HostIP": host, "HostPort": float64(10000 + i), "HostPortEnd": float64(10000 + i)})
		}
		return map[string]any{optPortMap: bs}
	}
	_, _, err := PortsFromWire(bindings("::1", 10001))
	if err == nil || !strings.Contains(err.Error(), "10001 host ports on the loopback address") || !strings.Contains(err.Error(), fmt.Sprintf("accepted are at most %d", portfwd.MaxPorts)) {
		t.Fatalf("10,001 ports on [::1]: %v", err)
	}
	if _, _, err := PortsFromWire(bindings("::1", portfwd.MaxPorts+1)); err == nil {
		t.Fatalf("%d ports on [::1] accepted", portfwd.MaxPorts+1)
	}
	if reqs, _, err := PortsFromWire(bindings("::1", portfwd.MaxPorts)); err != nil || len(reqs) != portfwd.MaxPorts {
		t.Fatalf("%d ports on [::1]: %d, %v", portfwd.MaxPorts, len(reqs), err)
	}
	if reqs, _, err := PortsFromWire(bindings("::", 10001)); err != nil || len(reqs) != 10001 {
		t.Fatalf("10,001 ports on [::]: %d, %v", len(reqs), err)
	}
}
