package ndpproto

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	mndp "github.com/mdlayher/ndp"

	"github.com/v6bridge/v6bridge/ndp/internal/ndptest"
)

func TestParsePacket(t *testing.T) {
	ns := ndptest.ICMPNS(t, ndptest.RouterAddr, ndptest.SNM(ndptest.LiveAddr), ndptest.LiveAddr, ndptest.SLLAOpt(ndptest.RouterMAC))
	// A hop-by-hop header (8 bytes: next header ICMPv6, length 0, PadN).
	hbh := []byte{58, 0, 1, 4, 0, 0, 0, 0}
	nonce := mndp.NewNonce()
	dad := ndptest.ICMPNS(t, netip.IPv6Unspecified(), ndptest.SNM(ndptest.LiveAddr), ndptest.LiveAddr, nonce)
	unknownOpt := ndptest.ICMPNS(t, ndptest.RouterAddr, ndptest.LiveAddr, ndptest.LiveAddr, ndptest.SLLAOpt(ndptest.RouterMAC), &mndp.RawOption{Type: 200, Length: 1, Value: make([]byte, 6)})

	corrupt := append([]byte(nil), ns...)
	corrupt[10] ^= 0xff

	tests := []struct {
		name    string
		pkt     []byte
		want    Solicitation
		wantErr bool
		other   bool // ErrNotSolicitation rather than ErrMalformed
	}{
		{
			name: "multicast",
			pkt:  ndptest.IPv6Packet(ndptest.RouterAddr, ndptest.SNM(ndptest.LiveAddr), 255, 0, nil, ns),
			want: Solicitation{Source: ndptest.RouterAddr, Destination: ndptest.SNM(ndptest.LiveAddr), HopLimit: 255, Target: ndptest.LiveAddr, SourceLinkAddr: ndptest.RouterMAC, LinkSource: ndptest.RouterMAC},
		},
		{
			name: "behind hop-by-hop",
			pkt:  ndptest.IPv6Packet(ndptest.RouterAddr, ndptest.SNM(ndptest.LiveAddr), 255, 0, hbh, ns),
			want: Solicitation{Source: ndptest.RouterAddr, Destination: ndptest.SNM(ndptest.LiveAddr), HopLimit: 255, Target: ndptest.LiveAddr, SourceLinkAddr: ndptest.RouterMAC, LinkSource: ndptest.RouterMAC},
		},
		{
			name: "hop limit kept for Decide",
			pkt:  ndptest.IPv6Packet(ndptest.RouterAddr, ndptest.SNM(ndptest.LiveAddr), 254, 0, nil, ns),
			want: Solicitation{Source: ndptest.RouterAddr, Destination: ndptest.SNM(ndptest.LiveAddr), HopLimit: 254, Target: ndptest.LiveAddr, SourceLinkAddr: ndptest.RouterMAC, LinkSource: ndptest.RouterMAC},
		},
		{
			name: "dad with nonce",
			pkt:  ndptest.IPv6Packet(netip.IPv6Unspecified(), ndptest.SNM(ndptest.LiveAddr), 255, 0, nil, dad),
			want: Solicitation{Source: netip.IPv6Unspecified(), Destination: ndptest.SNM(ndptest.LiveAddr), HopLimit: 255, Target: ndptest.LiveAddr, LinkSource: ndptest.RouterMAC, Nonce: nonce},
		},
		{
			name: "unknown option skipped",
			pkt:  ndptest.IPv6Packet(ndptest.RouterAddr, ndptest.LiveAddr, 255, 0, nil, unknownOpt),
			want: Solicitation{Source: ndptest.RouterAddr, Destination: ndptest.LiveAddr, HopLimit: 255, Target: ndptest.LiveAddr, SourceLinkAddr: ndptest.RouterMAC, LinkSource: ndptest.RouterMAC},
		},
		{name: "bad checksum", pkt: ndptest.IPv6Packet(ndptest.RouterAddr, ndptest.SNM(ndptest.LiveAddr), 255, 0, nil, corrupt), wantErr: true},
		{name: "checksum for other addresses", pkt: ndptest.IPv6Packet(hostGlobal, ndptest.SNM(ndptest.LiveAddr), 255, 0, nil, ns), wantErr: true},
		{name: "short", pkt: ndptest.IPv6Packet(ndptest.RouterAddr, ndptest.SNM(ndptest.LiveAddr), 255, 0, nil, ns)[:50], wantErr: true},
		{name: "empty", pkt: nil, wantErr: true},
		{name: "ipv4", pkt: append([]byte{0x45}, make([]byte, 60)...), wantErr: true},
		{name: "udp", pkt: ndptest.IPv6Packet(ndptest.RouterAddr, ndptest.SNM(ndptest.LiveAddr), 255, 17, []byte{}, ns), wantErr: true, other: true},
		{
			name:    "mld report behind hop-by-hop",
			pkt:     ndptest.IPv6Packet(ndptest.RouterAddr, netip.MustParseAddr("ff02::16"), 1, 0, hbh, []byte{143, 0, 0, 0, 0, 0, 0, 0}),
			wantErr: true, other: true,
		},
		{name: "truncated ext header", pkt: ndptest.IPv6Packet(ndptest.RouterAddr, ndptest.SNM(ndptest.LiveAddr), 255, 0, []byte{58, 9, 0, 0, 0, 0, 0, 0}, ns), wantErr: true},
		{
			name:    "duplicate source option",
			pkt:     ndptest.IPv6Packet(ndptest.RouterAddr, ndptest.SNM(ndptest.LiveAddr), 255, 0, nil, ndptest.ICMPNS(t, ndptest.RouterAddr, ndptest.SNM(ndptest.LiveAddr), ndptest.LiveAddr, ndptest.SLLAOpt(ndptest.RouterMAC), ndptest.SLLAOpt(ndptest.RouterMAC))),
			wantErr: true,
		},
		{
			name:    "dad with source option",
			pkt:     ndptest.IPv6Packet(netip.IPv6Unspecified(), ndptest.SNM(ndptest.LiveAddr), 255, 0, nil, ndptest.ICMPNS(t, netip.IPv6Unspecified(), ndptest.SNM(ndptest.LiveAddr), ndptest.LiveAddr, ndptest.SLLAOpt(ndptest.RouterMAC))),
			wantErr: true,
		},
		{
			name: "zero-length option",
			pkt: func() []byte {
				b := append(ndptest.ICMPNS(t, ndptest.RouterAddr, ndptest.SNM(ndptest.LiveAddr), ndptest.LiveAddr), 1, 0, 0, 0, 0, 0, 0, 0)
				binary.BigEndian.PutUint16(b[2:4], 0)
				binary.BigEndian.PutUint16(b[2:4], Checksum(ndptest.RouterAddr, ndptest.SNM(ndptest.LiveAddr), b))
				return ndptest.IPv6Packet(ndptest.RouterAddr, ndptest.SNM(ndptest.LiveAddr), 255, 0, nil, b)
			}(),
			wantErr: true,
		},
		{
			name: "advertisement, not solicitation",
			pkt: func() []byte {
				b, _ := mndp.MarshalMessageChecksum(&mndp.NeighborAdvertisement{TargetAddress: ndptest.LiveAddr}, ndptest.RouterAddr, ndptest.SNM(ndptest.LiveAddr))
				return ndptest.IPv6Packet(ndptest.RouterAddr, ndptest.SNM(ndptest.LiveAddr), 255, 0, nil, b)
			}(),
			wantErr: true, other: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePacket(tt.pkt, ndptest.RouterMAC)
			if tt.other {
				if !errors.Is(err, ErrNotSolicitation) || errors.Is(err, ErrMalformed) {
					t.Fatalf("ParsePacket = %+v, %v; want ErrNotSolicitation", got, err)
				}
				return
			}
			if tt.wantErr {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("ParsePacket = %+v, %v; want ErrMalformed", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmpAddr, cmp.Comparer(nonceEqual)); diff != "" {
				t.Errorf("ParsePacket (-want +got):\n%s", diff)
			}
		})
	}
}

