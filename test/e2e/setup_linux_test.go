package e2e

import (
	"fmt"
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
	for _, c := range []string{"bash", "ip", "nsenter", "chroot", "tar", "python3", "unshare", "nft", "busybox", "mountpoint"} {
		if _, err := exec.LookPath(c); err != nil {
			missing = append(missing, c)
		}
	}
	for _, f := range []string{"/usr/sbin/dockerd", "/usr/bin/containerd", tools + "/dockerd", tools + "/runc", tools + "/docker-proxy", getenv("V6B_REGISTRY", tools+"/registry")} {
		if _, err := os.Stat(f); err != nil {
			missing = append(missing, f)
		}
	}
	e := &env{repo: repo, prefix: getenv("V6B_E2E_PREFIX", "e2g"), keep: os.Getenv("V6B_E2E_KEEP") == "1"}
	if len(e.prefix) > 5 {
		t.Fatalf("V6B_E2E_PREFIX %q: at most 5 characters (variant and group letters are appended, up to 3 for the swarm; VPS prefixes have at most 8)", e.prefix)
	}
	if cli, err := dockerCLI(tools); err != nil {
		missing = append(missing, "docker CLI ("+err.Error()+")")
	} else {
		e.cli = cli
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
	e.prom = filepath.Join(dir, "promcheck")
	for out, pkg := range map[string]string{e.bin: "./cmd/v6bridge", e.echo: "./test/e2e/echoserver", e.prom: "./test/e2e/promcheck"} {
		cmd := exec.Command(gobin, "build", "-trimpath", "-o", out, pkg)
		cmd.Dir, cmd.Env = repo, append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, b)
		}
	}
	return e
}

// dockerCLI is V6B_DOCKER_CLI or the newest docker CLI found (28.x talks
// to both engines and knows --ipv4=false).
func dockerCLI(tools string) (string, error) {
	if c := os.Getenv("V6B_DOCKER_CLI"); c != "" {
		return c, nil
	}
	best, bestv := "", ""
	for _, c := range []string{"/usr/local/bin/docker", "/usr/bin/docker", tools + "/docker"} {
		out, err := exec.Command(c, "--version").Output()
		if err != nil {
			continue
		}
		// "Docker version 28.5.1, build ..."
		f := strings.Fields(string(out))
		if len(f) < 3 {
			continue
		}
		v := strings.TrimSuffix(f[2], ",")
		if best == "" || !versionAtLeast(bestv, v) {
			best, bestv = c, v
		}
	}
	if best == "" {
		return "", fmt.Errorf("none found")
	}
	return best, nil
}
