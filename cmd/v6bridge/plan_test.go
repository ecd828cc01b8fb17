package main

import (
	"strings"
	"testing"
)

// TestPlanRefusesWhatServeRefuses: plan and serve share one check, so a
// setting serve refuses at start is refused by plan with the same words,
// before plan prints anything.
func TestPlanRefusesWhatServeRefuses(t *testing.T) {
	for _, tt := range []struct {
		plan, serve []string
		want        string
	}{
		{[]string{"--public", "10.0.0.0/8"}, []string{"-public-prefix", "10.0.0.0/8"}, `PUBLIC_PREFIX="10.0.0.0/8": accepted is a global IPv6 prefix`},
		{[]string{"--public", "fd00:1::/64"}, []string{"-public-prefix", "fd00:1::/64"}, `PUBLIC_PREFIX="fd00:1::/64"`},
		{[]string{"--public", "2001:db8::1/64"}, []string{"-public-prefix", "2001:db8::1/64"}, `PUBLIC_PREFIX="2001:db8::1/64"`},
		{[]string{"--public", "nonsense"}, []string{"-public-prefix", "nonsense"}, `PUBLIC_PREFIX="nonsense"`},
		{[]string{"--ula", "2001:db8::/48"}, []string{"-ula-prefix", "2001:db8::/48"}, "ULA_PREFIX=2001:db8::/48 is not a unique local prefix of fd00::/8"},
		{[]string{"--ula", "fc00:1:2::/48"}, []string{"-ula-prefix", "fc00:1:2::/48"}, "ULA_PREFIX=fc00:1:2::/48 is not a unique local prefix"},
		{[]string{"--ula", "fd12:3456:789a::/40"}, []string{"-ula-prefix", "fd12:3456:789a::/40"}, "is a /40: accepted are /48 to /64"},
		{[]string{"--public-len", "130"}, []string{"-public-subnet-len", "130"}, "PUBLIC_SUBNET_LEN: accepted are 48 to 120"},
		{[]string{"--ula-len", "8"}, []string{"-ula-subnet-len", "8"}, "ULA_SUBNET_LEN: accepted are 48 to 120"},
	} {
		_, serr := serveFlags(tt.serve)
		perr := planCmd(tt.plan)
		if serr == nil || perr == nil {
			t.Errorf("plan %v = %v, serve %v = %v: want both refused", tt.plan, perr, tt.serve, serr)
			continue
		}
		if !strings.Contains(serr.Error(), tt.want) {
			t.Errorf("serve %v = %q, want it to say %q", tt.serve, serr, tt.want)
		}
		if perr.Error() != "plan: "+serr.Error() {
			t.Errorf("plan %v says %q, serve says %q: want the same words", tt.plan, perr, serr)
		}
	}
}
