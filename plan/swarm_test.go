package plan

import (
	"bytes"
	"strings"
	"testing"

	"github.com/v6bridge/v6bridge/internal/golden"

	"github.com/google/go-cmp/cmp"
)

func swarmHosts(t *testing.T, args ...string) []SwarmHost {
	t.Helper()
	var hs []SwarmHost
	for _, a := range args {
		h, err := ParseSwarmHost(a)
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	return hs
}

func TestSwarmGolden(t *testing.T) {
	tests := []struct {
		name string
		in   SwarmInput
	}{
		{"swarm-two", SwarmInput{Site: pfx("fd3c:9a41:7e02::/48"),
			Hosts: swarmHosts(t, "swa=2001:db8:1234:a1::/64", "swb=2001:db8:1234:a2::/64")}},
		{"swarm-ids", SwarmInput{Site: pfx("fd12:3456:789a::/48"), Driver: "v6bridge", PublicLen: 120,
			Hosts: swarmHosts(t, "vps1=2001:db8:1234:a1::/64,id=0x8101", "vps2=2001:db8:99::/48,id=7", "vps3=2a01:4f8:c0c:1234::/64")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := BuildSwarm(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			var txt, js bytes.Buffer
			if err := p.WriteText(&txt); err != nil {
				t.Fatal(err)
			}
			if err := p.WriteJSON(&js); err != nil {
				t.Fatal(err)
			}
			golden.Check(t, tt.name+".txt.golden", txt.Bytes())
			golden.Check(t, tt.name+".json.golden", js.Bytes())
		})
	}
}

// Every host's networks lie inside its own prefixes, and no two hosts'
// prefixes or networks overlap, whatever the ids.
func TestSwarmHostsDisjoint(t *testing.T) {
	p, err := BuildSwarm(SwarmInput{Site: pfx("fd3c:9a41:7e02::/48"),
		Hosts: swarmHosts(t, "a=2001:db8:1:1::/64,id=9", "b=2001:db8:1:2::/64", "c=2001:db8:2::/48,id=1", "d=2001:db8:1:3::/64,id=0")})
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range p.Hosts {
		if !n.Public.Contains(n.PublicNetwork.Addr()) || !n.ULA.Contains(n.NatNetwork.Addr()) || !p.Site.Contains(n.ULA.Addr()) {
			t.Errorf("host %s: networks %s, %s outside its prefixes %s, %s", n.Name, n.PublicNetwork, n.NatNetwork, n.Public, n.ULA)
		}
		for _, o := range p.Hosts[i+1:] {
			if n.Public.Overlaps(o.Public) || n.ULA.Overlaps(o.ULA) || n.NatNetwork.Overlaps(o.NatNetwork) {
				t.Errorf("hosts %s and %s overlap: %+v %+v", n.Name, o.Name, n, o)
			}
		}
	}
	if got, want := []uint64{p.Hosts[0].HostID, p.Hosts[1].HostID, p.Hosts[2].HostID, p.Hosts[3].HostID}, []uint64{9, 2, 1, 0}; !cmp.Equal(got, want) {
		t.Errorf("host ids %v, want %v (given, else the position counting from 1)", got, want)
	}
}

func TestSwarmRefuses(t *testing.T) {
	site := pfx("fd3c:9a41:7e02::/48")
	tests := []struct {
		name  string
		site  string
		hosts []string
		want  string
	}{
		{"no hosts", "", nil, "no hosts"},
		{"same public", "", []string{"a=2001:db8:1234:a1::/64", "b=2001:db8:1234:a1::/64"}, `hosts "a" (2001:db8:1234:a1::/64) and "b" (2001:db8:1234:a1::/64) have overlapping public prefixes`},
		{"nested public", "", []string{"a=2001:db8:1234::/48", "b=2001:db8:1234:a2::/64"}, "overlapping public prefixes"},
		{"same id", "", []string{"a=2001:db8:1:1::/64,id=3", "b=2001:db8:1:2::/64,id=3"}, `both have host id 3 (ULA fd3c:9a41:7e02:3::/64): give each host its own id, e.g. --host b=2001:db8:1:2::/64,id=4`},
		{"default id taken", "", []string{"a=2001:db8:1:1::/64,id=2", "b=2001:db8:1:2::/64"}, "both have host id 2"},
		{"same name", "", []string{"a=2001:db8:1:1::/64", "a=2001:db8:1:2::/64"}, `host "a" is given twice`},
		{"ula as public", "", []string{"a=fd00:1::/64"}, "accepted is the host's global IPv6 prefix"},
		{"public too long", "", []string{"a=2001:db8:1:1::/80"}, "/32 to /64"},
		{"public host bits", "", []string{"a=2001:db8:1:1::1/64"}, "did you mean 2001:db8:1:1::/64?"},
		{"id outside site", "", []string{"a=2001:db8:1:1::/64,id=65536"}, "accepted are 0 to 65535"},
		{"bad name", "", []string{"-x=2001:db8:1:1::/64"}, `host name "-x"`},
		{"site not ula", "2001:db8::/48", []string{"a=2001:db8:1:1::/64"}, "not a unique local prefix"},
		{"site too short", "fd00::/40", []string{"a=2001:db8:1:1::/64"}, "accepted are /48 to /64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := SwarmInput{Site: site}
			if tt.site != "" {
				in.Site = pfx(tt.site)
			}
			for _, a := range tt.hosts {
				h, err := ParseSwarmHost(a)
				if err != nil {
					t.Fatal(err)
				}
				in.Hosts = append(in.Hosts, h)
			}
			_, err := BuildSwarm(in)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("BuildSwarm: %v, want an error with %q", err, tt.want)
			}
		})
	}
}

func TestParseSwarmHost(t *testing.T) {
	good := map[string]SwarmHost{
		"vps1=2001:db8:1234:a1::/64":           {Name: "vps1", Public: pfx("2001:db8:1234:a1::/64")},
		"vps1=2001:db8:1234:a1::/64,id=0x8101": {Name: "vps1", Public: pfx("2001:db8:1234:a1::/64"), ID: 0x8101, IDSet: true},
		"n.x=2001:db8::/48,id=0":               {Name: "n.x", Public: pfx("2001:db8::/48"), IDSet: true},
	}
	for in, want := range good {
		got, err := ParseSwarmHost(in)
		if err != nil {
			t.Errorf("%q: %v", in, err)
			continue
		}
		if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b SwarmHost) bool { return a == b })); diff != "" {
			t.Errorf("%q (-want +got):\n%s", in, diff)
		}
	}
	bad := map[string]string{
		"2001:db8::/64":                "no NAME=",
		"=2001:db8::/64":               "no NAME=",
		"a=2001:db8::":                 "is not a prefix",
		"a=2001:db8::/64,id=x":         `id "x" is not a number`,
		"a=2001:db8::/64,id=-1":        "is not a number",
		"a=2001:db8::/64,role=manager": `unknown option "role=manager"`,
	}
	for in, want := range bad {
		_, err := ParseSwarmHost(in)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "accepted is NAME=PUBLIC_PREFIX") {
			t.Errorf("%q: %v, want an error with %q", in, err, want)
		}
	}
}
