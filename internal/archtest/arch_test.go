package archtest

import (
	"go/build"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/v6bridge/v6bridge/"

// allowed lists, per package of the plugin, the module's packages it may
// import (besides internal/ helpers that import nothing of the module):
// the layers of docs/architecture.md, from the leaf up. A package missing
// here fails the test, so a new one gets its place on purpose.
var allowed = map[string][]string{
	"netspec":            {},
	"plan":               {"netspec"},
	"fwstate":            {"netspec"},
	"metrics":            {},
	"internal/store":     {},
	"internal/netnsdo":   {},
	"internal/nlretry":   {},
	"internal/ndpflood":  {},
	"internal/nettest":   {"internal/netnsdo"},
	"internal/golden":    {},
	"internal/nftledger": {},
	"internal/instance":  {"internal/store"},
	"internal/archtest":  {},
	"internal/hostos":    {"netspec"},
	"link":               {"netspec", "internal/netnsdo", "internal/nlretry", "internal/instance"},
	"nat":                {"netspec", "fwstate", "internal/netnsdo", "internal/nlretry", "internal/nftledger"},
	"ra":                 {"netspec", "internal/netnsdo"},
	"ndp":                {"netspec", "link", "ndp/ndpproto", "ndp/ingress", "internal/netnsdo", "internal/nlretry", "internal/nftledger"},
	"ipam":               {"netspec", "plan", "internal/store", "internal/hostos"},
	"doctor":             {"netspec", "plan", "link", "nat", "internal/netnsdo", "internal/nlretry", "internal/instance"},
	"migrate":            {"netspec", "plan", "ipam"},
	"driver":             {"netspec", "fwstate", "portfwd", "ipam", "internal/store", "internal/hostos"},
	"portfwd":            {"netspec"},
	"internal/api":       {"netspec", "driver", "ipam", "nat", "portfwd"},
	"cmd/v6bridge":       nil, // wiring: anything

	// ndp's own: the pure protocol under the responder, and the packets
	// and addresses its tests share.
	"ndp/ndpproto":         {},
	"ndp/ingress":          {"ndp/ndpproto"},
	"ndp/internal/ndptest": {},
}

// tools are the programs that play the engine or the network in tests and
// benchmarks: they speak Docker's wire format on purpose.
var tools = []string{"test/", "bench/"}

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test")
		}
		dir = parent
	}
}

// packages returns the module's package directories (relative), without
// the tools.
func packages(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") && rel != "." || rel == "plugin" {
				return filepath.SkipDir
			}
			for _, tool := range tools {
				if strings.HasPrefix(rel+"/", tool) {
					return filepath.SkipDir
				}
			}
			return nil
		}
		if strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") {
			dir := filepath.ToSlash(filepath.Dir(rel))
			if !slices.Contains(out, dir) {
				out = append(out, dir)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestLayers fails when a package imports one of the module's packages its
// layer may not see (link importing driver, driver importing the kernel
// adapters, anything importing cmd or the API adapter), or when a package
// has no place in the layers yet.
func TestLayers(t *testing.T) {
	root := repoRoot(t)
	for _, dir := range packages(t, root) {
		pkg, err := build.ImportDir(filepath.Join(root, dir), 0)
		if err != nil {
			t.Errorf("%s: %v", dir, err)
			continue
		}
		may, known := allowed[dir]
		if !known {
			t.Errorf("package %s has no place in the layers: add it to allowed (and docs/architecture.md)", dir)
			continue
		}
		for _, imp := range pkg.Imports {
			if strings.HasPrefix(imp, "github.com/docker/go-plugins-helpers") && dir != "internal/api" {
				t.Errorf("%s imports %s: only internal/api knows the plugin wire format", dir, imp)
			}
			rel, ok := strings.CutPrefix(imp, module)
			if !ok || may == nil {
				continue
			}
			if !slices.Contains(may, rel) {
				t.Errorf("%s imports %s: its layer may import only %v (docs/architecture.md)", dir, rel, may)
			}
		}
	}
}

// TestDockerKeysOnlyInAPI fails when a package other than internal/api
// mentions one of Docker's com.docker.* option keys: the wire format is
// decoded at the edge, the rest works in domain types.
func TestDockerKeysOnlyInAPI(t *testing.T) {
	root := repoRoot(t)
	for _, dir := range packages(t, root) {
		// migrate reads the user's Docker configuration (compose
		// driver_opts of the built-in bridge, daemon.json), not the
		// plugin API: those keys are its input.
		if dir == "internal/api" || dir == "internal/archtest" || dir == "migrate" {
			continue
		}
		files, err := filepath.Glob(filepath.Join(root, dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(b), "com.docker.") {
				rel, _ := filepath.Rel(root, f)
				t.Errorf("%s mentions a com.docker. key: decode Docker's options in internal/api", rel)
			}
		}
	}
}