func nonceEqual(a, b *mndp.Nonce) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(b)
}

func TestParseICMPCode(t *testing.T) {
	b := ndptest.ICMPNS(t, ndptest.RouterAddr, ndptest.LiveAddr, ndptest.LiveAddr)
	b[1] = 1
	if _, err := ParseICMP(ndptest.RouterAddr, ndptest.LiveAddr, 255, b, nil); !errors.Is(err, ErrMalformed) {
		t.Errorf("code 1: %v, want ErrMalformed", err)
	}
}

// FuzzParse feeds raw ICMPv6 bytes through ParseICMP and Decide, and whole
// packets through ParsePacket: nothing may panic, and every answer must be
// a well-formed advertisement for an owned unicast target.
func FuzzParse(f *testing.F) {
	f.Add(ndptest.ICMPNS(f, ndptest.RouterAddr, ndptest.SNM(ndptest.LiveAddr), ndptest.LiveAddr, ndptest.SLLAOpt(ndptest.RouterMAC)), uint8(255), false, true)
	f.Add(ndptest.ICMPNS(f, netip.IPv6Unspecified(), ndptest.SNM(ndptest.LiveAddr), ndptest.LiveAddr, mndp.NewNonce()), uint8(255), true, true)
	f.Add(ndptest.ICMPNS(f, ndptest.RouterAddr, ndptest.LiveAddr, ndptest.LiveAddr), uint8(255), false, false)
	f.Add(ndptest.ICMPNS(f, ndptest.RouterAddr, ndptest.LiveAddr, ndptest.LiveAddr, ndptest.SLLAOpt(uplinkMAC)), uint8(64), false, false)
	f.Add([]byte{135, 0, 0, 0}, uint8(255), false, false)
	f.Add(append(ndptest.ICMPNS(f, ndptest.RouterAddr, ndptest.LiveAddr, ndptest.LiveAddr), 1, 0), uint8(255), false, true)

	cfg := DecideConfig{LinkAddr: uplinkMAC, LinkLocal: ndptest.HostLL, Global: hostGlobal}
	f.Fuzz(func(t *testing.T, b []byte, hop uint8, dad, multicast bool) {
		src := ndptest.RouterAddr
		if dad {
			src = netip.IPv6Unspecified()
		}
		dst := ndptest.LiveAddr
		if multicast {
			dst = ndptest.SNM(ndptest.LiveAddr)
		}
		owned := func(netip.Addr) bool { return true }
		check := func(ns Solicitation) {
			a, ok, reason := Decide(ns, cfg, owned)
			if !ok {
				if reason == "" {
					t.Fatal("no answer and no reason")
				}
				return
			}
			if ns.HopLimit != 255 || !a.Advertisement.TargetAddress.Is6() || a.Advertisement.TargetAddress.IsMulticast() {
				t.Fatalf("answered %+v", ns)
			}
			if a.Advertisement.Solicited == ns.Source.IsUnspecified() {
				t.Fatalf("solicited flag %v for source %s", a.Advertisement.Solicited, ns.Source)
			}
			p, err := a.Packet()
			if err != nil {
				t.Fatalf("Packet: %v", err)
			}
			if Checksum(a.Source, a.Destination, p[40:]) != 0 {
				t.Fatal("answer checksum does not verify")
			}
		}
		if ns, err := ParseICMP(src, dst, hop, b, ndptest.RouterMAC); err == nil {
			check(ns)
		} else if !errors.Is(err, ErrMalformed) {
			t.Fatalf("error %v does not wrap ErrMalformed", err)
		}
		// The same bytes as a packet, checksum fixed up so the parser's
		// deeper paths are reached too.
		if len(b) >= 4 {
			c := append([]byte(nil), b...)
			c[2], c[3] = 0, 0
			binary.BigEndian.PutUint16(c[2:4], Checksum(src, dst, c))
			if ns, err := ParsePacket(ndptest.IPv6Packet(src, dst, hop, 0, nil, c), ndptest.RouterMAC); err == nil {
				check(ns)
			} else if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrNotSolicitation) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
		}
		_, _ = ParsePacket(b, nil)
	})
}
