package netspec

import (
	"strings"
	"testing"
)

func TestParseMode(t *testing.T) {
	for _, m := range Modes {
		if got, err := ParseMode(strings.ToUpper(string(m))); err != nil || got != m {
			t.Errorf("ParseMode(%q) = %q, %v", m, got, err)
		}
	}
	if _, err := ParseMode("bridge"); err == nil || !strings.Contains(err.Error(), "nat, public, routed, internal") {
		t.Errorf("ParseMode(bridge) = %v", err)
	}
}

func TestValidIfname(t *testing.T) {
	for name, ok := range map[string]bool{
		"eth0": true, "v6b-0123456789a": true, "br.100": true, "a_b-c": true,
		"": false, "v6b-0123456789ab": false, ".": false, "..": false, "a/b": false, "a:b": false, "a b": false, "é": false,
	} {
		if err := ValidIfname(name); (err == nil) != ok {
			t.Errorf("ValidIfname(%q) = %v, want ok=%v", name, err, ok)
		}
	}
}

func TestProtoName(t *testing.T) {
	if ProtoName(ProtoTCP) != "tcp" || ProtoName(ProtoUDP) != "udp" || ProtoName(ProtoSCTP) != "sctp" || ProtoName(1) != "1" {
		t.Error("ProtoName")
	}
}
