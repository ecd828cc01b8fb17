package api

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/sirupsen/logrus"
)

// TestObserver: every request is reported once with its method and whether
// its answer was an error, on both APIs.
func TestObserver(t *testing.T) {
	type obs struct {
		method string
		failed bool
	}
	var mu sync.Mutex
	var got []obs
	o := func(method string, failed bool, took time.Duration) {
		if took < 0 {
			t.Errorf("%s took %v", method, took)
		}
		mu.Lock()
		got = append(got, obs{method, failed})
		mu.Unlock()
	}
	nw := &recorder{}
	sock := filepath.Join(t.TempDir(), "p.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	log := logrus.New()
	log.SetLevel(logrus.PanicLevel)
	h := NewHandler(nw, newIPAM(t), nil, log, WithObserver(o))
	go h.Serve(l)
	c := http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return net.Dial("unix", sock)
	}}}
	post := func(path, body string) {
		resp, err := c.Post("http://plugin"+path, "application/json", bytes.NewBufferString(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	post("/NetworkDriver.Leave", `{"NetworkID":"n","EndpointID":"e"}`)
	nw.err = errors.New("no")
	post("/NetworkDriver.Leave", `{"NetworkID":"n","EndpointID":"e"}`)
	post("/NetworkDriver.CreateNetwork", `{not json`)
	post("/IpamDriver.GetCapabilities", ``)
	post("/IpamDriver.ReleasePool", `{"PoolID":"unknown"}`)
	want := []obs{
		{"NetworkDriver.Leave", false}, {"NetworkDriver.Leave", true}, {"NetworkDriver.CreateNetwork", true},
		{"IpamDriver.GetCapabilities", false}, {"IpamDriver.ReleasePool", false},
	}
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(obs{})); diff != "" {
		t.Errorf("observed (-want +got):\n%s", diff)
	}
}
