package main

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/v6bridge/v6bridge/driver"
	"github.com/v6bridge/v6bridge/ipam"
	"github.com/v6bridge/v6bridge/netspec"
)

// nopLinks is a kernel where everything exists and every change works.
type nopLinks struct{}

func (nopLinks) EnsureBridge(netspec.BridgeSpec) error              { return nil }
func (nopLinks) DeleteBridge(string) error                          { return nil }
func (nopLinks) EnsureVeth(netspec.VethSpec) error                  { return nil }
func (nopLinks) DeleteVeth(string) error                            { return nil }
func (nopLinks) LinkExists(string) (bool, error)                    { return false, nil }
func (nopLinks) OwnedLinks() ([]netspec.OwnedLink, error)           { return nil, nil }
func (nopLinks) PrepareHost([]string) (changed []string, err error) { return nil, nil }

type memDriverStore struct{}

func (memDriverStore) PutNetwork(*driver.Network) error   { return nil }
func (memDriverStore) DeleteNetwork(string) error         { return nil }
func (memDriverStore) PutEndpoint(*driver.Endpoint) error { return nil }
func (memDriverStore) DeleteEndpoint(string) error        { return nil }
func (memDriverStore) PutSandbox(*driver.Sandbox) error   { return nil }
func (memDriverStore) DeleteSandbox(string) error         { return nil }
func (memDriverStore) Load() ([]*driver.Network, []*driver.Endpoint, error) {
	return nil, nil, nil
}
func (memDriverStore) LoadSandboxes() ([]*driver.Sandbox, error) { return nil, nil }

// wipedEngine is a plugin that kept a network of subnet from an engine
// whose data was wiped: the engine knows no network, the plugin still
// holds the network and its pool.
func wipedEngine(t *testing.T, subnet string) (*driver.Driver, *ipam.IPAM, string) {
	t.Helper()
	var d *driver.Driver
	im, err := ipam.New(ipam.Config{StateDir: t.TempDir(), Referenced: func(p netip.Prefix) bool { return d.UsesSubnet(p) }})
	if err != nil {
		t.Fatal(err)
	}
	d, err = driver.New(driver.Config{Links: nopLinks{}, Store: memDriverStore{}})
	if err != nil {
		t.Fatal(err)
	}
	p, err := im.RequestPool(ipam.PoolRequest{Pool: subnet, V6: true})
	if err != nil {
		t.Fatal(err)
	}
	gw, err := im.RequestAddress(p.ID, "", ipam.AddressOptions{Gateway: true})
	if err != nil {
		t.Fatal(err)
	}
	// An engine before 28 also takes an IPv4 pool: v6bridge's placeholder.
	v4, err := im.RequestPool(ipam.PoolRequest{})
	if err != nil {
		t.Fatal(err)
	}
	const id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	if err := d.CreateNetwork(driver.CreateNetworkRequest{NetworkID: id, EnableIPv6: true,
		IPv4: []driver.PoolData{{Pool: v4.Prefix}}, IPv6: []driver.PoolData{{Pool: p.Prefix, Gateway: gw}}}); err != nil {
		t.Fatal(err)
	}
	if r, _ := im.GC(0, false); len(r.Pools) != 0 {
		t.Fatalf("pools of a network the plugin holds are stale: %+v", r.Pools)
	}
	return d, im, id
}

// A user who installed only the managed plugin runs gc --apply as the
// refusal says, with no flags: gc finds the managed plugin's socket
// (PluginsDir/<plugin id>/v6bridge.sock) as status does, and the subnet
// is accepted again.
func TestGCFindsTheManagedPlugin(t *testing.T) {
	const subnet = "fd00:43::/112"
	d, im, _ := wipedEngine(t, subnet)
	_, err := im.RequestPool(ipam.PoolRequest{Pool: subnet, V6: true})
	if err == nil || !strings.Contains(err.Error(), "v6bridge gc --apply") {
		t.Fatalf("the same subnet: %v, want the refusal naming gc --apply", err)
	}
	dir, err := os.MkdirTemp("", "v6b") // short: a socket path has at most 107 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "5f3c0ffee", "v6bridge.sock")
	if err := os.Mkdir(filepath.Dir(sock), 0o700); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	mux := http.NewServeMux()
	mux.HandleFunc("/v6bridge.GC", serveGC(d, im, log))
	mux.HandleFunc("/v6bridge.Status", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte(`{"Networks":[]}`)) })
	plugin := httptest.NewUnstartedServer(mux)
	plugin.Listener = l
	plugin.Start()
	t.Cleanup(plugin.Close)
	engine := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/networks" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(`[{"Id":"the-engines-bridge-network"}]`))
	}))
	t.Cleanup(engine.Close)
	defer func(old string) { pluginsDir = old }(pluginsDir)
	pluginsDir = dir
	t.Setenv("SOCKET", "")
	t.Setenv("DOCKER_HOST", "tcp://"+engine.Listener.Addr().String())

	if err := gcCmd([]string{"--apply", "--grace", "0s"}); err != nil {
		t.Fatalf("gc --apply: %v", err)
	}
	if _, err := im.RequestPool(ipam.PoolRequest{Pool: subnet, V6: true}); err != nil {
		t.Errorf("the subnet is still refused after gc --apply: %v", err)
	}
}

// The engine's data was wiped: its network is gone, the plugin still has
// it and its pool, and the same --subnet is refused. gc lists both, and
// --apply frees the subnet.
func TestGCFreesTheSubnetOfAWipedEngine(t *testing.T) {
	const subnet = "fd00:42::/112"
	d, im, id := wipedEngine(t, subnet)
	if _, err := im.RequestPool(ipam.PoolRequest{Pool: subnet, V6: true}); err == nil {
		t.Fatal("the same subnet was accepted while the plugin's network holds it")
	}
	r, err := runGC(d, im, gcRequest{EngineKnown: true, Engine: []string{"someotherid"}, Grace: "0s"})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Networks) != 1 || r.Networks[0].ID != id || r.Applied {
		t.Fatalf("dry run = %+v, want network %s", r, id)
	}
	var out bytes.Buffer
	printGC(&out, r)
	if !strings.Contains(out.String(), "would remove  network 0123456789ab") || !strings.Contains(out.String(), "gc --apply") {
		t.Errorf("dry run text:\n%s", out.String())
	}
	if f := stateFindings(r); f[len(f)-1].Status != "warn" || !strings.Contains(f[len(f)-1].Summary, subnet) {
		t.Errorf("doctor finding = %+v", f)
	}
	r, err = runGC(d, im, gcRequest{EngineKnown: true, Apply: true, Grace: "0s"})
	if err != nil || len(r.Errors) > 0 {
		t.Fatalf("apply: %v %v", err, r.Errors)
	}
	if len(r.Pools) != 2 || r.Pools[0].Prefix.String() != subnet || !r.Pools[1].Prefix.Addr().Is4() {
		t.Errorf("apply reclaimed pools %+v, want %s and its IPv4 placeholder", r.Pools, subnet)
	}
	if ps := im.Pools(); len(ps) != 0 {
		t.Errorf("pools left after gc --apply: %+v", ps)
	}
	if _, err := im.RequestPool(ipam.PoolRequest{Pool: subnet, V6: true}); err != nil {
		t.Errorf("the subnet is still refused after gc --apply: %v", err)
	}
	if _, err := runGC(d, im, gcRequest{Grace: "soon"}); err == nil {
		t.Error("a bad grace was accepted")
	}
}
