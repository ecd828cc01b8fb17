package link

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// UplinkState is an uplink as the Follower last read it from the kernel.
type UplinkState struct {
	Name string
	// Index is the interface index; 0 while no link has the name (the
	// uplink was deleted). A link deleted and created again under the same
	// name (hot-plug, a bond or VLAN re-created) has a new index.
	Index int
	Up    bool
	// Addrs are the link's IPv6 addresses with their prefix lengths, link
	// local ones too, without those that failed duplicate address
	// detection; Tentative those of them still in it. Both sorted.
	Addrs     []netip.Prefix
	Tentative []netip.Prefix
	// Gateway is the next hop of the IPv6 default route through the link.
	Gateway netip.Addr
}

// Equal reports whether s and o are the same state.
func (s UplinkState) Equal(o UplinkState) bool {
	return s.Name == o.Name && s.Index == o.Index && s.Up == o.Up && s.Gateway == o.Gateway &&
		slices.Equal(s.Addrs, o.Addrs) && slices.Equal(s.Tentative, o.Tentative)
}

// Global returns the global unicast addresses (not link-local), the
// host's addresses on the uplink: what a published port serves.
func (s UplinkState) Global() []netip.Addr {
	var out []netip.Addr
	for _, p := range s.Addrs {
		if a := p.Addr(); a.IsGlobalUnicast() && !a.IsLinkLocalUnicast() {
			out = append(out, a)
		}
	}
	return out
}

// Change is one uplink's move from Old to New, as parts that follow the
// uplink are told it.
type Change struct {
	Old, New UplinkState
	// Attached is the index the parts were last attached to (the last
	// index the uplink had; 0 only if it never existed).
	Attached int
}

// Reattach reports whether the parts must attach to a new link: the
// uplink exists with an index other than the one they are attached to
// (deleted and created again, in one step or two).
func (c Change) Reattach() bool { return c.New.Index != 0 && c.New.Index != c.Attached }

// Gone reports whether the uplink was deleted.
func (c Change) Gone() bool { return c.Old.Index != 0 && c.New.Index == 0 }

// AddrsChanged reports whether the uplink's addresses changed.
func (c Change) AddrsChanged() bool {
	return !slices.Equal(c.Old.Addrs, c.New.Addrs) || !slices.Equal(c.Old.Tentative, c.New.Tentative)
}

// Kinds names what changed, for logs and metrics: recreated, gone,
// up, down, addrs, gateway.
func (c Change) Kinds() []string {
	var out []string
	switch {
	case c.Reattach():
		out = append(out, "recreated")
	case c.Gone():
		out = append(out, "gone")
	}
	if c.New.Up != c.Old.Up {
		if c.New.Up {
			out = append(out, "up")
		} else {
			out = append(out, "down")
		}
	}
	if c.AddrsChanged() {
		out = append(out, "addrs")
	}
	if c.New.Gateway != c.Old.Gateway {
		out = append(out, "gateway")
	}
	return out
}

// Part is something bound to the uplink (the NDP responder, the
// firewall, published ports) that the Follower tells of every change.
// Changed returns once the part has followed; an error is logged and
// counted, and the part is told again at the next change.
type Part struct {
	Name    string
	Changed func(Change) error
}

// Reattachment is a part's record of re-attaching to new links.
type Reattachment struct {
	Part  string
	Count int
	Last  time.Time `json:",omitzero"`
	// Error is the last re-attachment's failure, empty when it worked.
	Error string `json:",omitempty"`
}

// UplinkStatus is an uplink's state and its parts' re-attachments, as
// `v6bridge status` shows them.
type UplinkStatus struct {
	UplinkState
	Changes      int
	LastChange   time.Time `json:",omitzero"`
	Reattachment []Reattachment
}

// String is the uplink in one line.
func (s UplinkStatus) String() string {
	state := "absent"
	switch {
	case s.Index != 0 && s.Up:
		state = "up"
	case s.Index != 0:
		state = "down"
	}
	addrs := make([]string, 0, len(s.Addrs))
	for _, p := range s.Addrs {
		a := p.String()
		if slices.Contains(s.Tentative, p) {
			a += " (tentative)"
		}
		addrs = append(addrs, a)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: index %d, %s, addresses [%s]", s.Name, s.Index, state, strings.Join(addrs, " "))
	if s.Gateway.IsValid() {
		fmt.Fprintf(&b, ", default via %s", s.Gateway)
	}
	for _, r := range s.Reattachment {
		fmt.Fprintf(&b, "; %s re-attached %d times", r.Part, r.Count)
		if !r.Last.IsZero() {
			fmt.Fprintf(&b, " (last %s)", r.Last.UTC().Format(time.RFC3339))
		}
		if r.Error != "" {
			fmt.Fprintf(&b, " FAILED: %s", r.Error)
		}
	}
	return b.String()
}
