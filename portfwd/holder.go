package portfwd

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/v6bridge/v6bridge/netspec"
)

// holder names the program holding a loopback port: "pid 812 (postgres)",
// or "another program" when it cannot be seen (another pid namespace,
// another user's process without CAP_SYS_PTRACE). It reads /proc.
func holder(proto uint8, listen netip.AddrPort) string {
	return holderIn("/proc", proto, listen)
}

const unknownHolder = "another program"

func holderIn(proc string, proto uint8, listen netip.AddrPort) string {
	table := "net/tcp6"
	if proto == netspec.ProtoUDP {
		table = "net/udp6"
	}
	fh, err := os.Open(filepath.Join(proc, table))
	if err != nil {
		return unknownHolder
	}
	defer fh.Close()
	inodes := socketInodes(fh, proto, listen)
	if len(inodes) == 0 {
		return unknownHolder
	}
	if pid, comm, ok := inodeOwner(proc, inodes); ok {
		return fmt.Sprintf("pid %d (%s)", pid, comm)
	}
	return unknownHolder
}

// socketInodes returns the inodes of the sockets in a /proc/net/tcp6 or
// udp6 table bound to listen's port on its address or on any address
// (::): listening ones for tcp.
func socketInodes(r io.Reader, proto uint8, listen netip.AddrPort) map[string]bool {
	out := map[string]bool{}
	sc := bufio.NewScanner(r)
	sc.Scan() // header
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 10 {
			continue
		}
		local, err := parseProcAddr(f[1])
		if err != nil || local.Port() != listen.Port() {
			continue
		}
		if a := local.Addr(); a != listen.Addr() && !a.IsUnspecified() {
			continue
		}
		const tcpListen = "0A"
		if proto == netspec.ProtoTCP && f[3] != tcpListen {
			continue
		}
		if f[9] != "0" {
			out[f[9]] = true
		}
	}
	return out
}

// parseProcAddr parses an address of /proc/net/tcp6: the four 32-bit
// words of the address in host byte order, in hex, ":" and the port in
// hex.
func parseProcAddr(s string) (netip.AddrPort, error) {
	a, p, ok := strings.Cut(s, ":")
	if !ok || len(a) != 32 {
		return netip.AddrPort{}, fmt.Errorf("address %q: accepted are 32 hex digits, a colon and 4", s)
	}
	var b [16]byte
	for i := 0; i < 4; i++ {
		w, err := strconv.ParseUint(a[8*i:8*i+8], 16, 32)
		if err != nil {
			return netip.AddrPort{}, fmt.Errorf("address %q: %w", s, err)
		}
		binary.NativeEndian.PutUint32(b[4*i:], uint32(w))
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("port of %q: %w", s, err)
	}
	return netip.AddrPortFrom(netip.AddrFrom16(b), uint16(port)), nil
}

// inodeOwner finds a process with a descriptor of one of the socket
// inodes, and its command name.
func inodeOwner(proc string, inodes map[string]bool) (int, string, bool) {
	ents, err := os.ReadDir(proc)
	if err != nil {
		return 0, "", false
	}
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		dir := filepath.Join(proc, ent.Name(), "fd")
		fds, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			target, err := os.Readlink(filepath.Join(dir, fd.Name()))
			if err != nil {
				continue
			}
			ino, ok := strings.CutPrefix(target, "socket:[")
			if !ok || !inodes[strings.TrimSuffix(ino, "]")] {
				continue
			}
			comm, _ := os.ReadFile(filepath.Join(proc, ent.Name(), "comm"))
			name := strings.TrimSpace(string(comm))
			if name == "" {
				name = "?"
			}
			return pid, name, true
		}
	}
	return 0, "", false
}
