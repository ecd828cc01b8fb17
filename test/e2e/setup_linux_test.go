package e2e

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func getenv(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// setup gates the end-to-end tests: skipped without V6B_E2E=1 (so unit
// runs of ./... pass through), failed when asked for but not root or a tool
// is missing. It builds v6bridge and echoserver for this run.
func setup(t *testing.T) *env {
	t.Helper()
	if os.Getenv("V6B_E2E") != "1" {
		t.Skip("end-to-end tests: set V6B_E2E=1 (as root, after scripts/install-deps.sh)")
	}
	if os.Geteuid() != 0 {
		t.Fatal("V6B_E2E=1: the end-to-end tests need root (network and mount namespaces, engines)")
	}
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	tools := getenv("V6B_TOOLS", "/opt/v6bridge-tools/bin")
	var missing []string
	for _, c := range []string{"bash", "ip", "nsenter", "unshare", "nft", "busybox", "mountpoint"} {
		if _, err := exec.LookPath(c); err != nil {
			missing = append(missing, c)
		}
	}
	for _, f := range []string{"/usr/sbin/dockerd", "/usr/bin/containerd", tools + "/dockerd", tools + "/runc", tools + "/docker-proxy"} {
		if _, err := os.Stat(f); err != nil {
			missing = append(missing, f)
		}
	}
	e := &env{repo: repo, prefix: getenv("V6B_E2E_PREFIX", "e2g"), keep: os.Getenv("V6B_E2E_KEEP") == "1"}
	if len(e.prefix) > 6 {
		t.Fatalf("V6B_E2E_PREFIX %q: at most 6 characters (a variant letter is appended; VPS prefixes have at most 8)", e.prefix)
	}
	if out, err := e.shell(nil, `V6B_DOCKER_CLI= _v6b_cli`); err != nil {
		missing = append(missing, "docker CLI ("+strings.TrimSpace(out)+")")
	} else {
		e.cli = strings.TrimSpace(out)
		if out, err := exec.Command(e.cli, "compose", "version").CombinedOutput(); err != nil {
			missing = append(missing, "docker compose ("+strings.TrimSpace(string(out))+")")
		}
	}
	if len(missing) > 0 {
		t.Fatalf("V6B_E2E=1 but missing: %s (run scripts/install-deps.sh)", strings.Join(missing, ", "))
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	e.bin, e.echo = filepath.Join(dir, "v6bridge"), filepath.Join(dir, "echoserver")
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	for out, pkg := range map[string]string{e.bin: "./cmd/v6bridge", e.echo: "./test/e2e/echoserver"} {
		cmd := exec.Command(gobin, "build", "-trimpath", "-o", out, pkg)
		cmd.Dir, cmd.Env = repo, append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, b)
		}
	}
	return e
}

// runDemo runs test/e2e/demo.sh (what make demo runs) in its own VPS and
// reports each of its failed checks.
func runDemo(t *testing.T, e *env) {
	cmd := exec.Command("bash", filepath.Join(e.repo, "test/e2e/demo.sh"))
	cmd.Env = append(os.Environ(), "V6B_DEMO_PREFIX="+e.prefix+"d", "V6B_BIN="+e.bin, "V6B_ECHOSERVER="+e.echo,
		"V6B_DOCKER_CLI="+e.cli, "V6B_DEMO_KEEP=")
	out, err := cmd.CombinedOutput()
	t.Logf("test/e2e/demo.sh (VPS %sd):\n%s", e.prefix, out)
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "FAIL - ") {
			t.Errorf("demo: %s", sc.Text())
		}
	}
	if err != nil {
		t.Errorf("demo.sh: %v", err)
	}
}
