package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// The rig's directories (lib.sh uses the same, so the shell rig of
// bench/bench.sh and this one clean up after each other).
const (
	runRoot   = "/run/v6b-e2e"
	libRoot   = "/var/lib/v6b-e2e"
	cacheRoot = "/var/cache/v6b-e2e"
	routerAdr = "2001:db8:1234:a1::fffe"
	routerIn  = "2001:db8:ffff::1"
)

// vps is one simulated IPv6-only host (in the style of moby's
// testutil/daemon): namespaces P-vps (the Docker host), P-router (the
// provider) and P-inet (the internet), a private mount namespace for the
// engine, the engine (containerd + dockerd) and its logs. Nothing of it
// touches the root network namespace.
type vps struct {
	name   string // the prefix P, at most 8 characters
	cli    string // docker CLI
	router string // the VPS whose router this one hangs off ("" for its own)
	kind   string // engine kind: legacy or current
	flags  []string

	containerd, dockerd *proc
}

// proc is a process the rig started and reaps.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// stop sends TERM, waits up to wait, then KILL.
func (p *proc) stop(wait time.Duration) {
	if p == nil || !p.alive() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(wait):
		p.cmd.Process.Kill()
		<-p.done
	}
}

func newVPS(name, cli string) *vps { return &vps{name: name, cli: cli} }

func (v *vps) runDir() string     { return filepath.Join(runRoot, v.name) }
func (v *vps) libDir() string     { return filepath.Join(libRoot, v.name) }
func (v *vps) logDir() string     { return filepath.Join(v.libDir(), "logs") }
func (v *vps) mntns() string      { return filepath.Join(v.runDir(), "ns", "mnt") }
func (v *vps) ns(n string) string { return v.name + "-" + n }
func (v *vps) sock() string       { return filepath.Join(v.runDir(), "docker.sock") }

// run runs a command and returns its trimmed combined output; the error
// carries it.
func run(name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	s := strings.TrimSpace(out.String())
	if err != nil {
		return s, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, s)
	}
	return s, nil
}

// steps runs commands in order and stops at the first error.
func steps(cmds ...[]string) error {
	for _, c := range cmds {
		if _, err := run(c[0], c[1:]...); err != nil {
			return err
		}
	}
	return nil
}

func nsExists(n string) bool { _, err := os.Stat("/run/netns/" + n); return err == nil }

