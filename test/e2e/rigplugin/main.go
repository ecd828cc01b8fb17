// Command rigplugin is a do-nothing Docker remote network driver used by the e2e rig
// (test/e2e/rig_test.sh) to prove that the rig's engines find plugins both ways v6bridge
// is run: as a managed plugin (socket under /run/docker/plugins/<id>/) and as a host
// service (socket /run/docker/plugins/<name>.sock), inside the VPS's private mounts.
// It answers Plugin.Activate and GetCapabilities, and every other call with {}.
package main

import (
	"flag"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
)

func main() {
	sock := flag.String("sock", "/run/docker/plugins/rig.sock", "unix socket to serve on")
	flag.Parse()
	if err := os.MkdirAll(filepath.Dir(*sock), 0o755); err != nil {
		log.Fatal(err)
	}
	_ = os.Remove(*sock)
	l, err := net.Listen("unix", *sock)
	if err != nil {
		log.Fatal(err)
	}
	reply := func(body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			log.Printf("%s %s", r.Method, r.URL.Path)
			w.Header().Set("Content-Type", "application/vnd.docker.plugins.v1+json")
			_, _ = w.Write([]byte(body + "\n"))
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/Plugin.Activate", reply(`{"Implements":["NetworkDriver"]}`))
	mux.HandleFunc("/NetworkDriver.GetCapabilities", reply(`{"Scope":"local","ConnectivityScope":"local"}`))
	mux.HandleFunc("/", reply(`{}`))
	log.Printf("rigplugin serving on %s", *sock)
	log.Fatal(http.Serve(l, mux))
}
