package migrate

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/v6bridge/v6bridge/internal/golden"

	"go.yaml.in/yaml/v3"
)

// loadCase reads testdata/name: ndppd.conf, daemon.json, *.yml/*.yaml
// compose files and "running" (NAME PID lines, the process scan).
func loadCase(t *testing.T, name string) Input {
	t.Helper()
	dir := filepath.Join("testdata", name)
	in := Input{Driver: "v6bridge:latest"}
	if b, err := os.ReadFile(filepath.Join(dir, "ndppd.conf")); err == nil {
		in.NdppdPath = filepath.Join(dir, "ndppd.conf")
		n, err := ParseNdppd(in.NdppdPath, string(b))
		if err != nil {
			t.Fatal(err)
		}
		in.Ndppd = &n
	}
	if b, err := os.ReadFile(filepath.Join(dir, "daemon.json")); err == nil {
		in.DaemonPath = filepath.Join(dir, "daemon.json")
		d, err := ParseDaemon(in.DaemonPath, b)
		if err != nil {
			t.Fatal(err)
		}
		in.Daemon = &d
	}
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		if n := e.Name(); (strings.HasSuffix(n, ".yml") || strings.HasSuffix(n, ".yaml")) && !strings.Contains(n, ".v6bridge.") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		in.Compose = append(in.Compose, ComposeFile{Path: filepath.Join(dir, n), Data: b})
	}
	if b, err := os.ReadFile(filepath.Join(dir, "running")); err == nil {
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			name, pid, _ := strings.Cut(l, " ")
			n, _ := strconv.Atoi(pid)
			in.Running = append(in.Running, Process{PID: n, Name: name})
		}
	}
	return in
}

func TestMigrateGolden(t *testing.T) {
	for _, tt := range []struct {
		name    string
		refused int
	}{
		{"seed", 0},
		{"auto64", 0},
		{"multi", 0},
		{"pools", 0},
		{"refused", 5},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := Build(loadCase(t, tt.name))
			if len(r.Refusals) != tt.refused {
				t.Errorf("%d refusals, want %d:\n%s", len(r.Refusals), tt.refused, strings.Join(r.Refusals, "\n"))
			}
			var b bytes.Buffer
			if err := r.WriteText(&b); err != nil {
				t.Fatal(err)
			}
			for _, c := range r.Compose {
				// Every rewritten file is YAML again.
				var n yaml.Node
				if err := yaml.Unmarshal([]byte(c.Text), &n); err != nil {
					t.Errorf("%s: %v", c.OutPath, err)
				}
				if len(r.Refusals) == 0 {
					b.WriteString("\n==> " + c.OutPath + " <==\n" + c.Text)
				}
			}
			golden.Check(t, tt.name+".golden", b.Bytes())
		})
	}
}