// up creates the three namespaces and their links: eth0
// 2001:db8:1234:a1::1/64 in P-vps, default via the router; the router
// forwards to P-inet (2001:db8:ffff::10). DAD is off everywhere. It
// removes what a previous run left first.
func (v *vps) up() error {
	if len(v.name) > 8 {
		return fmt.Errorf("VPS prefix %q: at most 8 characters", v.name)
	}
	v.down()
	var cmds [][]string
	for _, n := range []string{"vps", "router", "inet"} {
		cmds = append(cmds, []string{"ip", "netns", "add", v.ns(n)},
			[]string{"ip", "-n", v.ns(n), "link", "set", "lo", "up"},
			[]string{"ip", "netns", "exec", v.ns(n), "sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0", "net.ipv6.conf.all.accept_dad=0"})
	}
	r := v.ns("router")
	cmds = append(cmds,
		[]string{"ip", "-n", v.ns("vps"), "link", "add", "eth0", "type", "veth", "peer", "name", "vps0", "netns", r},
		[]string{"ip", "-n", v.ns("inet"), "link", "add", "eth0", "type", "veth", "peer", "name", "inet0", "netns", r},
		[]string{"ip", "netns", "exec", r, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"},
		[]string{"ip", "-n", r, "addr", "add", routerAdr + "/64", "dev", "vps0", "nodad"},
		[]string{"ip", "-n", r, "addr", "add", routerIn + "/64", "dev", "inet0", "nodad"},
		[]string{"ip", "-n", v.ns("vps"), "addr", "add", hostAddr + "/64", "dev", "eth0", "nodad"},
		[]string{"ip", "-n", v.ns("inet"), "addr", "add", inetAddr + "/64", "dev", "eth0", "nodad"},
		[]string{"ip", "-n", v.ns("vps"), "link", "set", "eth0", "up"},
		[]string{"ip", "-n", r, "link", "set", "vps0", "up"},
		[]string{"ip", "-n", r, "link", "set", "inet0", "up"},
		[]string{"ip", "-n", v.ns("inet"), "link", "set", "eth0", "up"},
		[]string{"ip", "-n", v.ns("vps"), "-6", "route", "add", "default", "via", routerAdr, "dev", "eth0"},
		[]string{"ip", "-n", v.ns("inet"), "-6", "route", "add", "default", "via", routerIn, "dev", "eth0"},
	)
	if err := steps(cmds...); err != nil {
		return fmt.Errorf("VPS %s: %w", v.name, err)
	}
	return errors.Join(os.MkdirAll(v.runDir(), 0o755), os.MkdirAll(v.logDir(), 0o755))
}

// addBehind creates this VPS as a second host behind router's provider
// router, on a link of its own with its own /64 (2001:db8:1234:LAN::1,
// the router's side named vps-Q). Only namespace Q-vps exists; Q-router
// and Q-inet are router's.
func (v *vps) addBehind(router *vps, lan string) error {
	v.down()
	v.router = router.name
	addr, gw, rif, r := "2001:db8:1234:"+lan+"::1", "2001:db8:1234:"+lan+"::fffe", "vps-"+v.name, router.ns("router")
	err := steps(
		[]string{"ip", "netns", "add", v.ns("vps")},
		[]string{"ip", "-n", v.ns("vps"), "link", "set", "lo", "up"},
		[]string{"ip", "netns", "exec", v.ns("vps"), "sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0", "net.ipv6.conf.all.accept_dad=0"},
		[]string{"ip", "-n", v.ns("vps"), "link", "add", "eth0", "type", "veth", "peer", "name", rif, "netns", r},
		[]string{"ip", "-n", r, "addr", "add", gw + "/64", "dev", rif, "nodad"},
		[]string{"ip", "-n", v.ns("vps"), "addr", "add", addr + "/64", "dev", "eth0", "nodad"},
		[]string{"ip", "-n", v.ns("vps"), "link", "set", "eth0", "up"},
		[]string{"ip", "-n", r, "link", "set", rif, "up"},
		[]string{"ip", "-n", v.ns("vps"), "-6", "route", "add", "default", "via", gw, "dev", "eth0"},
	)
	if err != nil {
		return fmt.Errorf("VPS %s behind %s: %w", v.name, router.name, err)
	}
	return errors.Join(os.MkdirAll(v.runDir(), 0o755), os.MkdirAll(v.logDir(), 0o755))
}

// down stops the engine and everything running in the namespaces, then
// removes them and the VPS's state (logs stay). Idempotent.
func (v *vps) down() {
	v.engineDown()
	names := []string{"inet", "router", "vps"}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		for _, n := range names {
			if out, err := run("ip", "netns", "pids", v.ns(n)); err == nil {
				for _, f := range strings.Fields(out) {
					var pid int
					fmt.Sscan(f, &pid)
					if pid > 0 && pid != os.Getpid() {
						syscall.Kill(pid, sig)
					}
				}
			}
		}
	}
	for _, n := range names {
		if nsExists(v.ns(n)) {
			run("ip", "netns", "del", v.ns(n))
		}
	}
	v.mntnsDown()
	if ents, err := os.ReadDir(v.libDir()); err == nil {
		for _, e := range ents {
			if e.Name() != "logs" {
				os.RemoveAll(filepath.Join(v.libDir(), e.Name()))
			}
		}
	}
	os.RemoveAll(v.runDir())
	os.Remove(runRoot)
}

