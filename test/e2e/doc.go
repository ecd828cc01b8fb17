// Package e2e holds the end-to-end tests that run real Docker engines on the
// simulated IPv6-only VPS of lib.sh: the demo (demo.sh) and the publishing
// matrix of issue 9, every way a user gets a container onto v6bridge
// networks (compose, run, create + connect in either order, connect and
// disconnect while running) times three engine variants, each cell with the
// seed's checks. The tests skip unless V6B_E2E=1; with it they need root and
// the tools of scripts/install-deps.sh, and fail without them.
//
//	V6B_E2E=1 go test ./test/e2e -v -run 'TestE2E/publish/current/compose'
//
// See README.md in this directory.
package e2e
