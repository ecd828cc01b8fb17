package ndp

import (
	"testing"

	"github.com/v6bridge/v6bridge/ndp/ndpproto"
)

func TestConfigNormalize(t *testing.T) {
	c, err := Config{Uplinks: []string{"eth0"}}.normalize()
	if err != nil {
		t.Fatal(err)
	}
	if c.Mode != ndpproto.ModeNative || c.Source != ndpproto.SourceLinkLocal || c.ProcSys != "/proc/sys" || c.Log == nil {
		t.Errorf("defaults not filled in: %+v", c)
	}
	if _, err := (Config{Mode: ndpproto.ModeOff}).normalize(); err != nil {
		t.Errorf("off without uplinks: %v", err)
	}
	for _, bad := range []Config{
		{Uplinks: []string{"eth0"}, Mode: "ndppd"},
		{Uplinks: []string{"eth0"}, Source: "random"},
		{Mode: ndpproto.ModeNative},
		{Mode: ndpproto.ModeKernel},
		{Uplinks: []string{"eth0", "eth0"}},
		{Uplinks: []string{""}},
		{Uplinks: []string{"a-very-long-interface-name"}},
	} {
		if _, err := bad.normalize(); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}
