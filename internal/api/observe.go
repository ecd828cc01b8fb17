package api

import (
	"net/http"
	"time"
)

// Observer is told of every request after it is answered: its method (the
// route without the leading slash, e.g. "NetworkDriver.Join"), whether the
// answer was an error, and how long it took.
type Observer func(method string, failed bool, took time.Duration)

// Option configures NewHandler.
type Option func(*options)

type options struct {
	observe Observer
}

// WithObserver has every request reported to o (metrics).
func WithObserver(o Observer) Option { return func(opts *options) { opts.observe = o } }

// observed wraps fn so o learns of each request; fn unchanged when o is nil.
func observed(o Observer, method string, fn http.HandlerFunc) http.HandlerFunc {
	if o == nil {
		return fn
	}
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		fn(sw, r)
		o(method, sw.code >= http.StatusBadRequest, time.Since(start))
	}
}

// statusWriter remembers the status code of the answer: the helpers' SDK
// writes 500 for every error answer.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}
