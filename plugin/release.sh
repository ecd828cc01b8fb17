#!/usr/bin/env bash
# Builds the managed plugin for several architectures and pushes it to a
# registry. Plugin images have no manifest lists, so every architecture
# gets its own tag: REGISTRY/v6bridge:TAG-ARCH. build also leaves the
# static v6bridge command for the host beside them,
# OUTDIR/v6bridge-TAG-linux-ARCH, with their SHA-256 sums in
# OUTDIR/SHA256SUMS (sha256sum -c): managed-plugin users run status, gc
# and doctor with it.
#
#   plugin/release.sh build TAG OUTDIR [ARCH...]       # default: amd64 arm64
#   plugin/release.sh push  REGISTRY TAG OUTDIR [ARCH...]
#
# build needs only Go; push needs an engine (DOCKER_HOST or the default
# socket, the docker CLI as $DOCKER or docker): it creates each plugin
# locally from OUTDIR/ARCH, pushes it and removes the local copy again.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
docker=${DOCKER:-docker}
go=${GO:-go}

build() {
	local tag=${1:?tag} out=${2:?output directory} arch
	shift 2
	[ $# -gt 0 ] || set -- amd64 arm64
	for arch in "$@"; do
		local dir=$out/$arch
		rm -rf "$dir"
		mkdir -p "$dir/rootfs"/{run/docker/plugins,var/lib/v6bridge,host/proc,etc,tmp}
		(cd "$top" && CGO_ENABLED=0 GOOS=linux GOARCH=$arch $go build -trimpath \
			-ldflags "-s -w -X main.version=$tag" -o "$dir/rootfs/v6bridge" ./cmd/v6bridge)
		cp "$top/config.json" "$dir/config.json"
		cp "$dir/rootfs/v6bridge" "$out/v6bridge-$tag-linux-$arch"
		echo "built $dir and $out/v6bridge-$tag-linux-$arch ($arch, version $tag)"
	done
	(cd "$out" && sha256sum "v6bridge-$tag-linux-"* >SHA256SUMS)
	echo "wrote $out/SHA256SUMS"
}

push() {
	local registry=${1:?registry, e.g. registry.example.com/you or localhost:5000} tag=${2:?tag} out=${3:?build directory} arch
	shift 3
	[ $# -gt 0 ] || set -- amd64 arm64
	for arch in "$@"; do
		local ref=$registry/v6bridge:$tag-$arch
		[ -f "$out/$arch/config.json" ] || { echo "no build in $out/$arch: run plugin/release.sh build first" >&2; return 1; }
		$docker plugin rm -f "$ref" >/dev/null 2>&1 || true
		$docker plugin create "$ref" "$out/$arch" >/dev/null
		$docker plugin push "$ref" >/dev/null
		$docker plugin rm -f "$ref" >/dev/null
		echo "pushed $ref"
	done
}

cmd=${1:-}
shift || true
case $cmd in
build) build "$@" ;;
push) push "$@" ;;
*) echo "usage: $0 build TAG OUTDIR [ARCH...] | push REGISTRY TAG OUTDIR [ARCH...]" >&2; exit 2 ;;
esac
