package doctor

import (
	"context"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// serveUnix serves h on a unix socket in a temp dir and returns its
// DOCKER_HOST.
func serveUnix(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "docker.sock")
	serveAt(t, path, h)
	return "unix://" + path
}

// serveAt serves h on a unix socket at path until the test ends.
func serveAt(t *testing.T, path string, h http.Handler) {
	t.Helper()
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
}

func TestAskEngine(t *testing.T) {
	// An engine >= 29: /_ping names its API, and it refuses requests
	// below API 1.44.
	ok := serveUnix(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/_ping":
			w.Header().Set("Api-Version", "1.52")
			w.Write([]byte("OK"))
		case r.Method == http.MethodGet && r.URL.Path == "/v1.52/version":
			w.Write([]byte(`{"Version":"29.0.0","ApiVersion":"1.52","MinAPIVersion":"1.44","Os":"linux"}`))
		case strings.HasPrefix(r.URL.Path, "/v1.") && r.URL.Path < "/v1.44":
			http.Error(w, "client version too old. Minimum supported API version is 1.44", http.StatusBadRequest)
		default:
			http.NotFound(w, r)
		}
	})
	// An old engine without the header: unversioned /version.
	old := serveUnix(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/version" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(`{"Version":"20.10.24","ApiVersion":"1.41","MinAPIVersion":"1.12"}`))
	})
	broken := serveUnix(t, func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", http.StatusInternalServerError) })
	garbage := serveUnix(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("<html>")) })
	tests := []struct {
		host    string
		version string
		err     string
	}{
		{ok, "29.0.0/1.52", ""},
		{old, "20.10.24/1.41", ""},
		{broken, "", "500"},
		{garbage, "", "decode"},
		{"unix://" + filepath.Join(t.TempDir(), "none.sock"), "", "no such file"},
		{"ssh://host", "", "accepted are unix:///path and tcp://host:port"},
	}
	for _, tt := range tests {
		e := AskEngine(context.Background(), tt.host)
		got := ""
		if e.Version != "" {
			got = e.Version + "/" + e.APIVersion
		}
		if got != tt.version || (tt.err == "") != (e.Err == "") || !strings.Contains(e.Err, tt.err) {
			t.Errorf("AskEngine(%s) = %+v, want %q, error with %q", tt.host, e, tt.version, tt.err)
		}
		if tt.host == ok && (e.Negotiated != "1.52" || e.MinAPIVersion != "1.44") {
			t.Errorf("AskEngine(%s) = %+v, want negotiated 1.52, minimum 1.44", tt.host, e)
		}
		if e.Host != tt.host {
			t.Errorf("AskEngine(%s).Host = %q", tt.host, e.Host)
		}
	}
}

func TestEngineNetworks(t *testing.T) {
	host := serveUnix(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/networks" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(`[{"Name":"bridge","Id":"aaa","Driver":"bridge"},{"Name":"web","Id":"bbb","Driver":"v6bridge:latest"}]`))
	})
	got, err := EngineNetworks(context.Background(), host)
	if err != nil || len(got) != 2 || !got["aaa"] || !got["bbb"] {
		t.Errorf("EngineNetworks = %v, %v", got, err)
	}
	broken := serveUnix(t, func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", http.StatusInternalServerError) })
	if _, err := EngineNetworks(context.Background(), broken); err == nil {
		t.Error("a failing engine gave a network list (gc would delete every network)")
	}
}
