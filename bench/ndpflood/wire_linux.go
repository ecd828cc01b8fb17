package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/mdlayher/socket"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// wireTap reads NDP packets crossing an interface with the kernel's time
// stamps (SO_TIMESTAMPNS): the solicitations the host sends for targets
// in a /96 and every advertisement it receives. The time of a packet is
// when it passed the interface, so a solicitation-to-advertisement time
// is the responder's, not the measuring process's wake-ups, which on a
// busy machine are larger than the responder's answer.
type wireTap struct {
	c   *socket.Conn
	buf []byte
	oob []byte
}

// wirePacket is one solicitation or advertisement seen by a wireTap.
type wirePacket struct {
	At     time.Time
	Out    bool // sent by this host
	Type   byte // 135 solicitation, 136 advertisement
	Dst    netip.Addr
	Target netip.Addr
}

// newWireTap opens a tap on ifi for solicitations whose target is in
// targets (a /96) and all advertisements.
func newWireTap(ifi *net.Interface, targets netip.Prefix) (*wireTap, error) {
	if targets.Bits() != 96 || !targets.Addr().Is6() {
		return nil, fmt.Errorf("wire tap: targets %s: want an IPv6 /96", targets)
	}
	c, err := socket.Socket(unix.AF_PACKET, unix.SOCK_DGRAM, 0, "ndp-wire-tap", nil)
	if err != nil {
		return nil, fmt.Errorf("wire tap: %w", err)
	}
	p := targets.Masked().Addr().As16()
	word := func(i int) uint32 { return binary.BigEndian.Uint32(p[i : i+4]) }
	// Offsets from the IPv6 header (SOCK_DGRAM): next header 6, ICMPv6
	// type 40, target 48..63. Jumps land on accept (11) or drop (12).
	prog, err := bpf.Assemble([]bpf.Instruction{
		bpf.LoadAbsolute{Off: 6, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.IPPROTO_ICMPV6, SkipFalse: 10},
		bpf.LoadAbsolute{Off: 40, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 136, SkipTrue: 7},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 135, SkipFalse: 7},
		bpf.LoadAbsolute{Off: 48, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: word(0), SkipFalse: 5},
		bpf.LoadAbsolute{Off: 52, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: word(4), SkipFalse: 3},
		bpf.LoadAbsolute{Off: 56, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: word(8), SkipFalse: 1},
		bpf.RetConstant{Val: 1 << 16},
		bpf.RetConstant{Val: 0},
	})
	if err == nil {
		err = c.SetBPF(prog)
	}
	if err == nil {
		err = c.SetsockoptInt(unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	}
	if err == nil {
		err = c.SetsockoptInt(unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20)
	}
	if err == nil { // ETH_P_ALL: a protocol's packet sockets see no outgoing packets
		err = c.Bind(&unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index})
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("wire tap on %s: %w", ifi.Name, err)
	}
	return &wireTap{c: c, buf: make([]byte, 2048), oob: make([]byte, 128)}, nil
}

// next returns the next packet, or ctx's error once it is done.
func (w *wireTap) next(ctx context.Context) (wirePacket, error) {
	for {
		n, oobn, _, from, err := w.c.Recvmsg(ctx, w.buf, w.oob, 0)
		if err != nil {
			return wirePacket{}, err
		}
		sll, _ := from.(*unix.SockaddrLinklayer)
		at, ok := kernelTime(w.oob[:oobn])
		if sll == nil || !ok || n < 64 {
			continue
		}
		return wirePacket{
			At:     at,
			Out:    sll.Pkttype == unix.PACKET_OUTGOING,
			Type:   w.buf[40],
			Dst:    netip.AddrFrom16([16]byte(w.buf[24:40])),
			Target: netip.AddrFrom16([16]byte(w.buf[48:64])),
		}, nil
	}
}

// Close closes the tap.
func (w *wireTap) Close() error { return w.c.Close() }

// kernelTime returns the SCM_TIMESTAMPNS time stamp in oob.
func kernelTime(oob []byte) (time.Time, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return time.Time{}, false
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPNS && len(m.Data) >= 16 {
			sec := int64(binary.NativeEndian.Uint64(m.Data[0:8]))
			nsec := int64(binary.NativeEndian.Uint64(m.Data[8:16]))
			return time.Unix(sec, nsec), true
		}
	}
	return time.Time{}, false
}
