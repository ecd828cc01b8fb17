package main

import (
	"strings"
	"testing"
)

// The swarm flags are refused where they make no sense, before the host is
// read, with a message that says what to do.
func TestPlanSwarmFlagErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--host", "a=2001:db8:1:1::/64"}, "add --swarm"},
		{[]string{"--site", "fd3c:9a41:7e02::/48"}, "add --swarm"},
		{[]string{"--swarm", "--host", "a=2001:db8:1:1::/64"}, "--site is required"},
		{[]string{"--swarm", "--site", "fd3c::/47x", "--host", "a=2001:db8:1:1::/64"}, `--site="fd3c::/47x" is not a prefix`},
		{[]string{"--swarm", "--site", "fd3c:9a41:7e02::/48", "--host", "a=2001:db8:1:1::/64", "--host", "b=2001:db8:1:1::/64"}, "overlapping public prefixes"},
		{[]string{"--swarm", "--site", "fd3c:9a41:7e02::/48", "--host", "2001:db8:1:1::/64"}, "accepted is NAME=PUBLIC_PREFIX"},
	}
	for _, tt := range tests {
		err := planCmd(tt.args)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("plan %s: %v, want an error with %q", strings.Join(tt.args, " "), err, tt.want)
		}
	}
}
