#!/usr/bin/env bash
# Builds the managed plugin's directory (config.json + rootfs with the
# static binary) and creates the plugin in the engine that DOCKER_HOST (or
# the default socket) names, replacing an existing plugin of that name.
# No registry is involved.
#
# usage: plugin/create.sh NAME BINARY BUILDDIR [STATE_SOURCE]
set -euo pipefail
name=${1:?plugin name, e.g. v6bridge:latest}
bin=${2:?path to the static v6bridge binary}
dir=${3:?build directory}
state=${4:-/var/lib/v6bridge}
top=$(cd "$(dirname "$0")/.." && pwd)
docker=${DOCKER:-docker}

rm -rf "$dir"
mkdir -p "$dir/rootfs"/{run/docker/plugins,var/lib/v6bridge,host/proc/sys/net,etc,tmp}
install -m 0755 "$bin" "$dir/rootfs/v6bridge"
cp "$top/config.json" "$dir/config.json"
# The state mount's source must exist before the plugin is enabled.
mkdir -p "$state"

if $docker plugin inspect "$name" >/dev/null 2>&1; then
	$docker plugin disable -f "$name" >/dev/null 2>&1 || true
	$docker plugin rm -f "$name" >/dev/null
fi
$docker plugin create "$name" "$dir" >/dev/null
if [ "$state" != /var/lib/v6bridge ]; then
	$docker plugin set "$name" state.source="$state"
fi
echo "created plugin $name (state in $state); enable it with: docker plugin enable $name"
