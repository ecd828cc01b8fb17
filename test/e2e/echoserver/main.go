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
)

func main() {
	listen := flag.String("listen", "[::]:8080", "HTTP address")
	udp := flag.String("udp", "", "also answer UDP datagrams on this address with the sender's address")
	flag.Parse()
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
