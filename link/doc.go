// Package link manages the kernel side of v6bridge's data path through
// netlink and the proc sysctl tree: one Linux bridge per network with the
// gateway address, one veth pair per endpoint, and the host-wide sysctls
// (IPv6 forwarding, accept_ra=2 on uplinks) the data path needs.
//
// Kernel satisfies the driver's Links interface. Every Ensure method
// creates or verifies and repairs, so calling it twice changes nothing;
// every Delete of a missing link succeeds. A Kernel acts in one network
// namespace, the current one by default, so tests can drive it inside a
// throwaway namespace (see internal/nettest).
package link
