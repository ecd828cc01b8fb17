// Package ndpflood sends Neighbor Solicitations fast, the way an attacker
// on the provider's link (or a router scanning the /64) does: from a
// packet socket, in batches of sendmmsg, each for a random target of a
// prefix, to the target's solicited-node group, in frames from the MAC
// it names (not the interface's): from one source, which may forge the
// router's address, or each from a random address and MAC. ndp's flood soak test and
// the NDP bench (bench/ndpflood) use it; it sends only on the interface it
// is given, in the namespace the caller opened it in.
package ndpflood

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Config is what to send.
type Config struct {
	// Ifindex is the sending interface; MAC the frames' source and the
	// Source Link-Layer Address option.
	Ifindex int
	MAC     net.HardwareAddr
	// Source is the solicitations' IPv6 source; with Sources, any of
	// them at random too.
	Source  netip.Addr
	Sources []netip.Addr
	// RandomSources sends each solicitation from a random address of
	// Scan and a random unicast MAC instead (Source and MAC unused but
	// for the checks).
	RandomSources bool
	// Scan is where the random targets come from.
	Scan netip.Prefix
	// Rate is solicitations per second.
	Rate int
	// Live, when set, gets every LiveEvery-th solicitation (0: none).
	Live      []netip.Addr
	LiveEvery int
}

const (
	batch  = 64
	pktLen = 40 + 24 + 8
	ethLen = 14
)

type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
}

// Flooder is an open packet socket with its buffers.
type Flooder struct {
	fd   int
	eth  [batch][ethLen]byte
	pkts [batch][pktLen]byte
	iov  [batch][2]unix.Iovec
	name [batch]unix.RawSockaddrLinklayer
	msgs [batch]mmsghdr
}

// Open opens the socket in the calling thread's network namespace.
func Open() (*Flooder, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("ndpflood: packet socket: %w", err)
	}
	f := &Flooder{fd: fd}
	for i := range batch {
		f.iov[i][0] = unix.Iovec{Base: &f.eth[i][0]}
		f.iov[i][0].SetLen(ethLen)
		f.iov[i][1] = unix.Iovec{Base: &f.pkts[i][0]}
		f.iov[i][1].SetLen(pktLen)
		f.msgs[i].hdr.Name = (*byte)(unsafe.Pointer(&f.name[i]))
		f.msgs[i].hdr.Namelen = unix.SizeofSockaddrLinklayer
		f.msgs[i].hdr.Iov = &f.iov[i][0]
		f.msgs[i].hdr.SetIovlen(2)
	}
	return f, nil
}

// Close closes the socket.
func (f *Flooder) Close() error { return unix.Close(f.fd) }

// Run sends at cfg.Rate until ctx ends and returns how many were sent.
func (f *Flooder) Run(ctx context.Context, cfg Config) (uint64, error) {
	if cfg.Rate <= 0 || len(cfg.MAC) != 6 || !cfg.Scan.Addr().Is6() {
		return 0, fmt.Errorf("ndpflood: want a positive rate, a 6-byte MAC and an IPv6 prefix, got %d, %v, %s", cfg.Rate, cfg.MAC, cfg.Scan)
	}
	rnd := newRand()
	const tick = time.Millisecond
	perTick := float64(cfg.Rate) * tick.Seconds()
	start := time.Now()
	var sent uint64
	var owed float64
	for ctx.Err() == nil {
		owed = float64(time.Since(start))/float64(tick)*perTick - float64(sent)
		if owed < 1 {
			time.Sleep(tick)
			continue
		}
		n := min(batch, int(owed))
		for i := range n {
			target := randomIn(rnd, cfg.Scan)
			if cfg.LiveEvery > 0 && len(cfg.Live) > 0 && (sent+uint64(i))%uint64(cfg.LiveEvery) == 0 {
				target = cfg.Live[rnd.IntN(len(cfg.Live))]
			}
			g := snm(target)
			src, mac := cfg.Source, cfg.MAC
			if n := len(cfg.Sources); n > 0 {
				if k := rnd.IntN(n + 1); k > 0 { // not in turn: LiveEvery counts in turn
					src = cfg.Sources[k-1]
				}
			}
			if cfg.RandomSources {
				src, mac = randomIn(rnd, cfg.Scan), randomMAC(rnd)
			}
			Build(&f.pkts[i], src, g, target, mac)
			f.name[i] = unix.RawSockaddrLinklayer{Family: unix.AF_PACKET, Protocol: 0xdd86, Ifindex: int32(cfg.Ifindex), Halen: 6}
			b := g.As16()
			dst := []byte{0x33, 0x33, b[12], b[13], b[14], b[15]}
			copy(f.name[i].Addr[:], dst)
			copy(f.eth[i][0:6], dst)
			copy(f.eth[i][6:12], mac)
			f.eth[i][12], f.eth[i][13] = 0x86, 0xdd
		}
		r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(f.fd), uintptr(unsafe.Pointer(&f.msgs[0])), uintptr(n), 0, 0, 0)
		if e != 0 {
			if e == unix.ENOBUFS || e == unix.EAGAIN {
				continue
			}
			return sent, fmt.Errorf("ndpflood: sendmmsg: %w", e)
		}
		sent += uint64(r)
	}
	return sent, nil
}

func newRand() *rand.Rand { return rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1)) }

func randomIn(rnd *rand.Rand, p netip.Prefix) netip.Addr {
	b := p.Addr().As16()
	bits := p.Bits()
	for i := bits / 8; i < 16; i++ {
		v := byte(rnd.Uint32())
		if i == bits/8 && bits%8 != 0 {
			keep := byte(0xff) << (8 - bits%8)
			v = b[i]&keep | v&^keep
		}
		b[i] = v
	}
	return netip.AddrFrom16(b)
}

// randomMAC is a random locally administered unicast MAC.
func randomMAC(rnd *rand.Rand) net.HardwareAddr {
	v := rnd.Uint64()
	return net.HardwareAddr{byte(v)&^1 | 2, byte(v >> 8), byte(v >> 16), byte(v >> 24), byte(v >> 32), byte(v >> 40)}
}

func snm(a netip.Addr) netip.Addr {
	b := a.As16()
	return netip.AddrFrom16([16]byte{0xff, 0x02, 11: 0x01, 12: 0xff, 13: b[13], 14: b[14], 15: b[15]})
}

// Build writes a solicitation from src to dst for target with mac as its
// Source Link-Layer Address option into out.
func Build(out *[pktLen]byte, src, dst, target netip.Addr, mac net.HardwareAddr) {
	*out = [pktLen]byte{}
	out[0] = 6 << 4
	binary.BigEndian.PutUint16(out[4:6], pktLen-40)
	out[6], out[7] = 58, 255
	s, d, t := src.As16(), dst.As16(), target.As16()
	copy(out[8:24], s[:])
	copy(out[24:40], d[:])
	m := out[40:]
	m[0] = 135
	copy(m[8:24], t[:])
	m[24], m[25] = 1, 1
	copy(m[26:32], mac)
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
	}
	add(s[:])
	add(d[:])
	sum += uint32(len(m)) + 58
	add(m)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(m[2:4], ^uint16(sum))
}
