package doctor

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// servePlugin serves a fake /v6bridge.Status with n networks on path.
func servePlugin(t *testing.T, path string, n int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/v6bridge.Status", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"Networks":[` + strings.TrimSuffix(strings.Repeat(`{},`, n), ",") + `]}`))
	})
	serveAt(t, path, mux)
}

func TestFindSockets(t *testing.T) {
	dir := t.TempDir()
	// A managed plugin's socket, a stale regular file where a socket
	// would be, and the host service's socket.
	servePlugin(t, filepath.Join(dir, "3f1c", SocketName), 2)
	os.MkdirAll(filepath.Join(dir, "0abc"), 0o755)
	os.WriteFile(filepath.Join(dir, "0abc", SocketName), nil, 0o644)
	servePlugin(t, filepath.Join(dir, SocketName), 1)
	want := []string{filepath.Join(dir, SocketName), filepath.Join(dir, "3f1c", SocketName)}
	if diff := cmp.Diff(want, FindSockets(dir)); diff != "" {
		t.Errorf("FindSockets (-want +got):\n%s", diff)
	}
}

func TestAskPluginFindsManagedSocket(t *testing.T) {
	dir := t.TempDir()
	got := AskPlugin(context.Background(), "", dir)
	if got.Err == "" || !strings.Contains(got.Err, "--socket") {
		t.Errorf("no plugin: %+v, want an error naming --socket", got)
	}
	sock := filepath.Join(dir, "5e7d9a", SocketName)
	servePlugin(t, sock, 3)
	if diff := cmp.Diff(Plugin{Socket: sock, Networks: 3}, AskPlugin(context.Background(), "", dir)); diff != "" {
		t.Errorf("AskPlugin (-want +got):\n%s", diff)
	}
	// An explicit socket that does not answer is not replaced by a found one.
	if got := AskPlugin(context.Background(), filepath.Join(dir, "nope.sock"), dir); got.Err == "" {
		t.Errorf("explicit dead socket: %+v, want an error", got)
	}
}
