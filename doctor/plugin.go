package doctor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// PluginsDir is where the engine finds plugin sockets: a host service's
// PluginsDir/v6bridge.sock, a managed plugin's PluginsDir/<id>/v6bridge.sock.
const PluginsDir = "/run/docker/plugins"

// SocketName is the file name of v6bridge's socket.
const SocketName = "v6bridge.sock"

// Plugin is what the running plugin said about itself.
type Plugin struct {
	Socket   string `json:"socket,omitempty"`
	Networks int    `json:"networks"`
	// The NDP responder's counters, to tell an on-link from a routed /64.
	NDPAddrs         int    `json:"ndp_addrs"`
	NDPSolicitations uint64 `json:"ndp_solicitations"`
	NDPAnswered      uint64 `json:"ndp_answered"`
	// ForwardProblems say why forwards of ports published on the
	// host's loopback address are not bound (another program holds them).
	ForwardProblems []string `json:"forward_problems,omitempty"`
	// Instance and StateDir are the id and host path of the state
	// directory the plugin runs on ("" from versions that do not say).
	Instance string `json:"instance,omitempty"`
	StateDir string `json:"state_dir,omitempty"`
	Err      string `json:"error,omitempty"` // why no plugin answered
}

// FindSockets returns the v6bridge sockets under dir (PluginsDir when
// empty): the host service's first, then managed plugins' in name order.
// Only sockets are returned; whether one answers is AskStatus's question.
func FindSockets(dir string) []string {
	if dir == "" {
		dir = PluginsDir
	}
	var out []string
	isSock := func(p string) bool {
		fi, err := os.Stat(p)
		return err == nil && fi.Mode()&os.ModeSocket != 0
	}
	if p := filepath.Join(dir, SocketName); isSock(p) {
		out = append(out, p)
	}
	managed, _ := filepath.Glob(filepath.Join(dir, "*", SocketName))
	sort.Strings(managed)
	for _, p := range managed {
		if isSock(p) {
			out = append(out, p)
		}
	}
	return out
}

// AskStatus asks the plugin at socket for its status document (POST
// /v6bridge.Status) and returns it as sent.
func AskStatus(ctx context.Context, socket string) ([]byte, error) {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://v6bridge/v6bridge.Status", strings.NewReader("{}"))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("ask the plugin at %s: %w", socket, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("ask the plugin at %s: %w", socket, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the plugin at %s answered %s: %s", socket, resp.Status, b)
	}
	return b, nil
}

// FindPlugin asks the plugin at socket, or when socket is "" each socket
// FindSockets finds under dir, and returns the first that answers with its
// status document.
func FindPlugin(ctx context.Context, socket, dir string) (string, []byte, error) {
	cands := []string{socket}
	if socket == "" {
		if cands = FindSockets(dir); len(cands) == 0 {
			if dir == "" {
				dir = PluginsDir
			}
			return "", nil, fmt.Errorf("no %s under %s or %s/<plugin id>/: is v6bridge enabled (docker plugin ls) or its service running? Else give --socket (SOCKET)", SocketName, dir, dir)
		}
	}
	var errs []error
	for _, s := range cands {
		b, err := AskStatus(ctx, s)
		if err == nil {
			return s, b, nil
		}
		errs = append(errs, err)
	}
	return "", nil, errors.Join(errs...)
}

// AskPlugin finds the plugin as FindPlugin does and summarises its status;
// a failure is recorded in Plugin.Err, never returned.
func AskPlugin(ctx context.Context, socket, dir string) Plugin {
	s, b, err := FindPlugin(ctx, socket, dir)
	if err != nil {
		return Plugin{Socket: socket, Err: err.Error()}
	}
	var doc struct {
		Networks []json.RawMessage
		Instance struct{ ID, StateDir string }
		NDP      struct {
			Solicitations, Answered uint64
			Addrs                   []json.RawMessage
		}
		Forwards []struct{ Problem string }
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return Plugin{Socket: s, Err: fmt.Sprintf("decode the status of %s: %v", s, err)}
	}
	p := Plugin{Socket: s, Networks: len(doc.Networks), NDPAddrs: len(doc.NDP.Addrs), NDPSolicitations: doc.NDP.Solicitations, NDPAnswered: doc.NDP.Answered,
		Instance: doc.Instance.ID, StateDir: doc.Instance.StateDir}
	for _, f := range doc.Forwards {
		if f.Problem != "" {
			p.ForwardProblems = append(p.ForwardProblems, f.Problem)
		}
	}
	return p
}
