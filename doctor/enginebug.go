package doctor

import (
	"fmt"
	"strconv"
	"strings"
)

// EngineBug is a known engine bug that breaks v6bridge: which versions,
// what happens, and the fix.
type EngineBug struct {
	Summary string
	Meaning string
	Fix     string
}

// remoteDriverCrash is moby#51557/#51558: Docker 29.0.0 to 29.0.2 crash
// when a remote network driver is used; 29.0.3 fixed it.
var remoteDriverCrash = EngineBug{
	Meaning: "dockerd crashes when a remote network driver such as v6bridge is used (moby#51557, moby#51558): " +
		"creating a v6bridge network or starting a container on one takes the engine down",
	Fix: "upgrade the engine to Docker 29.0.3 or later (fixed there), e.g. apt-get install --only-upgrade docker-ce",
}

// Release is an engine version as /version names it, split for judging.
type Release struct {
	// Line is how the number is to be read: "docker" for Docker releases
	// (17.03 on: 20.10.24, 28.5.1, 29.0.3, distributions' 20.10.24+dfsg1),
	// "moby" for moby v2 module builds (2.0.0-beta.24: moby's master,
	// numbered apart from Docker's releases, so not comparable with
	// 29.x), "" when the version cannot be read.
	Line                string
	Major, Minor, Patch int
	Pre                 string // "rc.1", "beta.24": after '-'
}

// ParseRelease reads an engine version. Docker releases start at 17 (the
// year-based numbering; 1.13 was the last before); moby v2 module builds
// have major 2. Anything else is Line "".
func ParseRelease(v string) Release {
	v = strings.TrimPrefix(strings.TrimSpace(v), "v")
	if i := strings.IndexByte(v, '+'); i >= 0 {
		v = v[:i] // distribution build: 20.10.24+dfsg1
	}
	var r Release
	if i := strings.IndexByte(v, '-'); i >= 0 {
		v, r.Pre = v[:i], v[i+1:]
	}
	parts := strings.Split(v, ".")
	if len(parts) != 3 {
		return Release{}
	}
	var n [3]int
	for i, p := range parts {
		x, err := strconv.Atoi(p)
		if err != nil || x < 0 {
			return Release{}
		}
		n[i] = x
	}
	r.Major, r.Minor, r.Patch = n[0], n[1], n[2]
	switch {
	case r.Major >= 17:
		r.Line = "docker"
	case r.Major == 2:
		r.Line = "moby"
	default:
		return Release{}
	}
	return r
}

// KnownEngineBug returns the known bug of engine version v that breaks
// v6bridge, if any. Only Docker releases are judged: a moby v2 build's
// number says nothing about which Docker release it matches (judged is
// false, and the caller can say the version was not judged).
func KnownEngineBug(v string) (bug EngineBug, found, judged bool) {
	r := ParseRelease(v)
	if r.Line != "docker" {
		return EngineBug{}, false, false
	}
	// 29.0.0 to 29.0.2, their pre-releases included (29.0.0-rc.1 had
	// the bug already); 29.0.3's pre-releases carry the fix.
	if r.Major == 29 && r.Minor == 0 && r.Patch <= 2 {
		b := remoteDriverCrash
		b.Summary = fmt.Sprintf("engine %s crashes with remote network drivers (moby#51557, moby#51558; fixed in 29.0.3)", v)
		return b, true, true
	}
	return EngineBug{}, false, true
}
