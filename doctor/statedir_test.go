package doctor

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/v6bridge/v6bridge/netspec"
)

// After `docker plugin upgrade` the engine set state.source back to
// /var/lib/v6bridge; the bridges were made from /srv/v6bridge. doctor
// names both directories and the command that sets it right.
func TestEvaluateStateDir(t *testing.T) {
	made := []netspec.OwnedLink{
		{Name: "v6b-0123456789a", Bridge: true, Instance: "aaaa", StateDir: "/srv/v6bridge"},
		{Name: "v6b-fedcba98765", Bridge: true, Instance: "aaaa", StateDir: "/srv/v6bridge"},
	}
	tests := []struct {
		name string
		s    StateDir
		want Status
		says []string
	}{
		{"no bridges yet", StateDir{From: "plugin", ID: "bbbb", Dir: "/var/lib/v6bridge"}, OK, []string{"no v6bridge bridges"}},
		{"the plugin runs on the directory that made them", StateDir{Bridges: made, From: "plugin", ID: "aaaa", Dir: "/srv/v6bridge"}, OK, []string{"/srv/v6bridge", "2 bridges"}},
		{"upgrade reset state.source to a fresh directory", StateDir{Bridges: made, From: "engine's settings of v6bridge:latest", Dir: "/var/lib/v6bridge"}, Fail,
			[]string{"/var/lib/v6bridge", "a directory without state", "/srv/v6bridge", "instance aaaa", "v6b-0123456789a, v6b-fedcba98765", "state.source=/srv/v6bridge"}},
		{"another instance's directory", StateDir{Bridges: made, From: "plugin", ID: "cccc", Dir: "/var/lib/v6bridge"}, Fail,
			[]string{"instance cccc", "/srv/v6bridge"}},
		{"unknown plugin directory", StateDir{Bridges: made, Err: "no engine"}, Warn, []string{"unknown", "no engine"}},
		{"links not listed", StateDir{LinksErr: "permission denied"}, Warn, []string{"permission denied"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := healthy()
			f.StateDir = tt.s
			var got *Finding
			for _, x := range Evaluate(f) {
				if x.Check == "state dir" {
					got = &x
				}
			}
			if got == nil {
				t.Fatal("no state directory finding")
			}
			if got.Status != tt.want {
				t.Errorf("status %s, want %s: %+v", got.Status, tt.want, *got)
			}
			text := got.Summary + " " + got.Meaning + " " + got.Fix
			for _, w := range tt.says {
				if !strings.Contains(text, w) {
					t.Errorf("finding does not say %q: %+v", w, *got)
				}
			}
		})
	}
}

// A managed plugin that refuses to start answers nobody: doctor reads its
// state.source from the engine and the id from instance.json there.
func TestManagedStateSource(t *testing.T) {
	dir := t.TempDir()
	engine := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`[{"Name":"other:latest","Enabled":true,"Settings":{"Mounts":[{"Name":"state","Source":"/nope"}]},"Config":{"Interface":{"Socket":"other.sock"}}},
			{"Name":"v6bridge:latest","Enabled":false,"Settings":{"Mounts":[{"Name":"state","Source":"` + dir + `"}]},"Config":{"Interface":{"Socket":"v6bridge.sock"}}}]`))
	}))
	defer engine.Close()
	name, src, err := ManagedStateSource(context.Background(), "tcp://"+engine.Listener.Addr().String())
	if err != nil || name != "v6bridge:latest" || src != dir {
		t.Fatalf("ManagedStateSource = %q, %q, %v; want v6bridge:latest, %s", name, src, err, dir)
	}
	if id, err := ReadStateID(dir); err != nil || id != "" {
		t.Errorf("fresh directory: id %q, %v; want none", id, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "instance.json"), []byte(`{"id":"aaaa","created":"2026-12-07T00:00:00Z","state_dir":"/srv"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if id, err := ReadStateID(dir); err != nil || id != "aaaa" {
		t.Errorf("id %q, %v; want aaaa", id, err)
	}
}
