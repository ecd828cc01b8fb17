package doctor

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// TestHeldForwardIsAProblem: a forward the plugin could not bind (another
// program holds its loopback port) reaches doctor from the plugin's
// status and is a warning naming the holder.
func TestHeldForwardIsAProblem(t *testing.T) {
	sock := filepath.Join(t.TempDir(), SocketName)
	const problem = "forward tcp [::1]:5432->[fd00::5]:5432: port [::1]:5432/tcp is held by pid 812 (postgres): stop it or publish another host port (address already in use); retrying"
	mux := http.NewServeMux()
	mux.HandleFunc("/v6bridge.Status", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"Networks":[{}],"Forwards":[{"Forward":"udp [::1]:5353->[fd00::5]:53","Bound":true},{"Forward":"tcp [::1]:5432->[fd00::5]:5432","Problem":"` + problem + `"}]}`))
	})
	serveAt(t, sock, mux)

	p := AskPlugin(context.Background(), sock, "")
	if len(p.ForwardProblems) != 1 || p.ForwardProblems[0] != problem {
		t.Fatalf("forward problems = %q, want the held one only", p.ForwardProblems)
	}
	f := healthy()
	f.Plugin = p
	var found bool
	for _, fd := range Evaluate(f) {
		if fd.Check == "forwards" {
			found = true
			if fd.Status != Warn || !strings.Contains(fd.Summary, "pid 812 (postgres)") || fd.Fix == "" {
				t.Errorf("finding %+v, want a warning naming the holder, with a fix", fd)
			}
		}
	}
	if !found {
		t.Errorf("no forwards finding for %+v", p)
	}
	f.Plugin.ForwardProblems = nil
	for _, fd := range Evaluate(f) {
		if fd.Check == "forwards" {
			t.Errorf("a forwards finding with every forward bound: %+v", fd)
		}
	}
}
