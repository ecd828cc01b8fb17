// Package ndp answers IPv6 Neighbor Discovery on the uplink for the addresses
// of containers on public networks, so the provider's router can reach them.
//
// The files without a build tag are pure (decisions: solicitation in,
// advertisement out); the _linux.go files own the sockets.
package ndp
