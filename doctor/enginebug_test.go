package doctor

import (
	"strings"
	"testing"
)

// The engines a user may run, as /version names them: only Docker
// 29.0.0 to 29.0.2 crash with a remote network driver; a moby v2 build's
// number is not a Docker release's and is not judged (2.0.0 is not older
// than 29.0.3, nor newer).
func TestKnownEngineBug(t *testing.T) {
	tests := []struct {
		version       string
		buggy, judged bool
	}{
		{"29.0.0", true, true},
		{"29.0.1", true, true},
		{"29.0.2", true, true},
		{"29.0.0-rc.1", true, true},
		{"v29.0.2", true, true},
		{"29.0.2+dfsg1", true, true},
		{"29.0.3", false, true},
		{"29.0.3-rc.1", false, true},
		{"29.1.0", false, true},
		{"29.10.2", false, true},
		{"30.0.0", false, true},
		{"28.5.2", false, true},
		{"28.0.0", false, true},
		{"20.10.24", false, true},
		{"20.10.24+dfsg1", false, true},
		{"2.0.0-beta.24", false, false},
		{"2.0.0", false, false},
		{"2.0.2", false, false},
		{"1.13.1", false, false},
		{"", false, false},
		{"dev", false, false},
		{"29.0", false, false},
		{"29.x.2", false, false},
	}
	for _, tt := range tests {
		bug, buggy, judged := KnownEngineBug(tt.version)
		if buggy != tt.buggy || judged != tt.judged {
			t.Errorf("KnownEngineBug(%q) = buggy %v, judged %v; want %v, %v", tt.version, buggy, judged, tt.buggy, tt.judged)
		}
		if buggy && (!strings.Contains(bug.Summary, tt.version) || !strings.Contains(bug.Fix, "29.0.3") || !strings.Contains(bug.Meaning, "51557")) {
			t.Errorf("KnownEngineBug(%q) = %+v: want the version, the issue and the fix named", tt.version, bug)
		}
	}
}

// doctor fails on 29.0.1 and says why and how to fix it; a moby v2 build
// is accepted and said to be unchecked.
func TestEvaluateNamesTheCrashingEngine(t *testing.T) {
	f := healthy()
	f.Engine.Version, f.Engine.APIVersion = "29.0.1", "1.52"
	var got Finding
	for _, x := range Evaluate(f) {
		if x.Check == "engine" {
			got = x
		}
	}
	if got.Status != Fail || !strings.Contains(got.Summary, "29.0.1") || !strings.Contains(got.Fix, "29.0.3") {
		t.Errorf("engine finding on 29.0.1 = %+v", got)
	}
	if !Failed(Evaluate(f)) {
		t.Error("doctor does not fail on 29.0.1")
	}
	f.Engine.Version, f.Engine.APIVersion = "2.0.0-beta.24", "1.56"
	for _, x := range Evaluate(f) {
		if x.Check == "engine" && (x.Status != OK || !strings.Contains(x.Summary, "not checked")) {
			t.Errorf("engine finding on a moby v2 build = %+v", x)
		}
	}
}
