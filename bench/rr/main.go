// Command rr measures a request/response rate with a new TCP connection
// per request: workers loop GET url for the duration, keep-alive off, and
// it prints the completed requests per second as one number. It never
// judges the result; bench/bench.sh collects it.
//
//	rr -url http://[2001:db8:1234:a1::1]:8181/ -duration 5s -workers 4
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	url := flag.String("url", "", "URL to GET (required)")
	duration := flag.Duration("duration", 5*time.Second, "how long to run")
	workers := flag.Int("workers", 4, "concurrent clients, one connection at a time each")
	flag.Parse()
	if *url == "" || *workers < 1 || *duration <= 0 {
		fmt.Fprintln(os.Stderr, "rr: -url is required; -workers must be >= 1 and -duration > 0")
		os.Exit(2)
	}
	rate, failed, err := run(*url, *duration, *workers)
	if err != nil {
		fmt.Fprintln(os.Stderr, "rr:", err)
		os.Exit(1)
	}
	if failed > 0 {
		fmt.Fprintf(os.Stderr, "rr: %d requests failed\n", failed)
	}
	fmt.Printf("%.1f\n", rate)
}

// run returns the rate of successful requests per second and the number
// of failed ones; an error when none succeeded.
func run(url string, d time.Duration, workers int) (float64, int64, error) {
	client := &http.Client{
		Timeout:   3 * time.Second,
		Transport: &http.Transport{DisableKeepAlives: true},
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var ok, failed atomic.Int64
	var last atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				resp, err := client.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						failed.Add(1)
						last.Store(err)
					}
					continue
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK {
					failed.Add(1)
					continue
				}
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	if ok.Load() == 0 {
		return 0, failed.Load(), fmt.Errorf("no request to %s succeeded: %v", url, last.Load())
	}
	return float64(ok.Load()) / elapsed, failed.Load(), nil
}
