package instance

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAcquireRefusesSecondHolderAndNamesFirst(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	first, err := Acquire(dir, Holder{PID: 4242, Socket: "/run/docker/plugins/v6bridge.sock", StateDir: dir, Since: "now"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Acquire(dir, Holder{PID: 7, Socket: "/other.sock", StateDir: dir})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Acquire: %v, want ErrLocked", err)
	}
	for _, want := range []string{"pid 4242", "/run/docker/plugins/v6bridge.sock", dir} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	if err := first.Release(); err != nil {
		t.Fatal(err)
	}
	second, err := Acquire(dir, Holder{PID: 7})
	if err != nil {
		t.Fatalf("Acquire after Release: %v", err)
	}
	second.Release()
}

func TestIdentityIsMadeOnceAndKept(t *testing.T) {
	dir := t.TempDir()
	a, created, err := LoadIdentity(dir, "/var/lib/v6bridge-a")
	if err != nil || !created || !validID(a.ID) {
		t.Fatalf("first LoadIdentity = %+v, %v, %v", a, created, err)
	}
	b, created, err := LoadIdentity(dir, "/elsewhere")
	if err != nil || created || b.ID != a.ID || b.StateDir != "/var/lib/v6bridge-a" {
		t.Fatalf("second LoadIdentity = %+v, %v, %v; want %+v kept", b, created, err, a)
	}
	other, _, _ := LoadIdentity(t.TempDir(), "")
	if other.ID == a.ID {
		t.Errorf("two state directories share id %s", a.ID)
	}
	if err := os.WriteFile(filepath.Join(dir, IdentityFile), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadIdentity(dir, ""); err == nil {
		t.Error("a truncated identity was accepted (a new one would disown the links)")
	}
}

func TestMarkRoundTrip(t *testing.T) {
	tests := []struct {
		alias   string
		id, dir string
		ok      bool
	}{
		{Mark("0123456789abcdef", "/var/lib/v6bridge"), "0123456789abcdef", "/var/lib/v6bridge", true},
		{Mark("0123456789abcdef", ""), "0123456789abcdef", "", true},
		{"", "", "", false},
		{"my uplink", "", "", false},
		{"v6bridge:nothex!!nothex!", "", "", false},
	}
	for _, tt := range tests {
		id, dir, ok := ParseMark(tt.alias)
		if id != tt.id || dir != tt.dir || ok != tt.ok {
			t.Errorf("ParseMark(%q) = %q, %q, %v; want %q, %q, %v", tt.alias, id, dir, ok, tt.id, tt.dir, tt.ok)
		}
	}
}

func TestHostPath(t *testing.T) {
	mi := `22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw
330 320 8:1 /srv/state\040b /var/lib/v6bridge rw,relatime - ext4 /dev/sda1 rw
331 320 0:5 / /host/proc rw - proc proc rw
`
	if got := HostPath([]byte(mi), "/var/lib/v6bridge/"); got != "/srv/state b" {
		t.Errorf("bind-mounted: %q, want /srv/state b", got)
	}
	if got := HostPath([]byte(mi), "/var/lib/other"); got != "/var/lib/other" {
		t.Errorf("not a mount: %q", got)
	}
}
