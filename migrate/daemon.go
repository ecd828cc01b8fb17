package migrate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
)

// Daemon is what migrate reads from the engine's daemon.json.
type Daemon struct {
	IPv6          *bool         `json:"ipv6"`
	FixedCIDRv6   string        `json:"fixed-cidr-v6"`
	IP6Tables     *bool         `json:"ip6tables"`
	UserlandProxy *bool         `json:"userland-proxy"`
	Pools         []AddressPool `json:"default-address-pools"`

	fixed netip.Prefix
}

// AddressPool is one of default-address-pools: networks without a subnet
// get a /Size of Base.
type AddressPool struct {
	Base string `json:"base"`
	Size int    `json:"size"`

	base netip.Prefix
}

// ParseDaemon parses daemon.json; name is used in messages. Other keys are
// ignored: they do not concern the networks v6bridge takes over.
func ParseDaemon(name string, data []byte) (Daemon, error) {
	var d Daemon
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&d); err != nil {
		var se *json.SyntaxError
		if ok := asSyntax(err, &se); ok {
			line := bytes.Count(data[:min(int(se.Offset), len(data))], []byte("\n")) + 1
			return d, fmt.Errorf("%s line %d: not JSON (dockerd refuses it too): %w; keys and strings need double quotes: {\"ipv6\": true, \"fixed-cidr-v6\": \"fd12:3456:789a:8101::/80\"}", name, line, err)
		}
		return d, fmt.Errorf("%s: %w: accepted is daemon.json as dockerd reads it", name, err)
	}
	if d.FixedCIDRv6 != "" {
		p, err := netip.ParsePrefix(d.FixedCIDRv6)
		if err != nil || !p.Addr().Is6() {
			return d, fmt.Errorf("%s: fixed-cidr-v6 %q: accepted is an IPv6 prefix such as fd12:3456:789a:8101::/80", name, d.FixedCIDRv6)
		}
		d.fixed = p.Masked()
	}
	for i := range d.Pools {
		pl := &d.Pools[i]
		p, err := netip.ParsePrefix(pl.Base)
		if err != nil {
			return d, fmt.Errorf("%s: default-address-pools base %q: accepted is a prefix such as fd00:1::/48", name, pl.Base)
		}
		if pl.Size < p.Bits() || pl.Size > p.Addr().BitLen() {
			return d, fmt.Errorf("%s: default-address-pools size %d of %s: accepted is /%d to /%d", name, pl.Size, p, p.Bits(), p.Addr().BitLen())
		}
		pl.base = p.Masked()
	}
	return d, nil
}

func asSyntax(err error, target **json.SyntaxError) bool {
	se, ok := err.(*json.SyntaxError)
	if ok {
		*target = se
	}
	return ok
}
