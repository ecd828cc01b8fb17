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
	b := repoFile(t, "config.json")
	var cfg struct {
		Linux struct{ Capabilities []string }
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	unit := repoFile(t, "docs/systemd/v6bridge.service")
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

// repoFile returns the file path (relative to the repository's top) that a
// test holds the code to, or fails the test.
func repoFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile("../../" + path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
