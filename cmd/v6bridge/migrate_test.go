package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/v6bridge/v6bridge/internal/golden"
	"github.com/v6bridge/v6bridge/migrate"
)

// copyCase copies migrate's fixture name into a temp dir.
func copyCase(t *testing.T, name string) string {
	t.Helper()
	return golden.CopyDir(t, filepath.Join("..", "..", "migrate", "testdata", name))
}

func TestMigrateWrite(t *testing.T) {
	dir := copyCase(t, "seed")
	ndppd := func() []migrate.Process { return []migrate.Process{{PID: 812, Name: "ndppd"}} }
	args := []string{"--ndppd", filepath.Join(dir, "ndppd.conf"), "--compose", filepath.Join(dir, "docker-compose.yml"), "--driver", "v6bridge", "--write"}
	for run := 0; run < 2; run++ { // the second run overwrites its own files
		var out bytes.Buffer
		if err := migrateCmd(args, &out, ndppd); err != nil {
			t.Fatalf("run %d: %v\n%s", run, err, out.String())
		}
		if !strings.Contains(out.String(), "Only now stop ndppd (running, pid 812)") {
			t.Errorf("the steps do not use the process scan:\n%s", out.String())
		}
	}
	compose, err := os.ReadFile(filepath.Join(dir, "docker-compose.v6bridge.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"driver: v6bridge\n", "subnet: 2001:db8:1234:a1:1::/112", "v6bridge.mode: public"} {
		if !strings.Contains(string(compose), want) {
			t.Errorf("written compose file lacks %q:\n%s", want, compose)
		}
	}
	if strings.Contains(string(compose), "ipv6nat") {
		t.Errorf("written compose file still has the ipv6nat service:\n%s", compose)
	}
	env, err := os.ReadFile(filepath.Join(dir, "v6bridge.env"))
	if err != nil || !strings.Contains(string(env), "\nPUBLIC_PREFIX=2001:db8:1234:a1::/64\n") {
		t.Errorf("v6bridge.env = %q, %v", env, err)
	}

	// A file migrate did not write is never overwritten.
	os.WriteFile(filepath.Join(dir, "v6bridge.env"), []byte("MINE=1\n"), 0o644)
	if err := migrateCmd(args, &bytes.Buffer{}, ndppd); err == nil || !strings.Contains(err.Error(), "not written by v6bridge migrate") {
		t.Errorf("overwrite of a foreign file: %v", err)
	}
}

func TestMigrateRefusesAndWritesNothing(t *testing.T) {
	dir := copyCase(t, "refused")
	var out bytes.Buffer
	err := migrateCmd([]string{"--ndppd", filepath.Join(dir, "ndppd.conf"), "--compose", filepath.Join(dir, "compose.yml"), "--write"}, &out, func() []migrate.Process { return nil })
	if err == nil || !strings.Contains(err.Error(), "cannot be translated") {
		t.Errorf("err = %v, want the refusals counted", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "compose.v6bridge.yml")); err == nil {
		t.Error("wrote a compose file although something cannot be translated")
	}
	if err := migrateCmd([]string{"--ndppd", filepath.Join(dir, "missing.conf")}, &out, nil); err == nil {
		t.Error("a missing file is accepted")
	}
}
