package nat

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/v6bridge/v6bridge/internal/nftledger"
)

// probeTable is the throwaway table ProbeFastPath creates and deletes in
// the same batch.
const probeTable = "v6bridge_probe"

// ProbeFastPath reports whether the kernel of network namespace netns (a
// file descriptor; 0 is the current one) accepts what State.FastPath
// needs: a flowtable in an ip6 table and a rule with flow offload. It
// sends one batch that creates a throwaway table with both and deletes it
// again, so nothing stays behind either way. The error says what failed.
func ProbeFastPath(netns int) error {
	return probeFastPath(netns, nil) // no firewall asks of this probe
}

// probeFastPath is ProbeFastPath with its batch sent through ledger.
func probeFastPath(netns int, ledger *nftledger.Ledger) error {
	conn, err := newConn(netns)
	if err != nil {
		return err
	}
	defer conn.CloseLasting()
	t := &nftables.Table{Family: nftables.TableFamilyIPv6, Name: probeTable}
	conn.AddTable(t)
	conn.DelTable(t)
	conn.AddTable(t)
	conn.AddFlowtable(&nftables.Flowtable{Table: t, Name: FlowtableName, Hooknum: nftables.FlowtableHookIngress,
		Priority: nftables.FlowtablePriorityFilter, Devices: []string{"lo"}, Flags: nftables.FlowtableFlagsCounter})
	ch := conn.AddChain(&nftables.Chain{Table: t, Name: "probe"})
	conn.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{&expr.FlowOffload{Name: FlowtableName}}})
	conn.DelTable(t)
	if err := ledger.Flush(conn); err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EOPNOTSUPP) {
			return fmt.Errorf("the kernel has no nftables flowtables for ip6 (CONFIG_NF_FLOW_TABLE_INET, CONFIG_NFT_FLOW_OFFLOAD): %w", err)
		}
		return fmt.Errorf("create a flowtable: %w", err)
	}
	return nil
}

// kernelLinks finds interfaces by name in the Table's namespace.
type kernelLinks struct {
	h *netlink.Handle
}

func newKernelLinks(fd int) (*kernelLinks, error) {
	var h *netlink.Handle
	var err error
	if fd == 0 {
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE, unix.NETLINK_NETFILTER)
	} else {
		h, err = netlink.NewHandleAt(netns.NsHandle(fd), unix.NETLINK_ROUTE, unix.NETLINK_NETFILTER)
	}
	if err != nil {
		return nil, fmt.Errorf("netlink handle: %w", err)
	}
	return &kernelLinks{h: h}, nil
}

// present keeps the devices that exist (the kernel refuses a flowtable
// naming a missing one) and returns them with their interface indexes: a
// device deleted and created again has a new index and must be hooked
// again.
func (k *kernelLinks) present(devs []string) ([]string, map[string]int) {
	out := make([]string, 0, len(devs))
	idx := make(map[string]int, len(devs))
	for _, d := range devs {
		l, err := k.h.LinkByName(d)
		if err != nil {
			continue
		}
		out = append(out, d)
		idx[d] = l.Attrs().Index
	}
	return out, idx
}

// revokeFilter matches the conntrack entries of any of its revocations.
type revokeFilter []Revocation

func addrPort(ip []byte, port uint16) netip.AddrPort {
	a, _ := netip.AddrFromSlice(ip)
	return netip.AddrPortFrom(a.Unmap(), port)
}

// MatchConntrackFlow implements netlink.CustomConntrackFilter.
func (f revokeFilter) MatchConntrackFlow(flow *netlink.ConntrackFlow) bool {
	c := ConnTuple{
		Proto:    flow.Forward.Protocol,
		OrigSrc:  addrPort(flow.Forward.SrcIP, flow.Forward.SrcPort),
		OrigDst:  addrPort(flow.Forward.DstIP, flow.Forward.DstPort),
		ReplySrc: addrPort(flow.Reverse.SrcIP, flow.Reverse.SrcPort),
		ReplyDst: addrPort(flow.Reverse.DstIP, flow.Reverse.DstPort),
	}
	for _, r := range f {
		if r.Matches(c) {
			return true
		}
	}
	return false
}

// revoke deletes the IPv6 conntrack entries the revocations select and
// returns how many. The kernel tears down their offloaded flows with them.
func (k *kernelLinks) revoke(rs []Revocation) (uint, error) {
	n, err := k.h.ConntrackDeleteFilters(netlink.ConntrackTable, unix.AF_INET6, revokeFilter(rs))
	if err != nil {
		return n, fmt.Errorf("delete conntrack entries: %w", err)
	}
	return n, nil
}
