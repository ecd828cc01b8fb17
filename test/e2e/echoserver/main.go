// Command echoserver is the e2e suite's "internet" server and its test
// container service: it answers every HTTP request with the address the
// connection came from, so tests see what NAT did to the source, and
// /local with the address the connection arrived at, so tests see which of
// a container's addresses a DNAT led to. UDP datagrams get the sender's
// address back.
//
//	echoserver -listen [2001:db8:ffff::10]:8080
//	echoserver -listen '[::]:80,[::]:8000' -udp '[::]:10000,[::]:10010'
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

func main() {
	listen := flag.String("listen", "[::]:8080", "HTTP addresses, comma-separated")
	udp := flag.String("udp", "", "also answer UDP datagrams on these addresses (comma-separated) with the sender's address")
	probe := flag.String("probe-udp", "", "client: send one datagram to this address, print the answer, exit (non-zero after 3 s without one)")
	flag.Parse()
	if *probe != "" {
		os.Exit(probeUDP(*probe))
	}
	for _, a := range split(*udp) {
		pc, err := net.ListenPacket("udp", a)
		if err != nil {
			log.Fatal(err)
		}
		go serveUDP(pc)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, hostOf(r.RemoteAddr))
	})
	mux.HandleFunc("/local", func(w http.ResponseWriter, r *http.Request) {
		a, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
		if a == nil {
			http.Error(w, "no local address", http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, hostOf(a.String()))
	})
	addrs := split(*listen)
	errs := make(chan error, len(addrs))
	for _, a := range addrs {
		go func() { errs <- http.ListenAndServe(a, mux) }()
	}
	log.Fatal(<-errs)
}

func split(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func hostOf(hostport string) string {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return hostport
	}
	return host
}

func serveUDP(pc net.PacketConn) {
	buf := make([]byte, 1500)
	for {
		_, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		pc.WriteTo([]byte(hostOf(from.String())+"\n"), from)
	}
}

func probeUDP(addr string) int {
	c, err := net.Dial("udp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Write([]byte("probe")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	buf := make([]byte, 1500)
	n, err := c.Read(buf)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Print(string(buf[:n]))
	return 0
}
