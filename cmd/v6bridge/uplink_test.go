package main

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/v6bridge/v6bridge/link"
)

// TestStatusShowsUplink: the uplink's state and each part's
// re-attachments, as the plugin serves them (JSON) and the CLI prints them.
func TestStatusShowsUplink(t *testing.T) {
	served := statusDoc{Uplinks: []string{"eth0"}, Uplink: []link.UplinkStatus{{
		UplinkState: link.UplinkState{Name: "eth0", Index: 9, Up: true,
			Addrs:   []netip.Prefix{netip.MustParsePrefix("2001:db8:1234:a1::1/64"), netip.MustParsePrefix("2001:db8:1234:a1::2/64")},
			Gateway: netip.MustParseAddr("2001:db8:1234:a1::fffe")},
		Changes: 3, LastChange: time.Date(2026, 12, 7, 13, 0, 0, 0, time.UTC),
		Reattachment: []link.Reattachment{
			{Part: "ndp", Count: 1, Last: time.Date(2026, 12, 7, 13, 0, 0, 0, time.UTC)},
			{Part: "firewall", Count: 1, Last: time.Date(2026, 12, 7, 13, 0, 0, 0, time.UTC), Error: "apply firewall: busy"},
		},
	}}}
	raw, err := json.Marshal(served)
	if err != nil {
		t.Fatal(err)
	}
	var doc statusDoc
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("the CLI cannot read the served status: %v\n%s", err, raw)
	}
	var b bytes.Buffer
	if err := printStatus(&b, doc); err != nil {
		t.Fatal(err)
	}
	want := "eth0: index 9, up, addresses [2001:db8:1234:a1::1/64 2001:db8:1234:a1::2/64], default via 2001:db8:1234:a1::fffe; " +
		"ndp re-attached 1 times (last 2026-12-07T13:00:00Z); firewall re-attached 1 times (last 2026-12-07T13:00:00Z) FAILED: apply firewall: busy"
	if !strings.Contains(b.String(), want) {
		t.Errorf("status lacks\n%s\n%s", want, b.String())
	}
}
