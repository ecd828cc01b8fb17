// Command echoserver is the e2e suite's "internet" server: it answers every
// HTTP request (and every TCP/UDP payload on -raw ports) with the address
// the connection came from, so tests see what NAT did to the source.
//
//	echoserver -listen [2001:db8:ffff::10]:8080
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"time"
)

func main() {
	listen := flag.String("listen", "[::]:8080", "HTTP address")
	udp := flag.String("udp", "", "also answer UDP datagrams on this address with the sender's address")
	probe := flag.String("probe-udp", "", "client: send one datagram to this address, print the answer, exit (non-zero after 3 s without one)")
	flag.Parse()
	if *probe != "" {
		os.Exit(probeUDP(*probe))
	}
	if *udp != "" {
		pc, err := net.ListenPacket("udp", *udp)
		if err != nil {
			log.Fatal(err)
		}
		go func() {
			buf := make([]byte, 1500)
			for {
				_, from, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				host, _, _ := net.SplitHostPort(from.String())
				pc.WriteTo([]byte(host+"\n"), from)
			}
		}()
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			host = r.RemoteAddr
		}
		fmt.Fprintln(w, host)
	})
	log.Fatal(http.ListenAndServe(*listen, nil))
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
