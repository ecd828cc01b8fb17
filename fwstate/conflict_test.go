package fwstate

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/v6bridge/v6bridge/netspec"
)

// TestConflict: two containers ask for host ports; the rule says whether
// the second may have them and, if not, names the first port both claim.
func TestConflict(t *testing.T) {
	web, db := netip.MustParseAddr("fd00::2"), netip.MustParseAddr("fd00::3")
	h1, h2 := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
	m := func(proto uint8, host netip.Addr, first, last uint16) Mapping {
		return Mapping{Proto: proto, HostAddr: host, HostFirst: first, HostLast: last, ContainerFirst: first}
	}
	tcp, udp := uint8(netspec.ProtoTCP), uint8(netspec.ProtoUDP)
	for _, tt := range []struct {
		name string
		a, b Mapping
		port uint16 // 0: no conflict
		on   netip.Addr
	}{
		{"same port, every address", m(tcp, netip.Addr{}, 80, 80), m(tcp, netip.Addr{}, 80, 80), 80, netip.Addr{}},
		{"same port, same address", m(tcp, h1, 80, 80), m(tcp, h1, 80, 80), 80, h1},
		{"same port, other address", m(tcp, h1, 80, 80), m(tcp, h2, 80, 80), 0, netip.Addr{}},
		{"every address takes a specific one", m(tcp, netip.Addr{}, 80, 80), m(tcp, h2, 80, 80), 80, h2},
		{"specific address then every address", m(tcp, h1, 80, 80), m(tcp, netip.Addr{}, 80, 80), 80, h1},
		{"other protocol", m(tcp, netip.Addr{}, 53, 53), m(udp, netip.Addr{}, 53, 53), 0, netip.Addr{}},
		{"ranges overlap", m(tcp, netip.Addr{}, 8000, 8010), m(tcp, netip.Addr{}, 8005, 8020), 8005, netip.Addr{}},
		{"ranges touch", m(tcp, netip.Addr{}, 8000, 8010), m(tcp, netip.Addr{}, 8010, 8010), 8010, netip.Addr{}},
		{"ranges apart", m(tcp, netip.Addr{}, 8000, 8010), m(tcp, netip.Addr{}, 8011, 8020), 0, netip.Addr{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := Conflict(web, tt.a, db, tt.b)
			if tt.port == 0 {
				if err != nil {
					t.Fatalf("Conflict: %v, want none", err)
				}
				return
			}
			var ce *ConflictError
			if !errors.As(err, &ce) || !errors.Is(err, ErrPortConflict) {
				t.Fatalf("Conflict: %v, want a *ConflictError wrapping ErrPortConflict", err)
			}
			want := ConflictError{Proto: tt.a.Proto, HostPort: tt.port, HostAddr: tt.on, Owner: web, Other: db}
			if *ce != want {
				t.Fatalf("Conflict: %+v, want %+v", *ce, want)
			}
		})
	}
}
