package main

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
)

// TestBothPackagingsGrantTheSameCapabilities: the managed plugin's
// config.json and the host service's unit grant the same capabilities,
// CAP_NET_BIND_SERVICE among them (-p [::1]:80:80 is bound by the plugin).
func TestBothPackagingsGrantTheSameCapabilities(t *testing.T) {
	b, err := os.ReadFile("../../config.json")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Linux struct{ Capabilities []string }
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	unit, err := os.ReadFile("../../docs/systemd/v6bridge.service")
	if err != nil {
		t.Fatal(err)
	}
	var bounding []string
	for _, l := range strings.Split(string(unit), "\n") {
		if v, ok := strings.CutPrefix(l, "CapabilityBoundingSet="); ok {
			bounding = strings.Fields(v)
		}
	}
	plugin := slices.Sorted(slices.Values(cfg.Linux.Capabilities))
	slices.Sort(bounding)
	if !slices.Equal(plugin, bounding) {
		t.Errorf("config.json grants %v, the unit %v", plugin, bounding)
	}
	if !slices.Contains(plugin, "CAP_NET_BIND_SERVICE") {
		t.Errorf("config.json grants %v: -p [::1]:80:80 cannot bind without CAP_NET_BIND_SERVICE", plugin)
	}
}