// mntnsUp creates the VPS's private mount namespace, kept by a bind-mounted
// ns file: its own tmpfs on /run/docker, /etc/docker, /run/containerd and
// a sysfs of P-vps, so two engines (and host-service plugin sockets) never
// see each other's.
func (v *vps) mntnsUp() error {
	if _, err := run("nsenter", "--mount="+v.mntns(), "true"); err == nil {
		return nil
	}
	d := filepath.Join(v.runDir(), "ns")
	if err := os.MkdirAll(d, 0o755); err != nil {
		return err
	}
	if _, err := run("mountpoint", "-q", d); err != nil {
		if _, err := run("mount", "--bind", d, d); err != nil {
			return err
		}
	}
	if _, err := run("mount", "--make-private", d); err != nil {
		return err
	}
	if err := os.WriteFile(v.mntns(), nil, 0o644); err != nil {
		return err
	}
	for _, dir := range []string{"/run/docker", "/etc/docker", "/run/containerd"} {
		if _, err := os.Stat(dir); os.IsNotExist(err) {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(filepath.Join(runRoot, "created-dirs"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
			if err != nil {
				return err
			}
			fmt.Fprintln(f, dir)
			f.Close()
		}
	}
	_, err := run("nsenter", "--net=/run/netns/"+v.ns("vps"), "unshare", "--mount="+v.mntns(), "--propagation", "private", "sh", "-euc", `
		for dir in /run/docker /etc/docker /run/containerd; do
			mount -t tmpfs -o mode=0755 v6b-e2e "$dir"
		done
		cg=$1/ns-cg
		mkdir -p "$cg"
		mount --rbind /sys/fs/cgroup "$cg"
		mount -t sysfs sysfs /sys
		mount --move "$cg" /sys/fs/cgroup
		rmdir "$cg"`, "sh", v.runDir())
	return err
}

func (v *vps) mntnsDown() {
	d := filepath.Join(v.runDir(), "ns")
	for _, m := range []string{v.mntns(), d} {
		if _, err := run("mountpoint", "-q", m); err == nil {
			if _, err := run("umount", m); err != nil {
				run("umount", "-l", m)
			}
		}
	}
	os.Remove(v.mntns())
	// host mount points created for the private mounts, once no VPS uses them
	if !mntnsInUse() {
		if b, err := os.ReadFile(filepath.Join(runRoot, "created-dirs")); err == nil {
			for _, dir := range strings.Fields(string(b)) {
				os.Remove(dir)
			}
			os.Remove(filepath.Join(runRoot, "created-dirs"))
		}
	}
}

// mntnsInUse tells whether any VPS's mount namespace file is mounted.
func mntnsInUse() bool {
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	for _, l := range strings.Split(string(mi), "\n") {
		if f := strings.Fields(l); len(f) > 4 && strings.HasPrefix(f[4], runRoot+"/") && strings.HasSuffix(f[4], "/ns/mnt") {
			return true
		}
	}
	return false
}

// inVPSCmd is cmd run in the VPS's network and private mount namespaces
// (where the engine runs).
func (v *vps) inVPSCmd(args ...string) *exec.Cmd {
	ns := []string{"--net=/run/netns/" + v.ns("vps")}
	if _, err := os.Stat(v.mntns()); err == nil {
		ns = append(ns, "--mount="+v.mntns())
	}
	return exec.Command("nsenter", append(append(ns, "--"), args...)...)
}

// inVPS runs a command in the VPS's namespaces and returns its output.
func (v *vps) inVPS(args ...string) (string, error) {
	cmd := v.inVPSCmd(args...)
	out, err := cmd.CombinedOutput()
	s := strings.TrimSpace(string(out))
	if err != nil {
		return s, fmt.Errorf("in VPS %s: %s: %w: %s", v.name, strings.Join(args, " "), err, s)
	}
	return s, nil
}

// in runs a command in namespace P-n (vps, router, inet).
func (v *vps) in(n string, args ...string) (string, error) {
	return run("ip", append([]string{"netns", "exec", v.ns(n)}, args...)...)
}

// start runs cmd in the background with its output appended to log.
func start(cmd *exec.Cmd, log string) (*proc, error) {
	f, err := os.OpenFile(log, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, err
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); f.Close(); close(p.done) }()
	return p, nil
}

const toolsDir = "/opt/v6bridge-tools/bin"

// engineUp starts containerd and dockerd of kind (legacy: Debian's
// docker.io 20.10; current: moby v2 + runc 1.5) in the VPS with extra
// dockerd flags, and waits until the engine answers.
func (v *vps) engineUp(kind string, flags ...string) error {
	if v.dockerd != nil && v.dockerd.alive() {
		return fmt.Errorf("engine of %s already running (%s); stop it first", v.name, v.kind)
	}
	path := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	dockerd, ctrd := "/usr/sbin/dockerd", "/usr/bin/containerd"
	var extra []string
	switch kind {
	case "legacy":
	case "current":
		dockerd, path = toolsDir+"/dockerd", toolsDir+":"+path
		if _, err := os.Stat(toolsDir + "/containerd"); err == nil {
			ctrd = toolsDir + "/containerd"
		}
		extra = []string{"--add-runtime", "v6brunc=" + toolsDir + "/runc", "--default-runtime", "v6brunc"}
	default:
		return fmt.Errorf("engine kind %q: want legacy or current", kind)
	}
	for _, f := range flags {
		if f == "--firewall-backend=nftables" {
			// dockerd then sets no forwarding sysctl and refuses its default
			// IPv4 bridge without ip_forward (the VPS has no IPv4 uplink)
			if _, err := v.in("vps", "sysctl", "-qw", "net.ipv4.ip_forward=1"); err != nil {
				return err
			}
		}
	}
	v.engineDown()
	v.kind, v.flags = kind, flags
	if err := v.mntnsUp(); err != nil {
		return fmt.Errorf("private mount namespace of %s: %w", v.name, err)
	}
	d, l := v.runDir(), v.libDir()
	for _, dir := range []string{d + "/containerd", l + "/containerd", l + "/docker", v.logDir()} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	conf := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "%s/containerd/containerd.sock"
[ttrpc]
  address = "%s/containerd/containerd.sock.ttrpc"
[debug]
  address = "%s/containerd/debug.sock"
`, l+"/containerd", d+"/containerd/state", d, d, d)
	if err := os.WriteFile(d+"/containerd.toml", []byte(conf), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(d+"/daemon.json", []byte("{}\n"), 0o644); err != nil {
		return err
	}
	var err error
	v.containerd, err = start(v.inVPSCmd("env", "PATH="+path, ctrd, "--config", d+"/containerd.toml"), v.logDir()+"/containerd.log")
	if err != nil {
		return err
	}
	err = eventually(30*time.Second, func() error {
		if !v.containerd.alive() {
			return fmt.Errorf("containerd exited: %s", tail(v.logDir()+"/containerd.log", 20))
		}
		_, err := os.Stat(d + "/containerd/containerd.sock")
		return err
	})
	if err != nil {
		return fmt.Errorf("containerd of %s: %w", v.name, err)
	}
	args := append([]string{"env", "PATH=" + path, dockerd,
		"--containerd", d + "/containerd/containerd.sock",
		"--data-root", l + "/docker", "--exec-root", d + "/exec", "--pidfile", d + "/dockerd.pid",
		"--host", "unix://" + v.sock(), "--config-file", d + "/daemon.json",
		"--cgroup-parent", "v6b-e2e-" + v.name}, extra...)
	os.WriteFile(d+"/dockerd.cmd", []byte(strings.Join(append(args, flags...), "\x00")), 0o644)
	return v.dockerdStart(append(args, flags...))
}

func (v *vps) dockerdStart(args []string) error {
	var err error
	v.dockerd, err = start(v.inVPSCmd(args...), v.logDir()+"/dockerd.log")
	if err != nil {
		return err
	}
	err = eventually(3*time.Minute, func() error {
		if !v.dockerd.alive() {
			return errors.New("dockerd exited")
		}
		_, err := v.docker("info", "--format", "{{.ID}}")
		return err
	})
	if err != nil {
		return fmt.Errorf("engine %s of %s did not answer: %w\n--- dockerd log:\n%s\n--- containerd log:\n%s",
			v.kind, v.name, err, tail(v.logDir()+"/dockerd.log", 40), tail(v.logDir()+"/containerd.log", 10))
	}
	return nil
}

// engineRestart restarts dockerd only, with the same flags: containerd,
// the private mounts and host services keep running; restart=always
// containers come back.
func (v *vps) engineRestart() error {
	b, err := os.ReadFile(v.runDir() + "/dockerd.cmd")
	if err != nil {
		return fmt.Errorf("no engine of %s to restart: %w", v.name, err)
	}
	v.dockerd.stop(30 * time.Second)
	return v.dockerdStart(strings.Split(string(b), "\x00"))
}

// engineDown stops dockerd, containerd, then whatever the engine left
// (shims, containers, plugins: in its cgroup parent or its mount
// namespace), and drops the private mounts. Idempotent.
func (v *vps) engineDown() {
	v.dockerd.stop(30 * time.Second)
	v.containerd.stop(15 * time.Second)
	v.dockerd, v.containerd = nil, nil
	cgs := v.cgroups()
	for _, cg := range cgs {
		filepath.Walk(cg, func(p string, fi os.FileInfo, err error) error {
			if err == nil && fi.Name() == "cgroup.procs" {
				b, _ := os.ReadFile(p)
				for _, f := range strings.Fields(string(b)) {
					var pid int
					fmt.Sscan(f, &pid)
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
			return nil
		})
	}
	if fi, err := os.Stat(v.mntns()); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Dev != 0 {
			var ino syscall.Stat_t
			if syscall.Stat(v.mntns(), &ino) == nil {
				want := fmt.Sprintf("mnt:[%d]", ino.Ino)
				procs, _ := filepath.Glob("/proc/[0-9]*/ns/mnt")
				for _, p := range procs {
					if l, err := os.Readlink(p); err == nil && l == want {
						var pid int
						fmt.Sscan(strings.Split(p, "/")[2], &pid)
						if pid != os.Getpid() {
							syscall.Kill(pid, syscall.SIGKILL)
						}
					}
				}
			}
		}
	}
	for _, cg := range cgs {
		eventually(5*time.Second, func() error {
			rmTree(cg)
			if _, err := os.Stat(cg); err == nil {
				return errors.New("cgroup busy")
			}
			return nil
		})
	}
	v.mntnsDown()
	os.Remove(v.sock())
	os.Remove(v.runDir() + "/dockerd.cmd")
}

// cgroups are the engine's cgroup parents (v6b-e2e-P) anywhere in the tree.
func (v *vps) cgroups() []string {
	var out []string
	want := "v6b-e2e-" + v.name
	root := "/sys/fs/cgroup"
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if strings.Count(strings.TrimPrefix(p, root), "/") > 6 {
			return filepath.SkipDir
		}
		if d.Name() == want {
			out = append(out, p)
			return filepath.SkipDir
		}
		return nil
	})
	return out
}

// rmTree removes a cgroup directory tree, deepest first.
func rmTree(dir string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.IsDir() {
			rmTree(filepath.Join(dir, e.Name()))
		}
	}
	os.Remove(dir)
}

// docker runs the docker CLI against this VPS's engine.
func (v *vps) docker(args ...string) (string, error) { return v.dockerEnv(nil, args...) }

func (v *vps) dockerEnv(extra []string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, v.cli, args...)
	cmd.Env = append(append(os.Environ(), "DOCKER_HOST=unix://"+v.sock()), extra...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	s := strings.TrimSpace(out.String())
	if err != nil {
		return s, fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, s)
	}
	return s, nil
}

// imageImport imports busybox:latest from a busybox-static rootfs (the tar
// is built once and cached).
func (v *vps) imageImport() error {
	if _, err := v.docker("image", "inspect", "busybox:latest"); err == nil {
		return nil
	}
	tar, err := busyboxTar()
	if err != nil {
		return err
	}
	_, err = v.docker("import", "-c", `CMD ["sh"]`, tar, "busybox:latest")
	return err
}

func busyboxTar() (string, error) {
	bb, err := exec.LookPath("busybox")
	if err != nil {
		return "", fmt.Errorf("busybox missing (run scripts/install-deps.sh): %w", err)
	}
	ver, err := run("dpkg-query", "-W", "-f=${Version}", "busybox-static")
	if err != nil || ver == "" {
		fi, _ := os.Stat(bb)
		ver = fmt.Sprint(fi.Size(), fi.ModTime().Unix())
	}
	tar := filepath.Join(cacheRoot, "busybox-rootfs-"+ver+".tar")
	if fi, err := os.Stat(tar); err == nil && fi.Size() > 0 {
		return tar, nil
	}
	if err := os.MkdirAll(cacheRoot, 0o755); err != nil {
		return "", err
	}
	root, err := os.MkdirTemp(cacheRoot, "rootfs.")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(root)
	os.Chmod(root, 0o755)
	for _, d := range []string{"bin", "sbin", "usr/bin", "usr/sbin", "etc", "root", "proc", "sys", "dev", "tmp", "var/www", "run"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	os.Chmod(root+"/tmp", 0o1777|os.ModeSticky)
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
		"etc/group":  "root:x:0:\nnobody:x:65534:\n",
		"etc/hosts":  "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
	}
	for f, s := range files {
		if err := os.WriteFile(filepath.Join(root, f), []byte(s), 0o644); err != nil {
			return "", err
		}
	}
	err = steps([]string{"cp", bb, root + "/bin/busybox"}, []string{"chmod", "1777", root + "/tmp"},
		[]string{"chroot", root, "/bin/busybox", "--install", "-s"},
		[]string{"tar", "--numeric-owner", "--owner=0", "--group=0", "-C", root, "-cf", tar + ".tmp", "."})
	if err != nil {
		return "", err
	}
	return tar, os.Rename(tar+".tmp", tar)
}

// tail is the last n lines of a file.
func tail(file string, n int) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return err.Error()
	}
	return tailLines(strings.TrimRight(string(b), "\n"), n)
}

// hostService is v6bridge run as a host service in the VPS (found by the
// engine by its bare name, socket /run/docker/plugins/v6bridge.sock).
type hostService struct {
	p     *proc
	state string
}

// startHostService starts bin serve in the VPS with state dir state and
// waits for its socket.
func (v *vps) startHostService(bin, state string) (*hostService, error) {
	if err := os.MkdirAll(state, 0o755); err != nil {
		return nil, err
	}
	p, err := start(v.inVPSCmd(bin, "serve", "--state-dir", state, "--log-level", "debug"), v.logDir()+"/v6bridge-service.log")
	if err != nil {
		return nil, err
	}
	sock := fmt.Sprintf("/proc/%d/root/run/docker/plugins/v6bridge.sock", p.cmd.Process.Pid)
	err = eventually(10*time.Second, func() error {
		if !p.alive() {
			return fmt.Errorf("v6bridge serve exited: %s", tail(v.logDir()+"/v6bridge-service.log", 10))
		}
		_, err := os.Stat(sock)
		return err
	})
	if err != nil {
		p.stop(5 * time.Second)
		return nil, err
	}
	return &hostService{p: p, state: state}, nil
}

func (h *hostService) stop() {
	if h != nil {
		h.p.stop(10 * time.Second)
	}
}
