package doctor

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/net/dns/dnsmessage"
)

// DefaultResolvConf is where the host's resolver is configured.
const DefaultResolvConf = "/etc/resolv.conf"

// CheckProbe checks a --nat64-probe setting: an IPv4 address and port
// ("" is none).
func CheckProbe(probe string) error {
	if probe == "" {
		return nil
	}
	host, port, err := net.SplitHostPort(probe)
	a, aerr := netip.ParseAddr(host)
	if err != nil || aerr != nil || !a.Is4() || port == "" {
		return fmt.Errorf("--nat64-probe=%q: accepted is an IPv4 address and port reached through NAT64, such as 140.82.112.3:443, or empty for none", probe)
	}
	return nil
}

// AskDNS64 asks the first nameserver of resolvConf for ipv4only.arpa AAAA
// (RFC 7050), finds the NAT64 prefix in the answer, looks up the route to
// it and, when probe names an IPv4 host:port, connects to it through the
// prefix. It only reads and asks; failures are recorded, never returned.
func AskDNS64(ctx context.Context, resolvConf, probe string) DNS64 {
	var d DNS64
	ns, err := firstNameserver(resolvConf)
	if err != nil {
		d.Err = err.Error()
		return d
	}
	d.Resolver = ns
	addrs, found, err := queryAAAA(ctx, ns, "ipv4only.arpa.")
	switch {
	case err != nil:
		d.Err = err.Error()
		return d
	case !found:
		d.NoAAAA = true
		return d
	}
	seen := map[netip.Prefix]bool{}
	for _, a := range addrs {
		if !a.Is6() || a.Is4In6() {
			continue
		}
		d.Synthesized = append(d.Synthesized, a)
		if p, ok := NAT64Prefix(a); ok && !seen[p] {
			seen[p] = true
			d.Prefixes = append(d.Prefixes, p)
		}
	}
	if len(d.Prefixes) == 0 {
		return d
	}
	dst, _ := Embed(d.Prefixes[0], wellKnownIPv4[0])
	routes, err := netlink.RouteGet(dst.AsSlice())
	if err != nil || len(routes) == 0 {
		d.RouteErr = fmt.Sprintf("route to %s: %v", dst, err)
		return d
	}
	d.Via = fmt.Sprint(routes[0].LinkIndex)
	if l, err := netlink.LinkByIndex(routes[0].LinkIndex); err == nil {
		d.Via = l.Attrs().Name
	}
	if gw, ok := netip.AddrFromSlice(routes[0].Gw); ok {
		d.Via += " via " + gw.Unmap().String()
	}
	if probe == "" {
		return d
	}
	d.Probe = probe
	host, port, _ := net.SplitHostPort(probe)
	v4, err := netip.ParseAddr(host)
	if err != nil {
		d.ProbeErr = CheckProbe(probe).Error()
		return d
	}
	target, _ := Embed(d.Prefixes[0], v4)
	pctx, pcancel := context.WithTimeout(ctx, 3*time.Second)
	defer pcancel()
	var dl net.Dialer
	c, err := dl.DialContext(pctx, "tcp", net.JoinHostPort(target.String(), port))
	if err != nil {
		d.ProbeErr = err.Error()
		return d
	}
	c.Close()
	return d
}

// firstNameserver is the first nameserver line of a resolv.conf.
func firstNameserver(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("read the resolver: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "nameserver" {
			if _, err := netip.ParseAddr(strings.Split(fields[1], "%")[0]); err == nil {
				return fields[1], nil
			}
		}
	}
	return "", fmt.Errorf("%s names no nameserver", path)
}

// queryAAAA asks server (port 53) for the AAAA records of name over UDP,
// twice at most. The socket is opened in the calling goroutine, so in its
// thread's network namespace. found is false for NXDOMAIN or no records.
func queryAAAA(ctx context.Context, server, name string) (addrs []netip.Addr, found bool, err error) {
	n, err := dnsmessage.NewName(name)
	if err != nil {
		return nil, false, err
	}
	var idb [2]byte
	rand.Read(idb[:])
	id := uint16(idb[0])<<8 | uint16(idb[1])
	q := dnsmessage.Message{Header: dnsmessage.Header{ID: id, RecursionDesired: true},
		Questions: []dnsmessage.Question{{Name: n, Type: dnsmessage.TypeAAAA, Class: dnsmessage.ClassINET}}}
	query, err := q.Pack()
	if err != nil {
		return nil, false, err
	}
	var dl net.Dialer
	c, err := dl.DialContext(ctx, "udp", net.JoinHostPort(server, "53"))
	if err != nil {
		return nil, false, fmt.Errorf("ask %s: %w", server, err)
	}
	defer c.Close()
	buf := make([]byte, 4096)
	for attempt := 0; ; attempt++ {
		c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err = c.Write(query); err != nil {
			return nil, false, fmt.Errorf("ask %s: %w", server, err)
		}
		var m dnsmessage.Message
		for {
			var k int
			if k, err = c.Read(buf); err != nil {
				break
			}
			if m.Unpack(buf[:k]) == nil && m.Header.ID == id && m.Header.Response {
				break
			}
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && attempt == 0 && ctx.Err() == nil {
				continue
			}
			return nil, false, fmt.Errorf("ask %s: %w", server, err)
		}
		switch m.Header.RCode {
		case dnsmessage.RCodeSuccess:
		case dnsmessage.RCodeNameError:
			return nil, false, nil
		default:
			return nil, false, fmt.Errorf("%s answered %v", server, m.Header.RCode)
		}
		for _, a := range m.Answers {
			if r, ok := a.Body.(*dnsmessage.AAAAResource); ok {
				addrs = append(addrs, netip.AddrFrom16(r.AAAA))
			}
		}
		return addrs, len(addrs) > 0, nil
	}
}
