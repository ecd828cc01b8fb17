package main

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

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
func (memDriverStore) Load() ([]*driver.Network, []*driver.Endpoint, error) {
	return nil, nil, nil
}

// The engine's data was wiped: its network is gone, the plugin still has
// it and its pool, and the same --subnet is refused. gc lists both, and
// --apply frees the subnet.
func TestGCFreesTheSubnetOfAWipedEngine(t *testing.T) {
	var d *driver.Driver
	im, err := ipam.New(ipam.Config{StateDir: t.TempDir(), Referenced: func(p netip.Prefix) bool { return d.UsesSubnet(p) }})
	if err != nil {
		t.Fatal(err)
	}
	d, err = driver.New(driver.Config{Links: nopLinks{}, Store: memDriverStore{}})
	if err != nil {
		t.Fatal(err)
	}
	const subnet = "fd00:42::/112"
	p, err := im.RequestPool(ipam.PoolRequest{Pool: subnet, V6: true})
	if err != nil {
		t.Fatal(err)
	}
	gw, err := im.RequestAddress(p.ID, "", ipam.AddressOptions{Gateway: true})
	if err != nil {
		t.Fatal(err)
	}
	const id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	if err := d.CreateNetwork(driver.CreateNetworkRequest{NetworkID: id, EnableIPv6: true,
		IPv6: []driver.PoolData{{Pool: p.Prefix, Gateway: gw}}}); err != nil {
		t.Fatal(err)
	}
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
	if len(r.Pools) != 1 || r.Pools[0].Prefix.String() != subnet {
		t.Errorf("apply reclaimed pools %+v, want %s", r.Pools, subnet)
	}
	if _, err := im.RequestPool(ipam.PoolRequest{Pool: subnet, V6: true}); err != nil {
		t.Errorf("the subnet is still refused after gc --apply: %v", err)
	}
	if _, err := runGC(d, im, gcRequest{Grace: "soon"}); err == nil {
		t.Error("a bad grace was accepted")
	}
}
