// Package nettest gives kernel tests throwaway network namespaces.
//
// A test asks for a fresh anonymous namespace with NewNS, acts in it by
// handle (netlink.NewHandleAt, nftables.WithNetNSFd) or runs code inside it
// with Do, opens sockets there with Open, and wires namespaces together with
// Connect. ServeConns and ServePackets (with EchoConns, EchoPackets) play the
// server on such a socket, or on any other. Everything is undone by
// t.Cleanup; nothing touches the namespace the test binary started in.
// The tests skip unless V6B_KERNEL=1 (whatever the uid), and with it need
// root (CAP_NET_ADMIN, CAP_SYS_ADMIN).
package nettest
