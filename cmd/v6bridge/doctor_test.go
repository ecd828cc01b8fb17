package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/v6bridge/v6bridge/doctor"
	"github.com/v6bridge/v6bridge/internal/instance"
)

// The host service started under an engine 29.0.1 says so in its log:
// which version, the bug, and the fix; under 29.0.3 it says nothing.
func TestServeWarnsOfACrashingEngine(t *testing.T) {
	for _, tt := range []struct {
		version string
		warn    bool
	}{{"29.0.1", true}, {"29.0.3", false}, {"2.0.0-beta.24", false}} {
		engine := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Api-Version", "1.52")
			if strings.HasSuffix(r.URL.Path, "/version") {
				w.Write([]byte(`{"Version":"` + tt.version + `","ApiVersion":"1.52"}`))
			}
		}))
		log, hook := test.NewNullLogger()
		warnEngineBug(context.Background(), "tcp://"+engine.Listener.Addr().String(), log)
		engine.Close()
		var warned []string
		for _, e := range hook.AllEntries() {
			if e.Level == logrus.WarnLevel {
				warned = append(warned, e.Message)
			}
		}
		if got := len(warned) == 1 && strings.Contains(warned[0], tt.version) && strings.Contains(warned[0], "51557"); got != tt.warn {
			t.Errorf("engine %s: warnings %q, want a warning naming it: %v", tt.version, warned, tt.warn)
		}
	}
}

// doctor reads the identity the plugin writes (it may not import
// internal/instance): both agree on the file and its id.
func TestDoctorReadsThePluginsIdentity(t *testing.T) {
	dir := t.TempDir()
	id, _, err := instance.LoadIdentity(dir, "/srv/v6bridge")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := doctor.ReadStateID(dir); err != nil || got != id.ID {
		t.Errorf("doctor.ReadStateID = %q, %v; want %q", got, err, id.ID)
	}
}
