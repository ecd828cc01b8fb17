package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"time"

	"github.com/v6bridge/v6bridge/internal/netnsdo"

	"github.com/vishvananda/netns"
)

// The main goroutine keeps the main thread: probes switch threads into the
// VPS's namespaces (netnsdo), and vps_down kills every process whose main
// thread is in them (`ip netns pids`), which must never be this test.
func init() { runtime.LockOSThread() }

// dialIn opens a connection from inside ns: the socket is created on a
// thread in ns and stays there.
func dialIn(ctx context.Context, ns netns.NsHandle, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := netnsdo.Do(ns, func() error {
		var err error
		c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// httpGet fetches url from inside ns and returns the trimmed body.
func httpGet(ns netns.NsHandle, url string, timeout time.Duration) (string, error) {
	cl := &http.Client{Timeout: timeout, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return dialIn(ctx, ns, network, addr)
		},
	}}
	resp, err := cl.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	return strings.TrimSpace(string(b)), nil
}

// fetchWant fetches url from ns until the body is want, for up to wait.
func fetchWant(ns netns.NsHandle, url, want string, wait time.Duration) error {
	return eventually(wait, func() error {
		got, err := httpGet(ns, url, 3*time.Second)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("GET %s answered %q, want %q", url, got, want)
		}
		return nil
	})
}

// closedTCP succeeds when no TCP connection to hostport can be opened from
// ns within timeout: dropped, refused or unroutable. A connection that
// opens is an error naming what answered.
func closedTCP(ns netns.NsHandle, hostport string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := dialIn(ctx, ns, "tcp", hostport)
	if err != nil {
		return nil
	}
	c.Close()
	body, gerr := httpGet(ns, "http://"+hostport+"/local", timeout)
	if gerr != nil {
		return fmt.Errorf("%s accepts connections", hostport)
	}
	return fmt.Errorf("%s is open: /local answered %q", hostport, body)
}

// udpWant sends a datagram to hostport from ns until the answer (the
// sender's address as the container saw it) is want, for up to wait.
func udpWant(ns netns.NsHandle, hostport, want string, wait time.Duration) error {
	return eventually(wait, func() error {
		c, err := dialIn(context.Background(), ns, "udp", hostport)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Second))
		if _, err := c.Write([]byte("probe")); err != nil {
			return fmt.Errorf("send to %s: %w", hostport, err)
		}
		buf := make([]byte, 1500)
		n, err := c.Read(buf)
		if err != nil {
			return fmt.Errorf("no answer from udp %s: %w", hostport, err)
		}
		if got := strings.TrimSpace(string(buf[:n])); got != want {
			return fmt.Errorf("udp %s answered %q, want %q", hostport, got, want)
		}
		return nil
	})
}

// eventually runs fn every 200 ms until it succeeds or wait has passed,
// and returns its last error.
func eventually(wait time.Duration, fn func() error) error {
	deadline := time.Now().Add(wait)
	for {
		err := fn()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// inetServer serves HTTP in "the internet" for the cell's lifetime and
// returns its URL: every GET answers with the client's address as the
// internet sees it.
func (c *cell) inetServer() string {
	c.t.Helper()
	var l net.Listener
	err := netnsdo.Do(c.g.inet, func() error {
		var err error
		l, err = net.Listen("tcp", net.JoinHostPort(inetAddr, "0"))
		return err
	})
	if err != nil {
		c.t.Fatalf("listen in the internet namespace: %v", err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		fmt.Fprintln(w, host)
	})}
	go srv.Serve(l)
	c.t.Cleanup(func() { srv.Close() })
	return "http://" + l.Addr().String() + "/"
}
