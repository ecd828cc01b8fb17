package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/docker/go-plugins-helpers/sdk"
)

// errorResponse carries an error for both APIs.
type errorResponse struct {
	Err   string
	Error string
}

// fail logs err once for route and answers it in both APIs' error fields.
func (s *server) fail(w http.ResponseWriter, route string, err error) {
	s.log.WithField("route", route).WithError(err).Error("request failed")
	sdk.EncodeResponse(w, errorResponse{Err: err.Error(), Error: err.Error()}, true)
}

// decode reads the JSON body of r into v; a body that does not decode, or
// is over MaxRequestBytes, is answered as an error and decode returns false.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		msg := fmt.Sprintf("decode request: %v", err)
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			msg = fmt.Sprintf("decode request: the body is over %d bytes: accepted are requests up to that size", tooBig.Limit)
		}
		sdk.EncodeResponse(w, errorResponse{Err: msg, Error: msg}, true)
		return false
	}
	return true
}

// answer encodes the empty answer of a request that returns nothing, or
// err as route's failure.
func (s *server) answer(w http.ResponseWriter, route string, err error) {
	if err != nil {
		s.fail(w, route, err)
		return
	}
	sdk.EncodeResponse(w, struct{}{}, false)
}
