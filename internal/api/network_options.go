package api

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"

	netapi "github.com/docker/go-plugins-helpers/network"

	"github.com/v6bridge/v6bridge/driver"
)

// Engine option keys in CreateNetwork's Options.
const (
	optGeneric    = "com.docker.network.generic"
	optEnableIPv6 = "com.docker.network.enable_ipv6"
	optEnableIPv4 = "com.docker.network.enable_ipv4"
	optInternal   = "com.docker.network.internal"
)

// CreateNetworkFromWire converts the engine's CreateNetwork request.
func CreateNetworkFromWire(req netapi.CreateNetworkRequest) (driver.CreateNetworkRequest, error) {
	out := driver.CreateNetworkRequest{NetworkID: req.NetworkID, Generic: map[string]string{}}
	if g, ok := req.Options[optGeneric]; ok && g != nil {
		m, ok := g.(map[string]any)
		if !ok {
			return out, fmt.Errorf("option %s: got a JSON %s, accepted is an object of driver options (name: value)", optGeneric, jsonType(g))
		}
		for k, v := range m {
			switch v := v.(type) {
			case string:
				out.Generic[k] = v
			case bool, float64:
				out.Generic[k] = fmt.Sprint(v)
			default:
				return out, fmt.Errorf("driver option %s: got a JSON %s, accepted is a string, number or boolean", k, jsonType(v))
			}
		}
	}
	if err := dockerDriverOptions(out.Generic); err != nil {
		return out, err
	}
	var err error
	if out.EnableIPv6, err = boolOpt(req.Options, optEnableIPv6); err != nil {
		return out, err
	}
	if _, ok := req.Options[optEnableIPv4]; ok {
		b, err := boolOpt(req.Options, optEnableIPv4)
		if err != nil {
			return out, err
		}
		out.EnableIPv4 = &b
	}
	if out.Internal, err = boolOpt(req.Options, optInternal); err != nil {
		return out, err
	}
	if out.IPv4, err = poolsFromWire(req.IPv4Data); err != nil {
		return out, err
	}
	if out.IPv6, err = poolsFromWire(req.IPv6Data); err != nil {
		return out, err
	}
	return out, nil
}

// dockerOptions are Docker's own generic driver options v6bridge
// honours, and the v6bridge option each one means.
var dockerOptions = map[string]string{
	"com.docker.network.driver.mtu": driver.OptMTU,
	"com.docker.network.host_ipv6":  driver.OptHostIPv6,
}

// dockerDriverOptions turns Docker's own generic options in generic into
// v6bridge's (-o com.docker.network.driver.mtu=1400 is v6bridge.mtu=1400),
// refusing the two given with different values.
func dockerDriverOptions(generic map[string]string) error {
	for dk, vk := range dockerOptions {
		dv, ok := generic[dk]
		if !ok {
			continue
		}
		if v, both := generic[vk]; both && strings.TrimSpace(v) != strings.TrimSpace(dv) {
			return fmt.Errorf("driver options %s=%q and %s=%q disagree: give one of them", dk, dv, vk, v)
		}
		generic[vk] = dv
		delete(generic, dk)
	}
	return nil
}

// boolOpt reads the engine option name: a JSON boolean, or the strings
// "true"/"false"; absent or null is false. Anything else is an error naming
// the option, never silently false (a request for an internal network must
// not produce a nat one).
func boolOpt(opts map[string]any, name string) (bool, error) {
	switch v := opts[name].(type) {
	case nil:
		return false, nil
	case bool:
		return v, nil
	case string:
		switch strings.ToLower(v) {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
		return false, fmt.Errorf("option %s: got %q, accepted are true and false", name, v)
	default:
		return false, fmt.Errorf("option %s: got a JSON %s, accepted are true and false", name, jsonType(v))
	}
}

// jsonType names the JSON type of a decoded value.
func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case float64, json.Number:
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

func poolsFromWire(data []*netapi.IPAMData) ([]driver.PoolData, error) {
	var out []driver.PoolData
	for _, d := range data {
		if d == nil {
			continue
		}
		p, err := netip.ParsePrefix(d.Pool)
		if err != nil {
			return nil, fmt.Errorf("pool %q: %w", d.Pool, err)
		}
		pd := driver.PoolData{Pool: p}
		if d.Gateway != "" {
			if pd.Gateway, err = parseAddrOrPrefix(d.Gateway); err != nil {
				return nil, fmt.Errorf("gateway %q: %w", d.Gateway, err)
			}
		}
		out = append(out, pd)
	}
	return out, nil
}

// parseAddrOrPrefix accepts "addr/len" or a bare address (as a /128 or /32).
func parseAddrOrPrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		return netip.ParsePrefix(s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}
