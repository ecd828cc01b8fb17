package doctor

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/v6bridge/v6bridge/internal/instance"
	"github.com/v6bridge/v6bridge/netspec"
)

// StateDir is what doctor knows about the plugin's state directory and
// the one that made the bridges: every bridge carries the id of the state
// directory (its instance) that made it, and where that directory was.
type StateDir struct {
	// Bridges are v6bridge's marked bridges; LinksErr says why they could
	// not be listed.
	Bridges  []netspec.OwnedLink `json:"bridges,omitempty"`
	LinksErr string              `json:"links_error,omitempty"`
	// ID and Dir are the instance id and the host path of the state
	// directory the plugin runs on, or would run on; From says how doctor
	// knows: "plugin" (it answered), "engine" (a managed plugin's
	// state.source, its instance.json read), "" (unknown: Err says why).
	ID   string `json:"id,omitempty"`
	Dir  string `json:"dir,omitempty"`
	From string `json:"from,omitempty"`
	Err  string `json:"error,omitempty"`
}

// ReadStateID returns the instance id of the state directory dir ("" and
// no error when it has none yet: a fresh directory).
func ReadStateID(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, instance.IdentityFile))
	if os.IsNotExist(err) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	var id instance.Identity
	if err := json.Unmarshal(b, &id); err != nil {
		return "", fmt.Errorf("%s: %w", filepath.Join(dir, instance.IdentityFile), err)
	}
	return id.ID, nil
}

// ManagedStateSource asks the engine at host for its managed v6bridge
// plugins (GET /plugins: those serving v6bridge.sock) and returns the
// name and state.source (the host directory of the mount named "state")
// of the first enabled one, else of the first.
func ManagedStateSource(ctx context.Context, host string) (name, source string, err error) {
	if host == "" {
		host = DefaultDockerHost
	}
	tr, base, err := engineTransport(host)
	if err != nil {
		return "", "", err
	}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/plugins", nil)
	if err != nil {
		return "", "", err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return "", "", fmt.Errorf("ask the engine at %s for its plugins: %w", host, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", "", fmt.Errorf("ask the engine at %s for its plugins: GET /plugins: %s", host, resp.Status)
	}
	var ps []struct {
		Name     string
		Enabled  bool
		Settings struct {
			Mounts []struct{ Name, Source string }
		}
		Config struct{ Interface struct{ Socket string } }
	}
	if err := json.NewDecoder(resp.Body).Decode(&ps); err != nil {
		return "", "", fmt.Errorf("GET /plugins: decode: %w", err)
	}
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].Enabled && !ps[j].Enabled })
	for _, p := range ps {
		if p.Config.Interface.Socket != SocketName {
			continue
		}
		for _, m := range p.Settings.Mounts {
			if m.Name == "state" {
				return p.Name, m.Source, nil
			}
		}
	}
	return "", "", fmt.Errorf("the engine at %s has no managed v6bridge plugin with a state mount", host)
}

// evaluateStateDir judges whether the plugin's state directory is the one
// that made the bridges. A plugin started on another one refuses to start
// (it would take live networks for orphans); a cause reported is an
// engine resetting state.source to /var/lib/v6bridge on `docker plugin
// upgrade`, or a state.source set by hand.
func (f Facts) evaluateStateDir(add func(check string, s Status, summary, meaning, fix string)) {
	s := f.StateDir
	const check = "state dir"
	switch {
	case s.LinksErr != "":
		add(check, Warn, "cannot list v6bridge's bridges: "+s.LinksErr, "", "")
		return
	case len(s.Bridges) == 0:
		add(check, OK, "no v6bridge bridges yet: nothing to compare the state directory with", "", "")
		return
	case s.From == "":
		add(check, Warn, "the plugin's state directory is unknown: "+orUnknown(s.Err),
			"doctor cannot tell whether the plugin's state directory is the one that made the bridges", "start the plugin, or run doctor where the engine answers (DOCKER_HOST)")
		return
	}
	var other []string
	var madeBy netspec.OwnedLink
	for _, b := range s.Bridges {
		if b.Instance != s.ID {
			other = append(other, b.Name)
			madeBy = b
		}
	}
	if len(other) == 0 {
		add(check, OK, fmt.Sprintf("%s (instance %s) made the %d bridges", s.Dir, s.ID, len(s.Bridges)), "", "")
		return
	}
	now := "instance " + s.ID
	if s.ID == "" {
		now = "a directory without state"
	}
	add(check, Fail,
		fmt.Sprintf("the plugin's state directory is %s (%s, from the %s), but %s were made from %s (instance %s)",
			s.Dir, now, s.From, strings.Join(other, ", "), orUnknown(madeBy.StateDir), madeBy.Instance),
		"the plugin refuses to start on another state directory than the one that made the bridges (it would take live networks for orphans); "+
			"an engine that resets a plugin's settings on `docker plugin upgrade` starts it on /var/lib/v6bridge",
		fmt.Sprintf("docker plugin disable v6bridge:latest; docker plugin set v6bridge:latest state.source=%s; docker plugin enable v6bridge:latest "+
			"(a host service: STATE_DIR=%s)", orUnknown(madeBy.StateDir), orUnknown(madeBy.StateDir)))
}
