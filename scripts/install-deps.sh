#!/usr/bin/env bash
# Installs everything v6bridge's tests and demo need on a fresh Debian 12, as root.
# Idempotent: a rerun with everything in place is a no-op that takes about a second.
# One output line per item. Go builds run in parallel and are cached in the tools dir,
# keyed by version (V6B_TOOLS, default /opt/v6bridge-tools/bin).
#
#   scripts/install-deps.sh            # everything
#   V6B_CONTAINERD_VERSION=v2.1.4 scripts/install-deps.sh
#                                      # also build containerd v2 for the current engine
#
# containerd: the current engine (moby v2.0.0-beta.24) was checked against Debian's
# containerd 1.6.20 (engine start, docker import, run, an IPv6 bridge network with NAT66
# to an outside host, on cgroup v1): it works, so by default the current engine uses the
# apt containerd and nothing is built. Set V6B_CONTAINERD_VERSION to build containerd +
# its runc shim from the Go module proxy; test/e2e/lib.sh then uses it for the current
# engine (legacy always uses Debian's).
set -euo pipefail

DOCKERD_VERSION=${V6B_DOCKERD_VERSION:-v2.0.0-beta.24}
RUNC_VERSION=${V6B_RUNC_VERSION:-v1.5.2}
COMPOSE_VERSION=${V6B_COMPOSE_VERSION:-v2.40.3}
CONTAINERD_VERSION=${V6B_CONTAINERD_VERSION:-}
# The registry the release e2e test pushes the plugin to and installs it from.
REGISTRY_VERSION=${V6B_REGISTRY_VERSION:-v3.1.2}
TOOLS=${V6B_TOOLS:-/opt/v6bridge-tools/bin}
CLI_PLUGINS=${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins

APT_PACKAGES=(docker.io containerd runc busybox-static nftables iproute2 iptables
	libseccomp-dev pkg-config jq iperf3 ndppd gcc libc6-dev procps util-linux ca-certificates
	python3) # iperf3, ndppd, python3 (its report): make bench, which installs nothing itself
# make test-kernelvm (V6B_KERNELVM=1): kernel tests under Debian's kernel (flowtables)
[ "${V6B_KERNELVM:-0}" != 1 ] || APT_PACKAGES+=(qemu-system-x86 linux-image-amd64 cpio kmod)

say() { printf '%-28s %s\n' "$1" "$2"; }

[ "$(id -u)" -eq 0 ] || { echo "install-deps: run as root" >&2; exit 1; }

# 1. no daemon may start from apt: policy-rc.d before docker.io/containerd are installed
if [ "$(cat /usr/sbin/policy-rc.d 2>/dev/null)" != "$(printf '#!/bin/sh\nexit 101')" ]; then
	printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
	chmod 0755 /usr/sbin/policy-rc.d
	say policy-rc.d "created (apt starts no daemons)"
else
	say policy-rc.d "ok"
fi

# 2. apt packages; `apt-get update` only when something is missing
missing=()
for p in "${APT_PACKAGES[@]}"; do
	if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		say "apt $p" ok
	else
		missing+=("$p")
	fi
done
if [ "${#missing[@]}" -gt 0 ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	for p in "${missing[@]}"; do say "apt $p" installed; done
fi

command -v go >/dev/null || { echo "install-deps: go is required (Go module proxy builds)" >&2; exit 1; }

# 3. Go builds, each into $TOOLS/.v/<item>@<version>/ (GOBIN), linked into $TOOLS.
mkdir -p "$TOOLS/.v" "$TOOLS/.logs"

# build ITEM VERSION "EXE..." COMMAND...: runs COMMAND with GOBIN=<versioned dir> unless done.
# Prints the item's line when finished; meant to run in the background.
build() {
	local item=$1 ver=$2 exes=$3 dir="$TOOLS/.v/$1@$2" log="$TOOLS/.logs/$1@$2.log" e t0=$SECONDS
	shift 3
	if [ -f "$dir/.done" ]; then
		for e in $exes; do ln -sfn ".v/$item@$ver/$e" "$TOOLS/$e"; done
		say "$item $ver" "ok (cached in $dir)"
		return 0
	fi
	rm -rf "$dir"
	mkdir -p "$dir"
	if (cd "$dir" && GOBIN=$dir "$@") >"$log" 2>&1; then
		for e in $exes; do
			[ -x "$dir/$e" ] || { say "$item $ver" "FAILED: no $e (see $log)"; return 1; }
			ln -sfn ".v/$item@$ver/$e" "$TOOLS/$e"
		done
		touch "$dir/.done"
		say "$item $ver" "built in $((SECONDS - t0))s"
	else
		say "$item $ver" "FAILED (see $log)"
		tail -n 20 "$log" >&2
		return 1
	fi
}

build_compose() {
	local src="$TOOLS/.v/compose@$COMPOSE_VERSION/src"
	mkdir -p "$src"
	cd "$src"
	[ -f go.mod ] || go mod init scratch
	go get "github.com/docker/compose/v2/cmd@$COMPOSE_VERSION"
	go build -o "$GOBIN/docker-compose" \
		-ldflags "-s -w -X github.com/docker/compose/v2/internal.Version=$COMPOSE_VERSION" \
		github.com/docker/compose/v2/cmd
	rm -rf "$src"
}
# containerd's go.mod has exclude directives, so `go install pkg@version` refuses it:
# build it from a scratch module too.
build_containerd() {
	local src="$TOOLS/.v/containerd@$CONTAINERD_VERSION/src" m=github.com/containerd/containerd/v2
	mkdir -p "$src"
	cd "$src"
	[ -f go.mod ] || go mod init scratch
	go get "$m/cmd/containerd@$CONTAINERD_VERSION" "$m/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION" \
		"$m/cmd/ctr@$CONTAINERD_VERSION"
	CGO_ENABLED=1 go build -tags no_btrfs -o "$GOBIN/" \
		-ldflags "-X $m/version.Version=$CONTAINERD_VERSION" \
		"$m/cmd/containerd" "$m/cmd/containerd-shim-runc-v2" "$m/cmd/ctr"
	rm -rf "$src"
}
export -f build_compose build_containerd
export COMPOSE_VERSION CONTAINERD_VERSION TOOLS

pids=()
build dockerd "$DOCKERD_VERSION" "dockerd docker-proxy" \
	go install -ldflags "-X github.com/moby/moby/v2/dockerversion.Version=${DOCKERD_VERSION#v} -X github.com/moby/moby/v2/dockerversion.GitCommit=$DOCKERD_VERSION" \
	"github.com/moby/moby/v2/cmd/dockerd@$DOCKERD_VERSION" \
	"github.com/moby/moby/v2/cmd/docker-proxy@$DOCKERD_VERSION" &
pids+=($!)
build runc "$RUNC_VERSION" runc \
	env CGO_ENABLED=1 go install -tags seccomp "github.com/opencontainers/runc@$RUNC_VERSION" &
pids+=($!)
build compose "$COMPOSE_VERSION" docker-compose bash -c build_compose &
pids+=($!)
build registry "$REGISTRY_VERSION" registry \
	env CGO_ENABLED=0 go install "github.com/distribution/distribution/v3/cmd/registry@$REGISTRY_VERSION" &
pids+=($!)
if [ -n "$CONTAINERD_VERSION" ]; then
	build containerd "$CONTAINERD_VERSION" "containerd containerd-shim-runc-v2 ctr" \
		bash -c build_containerd &
	pids+=($!)
else
	rm -f "$TOOLS/containerd" "$TOOLS/containerd-shim-runc-v2" "$TOOLS/ctr"
	say containerd "apt $(dpkg-query -W -f='${Version}' containerd) (works with the current engine)"
fi
rc=0
for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
[ "$rc" -eq 0 ] || exit 1

# 4. compose as a docker CLI plugin
mkdir -p "$CLI_PLUGINS"
if cmp -s "$TOOLS/docker-compose" "$CLI_PLUGINS/docker-compose"; then
	say "compose cli-plugin" "ok ($CLI_PLUGINS/docker-compose)"
else
	install -m 0755 "$TOOLS/docker-compose" "$CLI_PLUGINS/docker-compose"
	say "compose cli-plugin" "installed ($CLI_PLUGINS/docker-compose)"
fi

# 5. the docker CLI the tests use: the newest one present (28.x if installed, else apt's)
best=""
for c in /usr/local/bin/docker /usr/bin/docker; do
	[ -x "$c" ] || continue
	v=$("$c" --version | sed -n 's/^Docker version \([0-9.]*\).*/\1/p')
	if [ -z "$best" ] || [ "$(printf '%s\n%s\n' "$bestv" "$v" | sort -V | tail -n1)" != "$bestv" ]; then best=$c bestv=$v; fi
done
say "docker CLI" "$best ($bestv)"
