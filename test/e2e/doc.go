// Package e2e holds the end-to-end tests that run real Docker engines on a
// simulated IPv6-only VPS (the vps type: network namespaces, a private mount
// namespace, the engine, the plugin): areas per engine variant, among them
// the demo (make demo), the publishing matrix of issue 9, the lifecycle,
// options, security, tools and the upgrade through a registry; the swarm
// and the long soak in make test-slow. The tests skip unless V6B_E2E=1; with it they need root and
// the tools of scripts/install-deps.sh, and fail without them.
//
//	V6B_E2E=1 go test ./test/e2e -v -run 'TestE2E/current/publish/run-nat'
//
// See README.md in this directory.
package e2e
