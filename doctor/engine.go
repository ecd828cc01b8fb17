package doctor

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"
)

// DefaultDockerHost is where the engine listens when DOCKER_HOST is unset.
const DefaultDockerHost = "unix:///var/run/docker.sock"

// AskEngine asks the engine at host (DOCKER_HOST form: unix:///path or
// tcp://host:port; "" is DefaultDockerHost) for GET /version. A failure is
// recorded in Engine.Err, never returned: a missing engine is a finding.
func AskEngine(ctx context.Context, host string) Engine {
	if host == "" {
		host = DefaultDockerHost
	}
	e := Engine{Host: host}
	tr, base, err := engineTransport(host)
	if err != nil {
		e.Err = err.Error()
		return e
	}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/version", nil)
	if err != nil {
		e.Err = err.Error()
		return e
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		e.Err = err.Error()
		return e
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		e.Err = "GET /version: " + resp.Status
		return e
	}
	var v struct{ Version, APIVersion string }
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		e.Err = fmt.Sprintf("GET /version: decode: %v", err)
		return e
	}
	e.Version, e.APIVersion = v.Version, v.APIVersion
	return e
}

// engineTransport returns a transport and base URL for a DOCKER_HOST.
func engineTransport(host string) (*http.Transport, string, error) {
	tr := &http.Transport{}
	switch {
	case strings.HasPrefix(host, "unix://"):
		path := strings.TrimPrefix(host, "unix://")
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}
		return tr, "http://docker", nil
	case strings.HasPrefix(host, "tcp://"):
		return tr, "http://" + strings.TrimPrefix(host, "tcp://"), nil
	}
	return nil, "", fmt.Errorf("DOCKER_HOST=%q: accepted are unix:///path and tcp://host:port", host)
}

// EngineNetworks returns the ids of every network the engine at host
// (DOCKER_HOST form; "" is DefaultDockerHost) knows: GET /networks.
func EngineNetworks(ctx context.Context, host string) (map[string]bool, error) {
	if host == "" {
		host = DefaultDockerHost
	}
	tr, base, err := engineTransport(host)
	if err != nil {
		return nil, err
	}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/networks", nil)
	if err != nil {
		return nil, err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("ask the engine at %s for its networks: %w", host, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("ask the engine at %s for its networks: GET /networks: %s", host, resp.Status)
	}
	var ns []struct {
		ID string `json:"Id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ns); err != nil {
		return nil, fmt.Errorf("GET /networks: decode: %w", err)
	}
	out := map[string]bool{}
	for _, n := range ns {
		out[n.ID] = true
	}
	return out, nil
}
