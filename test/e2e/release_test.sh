#!/usr/bin/env bash
# End-to-end: the plugin as users get it. A real registry (distribution v3)
# runs in the VPS on localhost:5000; the plugin is pushed there per
# architecture, installed from it with `docker plugin install`, a network
# and a public container are created, and the plugin is upgraded to a
# second version with the network in use (disable -f, upgrade, enable)
# while the internet pings the container at 5/s. The container keeps its
# address and connectivity, the state directory is kept, and the loss is
# reported and held to at most 1 %.
#
#   test/e2e/release_test.sh legacy|current    (as root, after make build)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"
# shellcheck source=checks.sh
source "$here/checks.sh"

KIND=${1:?usage: release_test.sh legacy|current}
case $KIND in
legacy | current) P=${V6B_PREFIX:-e2er}${KIND:0:1} ;;
*) echo "unknown engine $KIND: want legacy or current" >&2; exit 2 ;;
esac
[ "${#P}" -le 8 ] || { echo "prefix $P too long" >&2; exit 2; }
REGISTRY_BIN=${V6B_REGISTRY:-/opt/v6bridge-tools/bin/registry}
REG=localhost:5000
PLUGIN=v6bridge:latest # the alias: the driver name networks keep across upgrades
STATE=$V6B_LIB/$P/v6bridge-release-state
BUILD=$V6B_LIB/$P/release
BIN=$repo/bin/v6bridge
D=$PLUGIN
PUBLIC=2001:db8:1234:a1:1::/112
PUBADDR=2001:db8:1234:a1:1::80
MAX_LOSS_PCT=${V6B_MAX_UPGRADE_LOSS_PCT:-1}

cleanup() {
	local rc=$?
	if [ "$rc" -ne 0 ] || [ "${V6B_KEEP_LOGS:-0}" = 1 ]; then dump_logs || true; fi
	[ -f "$V6B_RUN/$P/registry.pid" ] && kill "$(cat "$V6B_RUN/$P/registry.pid")" 2>/dev/null
	vps_down "$P" || true
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "# release: registry, install and upgrade on the $KIND engine"
T0=$SECONDS
[ -x "$REGISTRY_BIN" ] || { echo "no registry at $REGISTRY_BIN: run scripts/install-deps.sh"; exit 1; }
vps_up "$P"
engine_up "$P" "$KIND"
image_import "$P"
echo "# engine $(engine_version "$P") (API $(engine_api "$P"))"
V4FLAG=()
api_at_least "$P" 1.48 && V4FLAG=(--ipv4=false)

# The registry, inside the VPS's network namespace only.
mkdir -p "$V6B_LIB/$P/registry"
cat >"$V6B_LIB/$P/registry.yml" <<YML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $V6B_LIB/$P/registry
http:
  addr: ":5000"
YML
ip netns exec "$P-vps" "$REGISTRY_BIN" serve "$V6B_LIB/$P/registry.yml" \
	</dev/null >>"$V6B_LIB/$P/logs/registry.log" 2>&1 &
echo $! >"$V6B_RUN/$P/registry.pid"
check "registry answers on $REG" retry 10 ip netns exec "$P-vps" busybox wget -q -O /dev/null "http://$REG/v2/"

# Two versions: the release build (every architecture) and a second amd64
# build that differs only in its version, as an upgrade does.
export DOCKER_HOST="unix://$V6B_RUN/$P/docker.sock"
export DOCKER
DOCKER=$(_v6b_cli)
push_version() { # TAG ARCH...
	local tag=$1
	shift
	bash "$repo/plugin/release.sh" build "$tag" "$BUILD" "$@" >/dev/null &&
		bash "$repo/plugin/release.sh" push "$REG" "$tag" "$BUILD" "$@"
}
check "push v1 for amd64 and arm64 (one tag per architecture)" push_version e2e1 amd64 arm64
tags_listed() {
	local out
	out=$(ip netns exec "$P-vps" busybox wget -q -O - "http://$REG/v2/v6bridge/tags/list") || return 1
	echo "$out" | grep -q '"e2e1-amd64"' && echo "$out" | grep -q '"e2e1-arm64"' || { echo "$out"; return 1; }
}
check "the registry lists both architectures' tags" tags_listed
check "push v2 for amd64" push_version e2e2 amd64

mkdir -p "$STATE"
check "docker plugin install from the registry (alias $PLUGIN, UPLINK, state.source)" \
	dk "$P" plugin install --grant-all-permissions --alias "$PLUGIN" "$REG/v6bridge:e2e1-amd64" \
	UPLINK=eth0 LOG_LEVEL=debug state.source="$STATE"
PLUGIN_ACTIVE=1
# runs_version TAG: the plugin answers on its socket and was installed from TAG.
runs_version() {
	local ref
	in_vps "$P" "$BIN" status --socket "$(plugin_socket)" >/dev/null || return 1
	ref=$(dk "$P" plugin inspect -f '{{.PluginReference}}' "$PLUGIN")
	[ "$ref" = "$REG/v6bridge:$1" ] || { echo "plugin reference $ref, want $REG/v6bridge:$1"; return 1; }
}
check "the installed plugin is v1 and answers" retry 10 runs_version e2e1-amd64
check "its state is in state.source ($STATE)" test -f "$STATE/instance.json"
ID_BEFORE=$(cat "$STATE/instance.json" 2>/dev/null || true)

check "network create public ($PUBLIC, tcp/80 open)" net_create --subnet "$PUBLIC" -o v6bridge.allow=tcp/80 public
check "a public container gets its address" run_web public "$PUBADDR" pubweb
check "the internet reaches it" retry 10 inet_fetch_hello "http://[$PUBADDR]/"

# A second instance (a host service next to the managed plugin) must refuse
# to start, never sweep the plugin's bridge or rewrite its firewall.
second_refused() { # STATE_DIR PATTERN...
	local out dir=$1 pat
	shift
	if out=$(in_vps "$P" timeout 20 "$BIN" serve --state-dir "$dir" --uplink eth0 \
		--socket /run/docker/plugins/v6bridge-second.sock 2>&1); then
		echo "it started: $out"
		return 1
	fi
	for pat in "$@"; do
		echo "$out" | grep -qF -- "$pat" || { echo "no '$pat' in:"; echo "$out" | tail -n 5; return 1; }
	done
}
check "a second instance on the plugin's state directory refuses, naming the first" \
	second_refused "$STATE" "state directory in use by another v6bridge" "v6bridge.sock"
check "a second instance on another state directory refuses, naming the plugin's" \
	second_refused "$V6B_LIB/$P/other-state" "belong to v6bridge instance" "$STATE"
check "the plugin's container is still reached after both" retry 10 inet_fetch_hello "http://[$PUBADDR]/"

# disable -> upgrade -> enable with the network in use, pinged at 5/s.
# Set the plugin's mounts and env again before enable: both engines kept
# them here, but an engine that resets them to the new version's defaults
# (issue 25's report) would start the plugin on /var/lib/v6bridge.
# The pause while disabled stands for the download from a remote registry
# (here it is local and instant). It is long enough for the router to give
# up on the container's neighbour entry if nothing answers NDP meanwhile:
# with 40 s and no hand-over to the kernel, 95 of 245 pings were lost.
PAUSE=${V6B_UPGRADE_PAUSE:-35}
upgrade() {
	dk "$P" plugin disable -f "$PLUGIN" >/dev/null && sleep "$PAUSE" &&
		dk "$P" plugin upgrade --grant-all-permissions --skip-remote-check "$PLUGIN" "$REG/v6bridge:e2e2-amd64" >/dev/null &&
		dk "$P" plugin inspect -f '{{range .Settings.Mounts}}{{.Name}}={{.Source}} {{end}}{{range .Settings.Env}}{{.}} {{end}}' "$PLUGIN" >"$V6B_RUN/$P/upgraded-mounts" &&
		dk "$P" plugin set "$PLUGIN" UPLINK=eth0 LOG_LEVEL=debug state.source="$STATE" &&
		dk "$P" plugin enable "$PLUGIN" >/dev/null
}
# The router re-probes its neighbour entries every second (as busy routers
# do), so a window in which nothing answers NDP for the container shows.
ip netns exec "$P-router" sysctl -qw net.ipv6.neigh.vps0.base_reachable_time_ms=1000
ip netns exec "$P-inet" busybox ping6 -c 1500 -i 0.2 -W 2 "$PUBADDR" >"$V6B_RUN/$P/upgrade-ping.out" 2>&1 &
ping=$!
sleep 2
t0=$SECONDS
check "disable -f, upgrade to v2, set, enable with the network in use" upgrade
echo "# upgrade took $((SECONDS - t0)) s"
sleep 3
kill -INT "$ping" 2>/dev/null || true
wait "$ping" || true
ip netns exec "$P-router" sysctl -qw net.ipv6.neigh.vps0.base_reachable_time_ms=30000
loss_ok() {
	local out sent got lost
	out=$(cat "$V6B_RUN/$P/upgrade-ping.out")
	sent=$(echo "$out" | sed -n 's/^\([0-9]*\) packets transmitted.*/\1/p')
	got=$(echo "$out" | sed -n 's/.* \([0-9]*\) packets received.*/\1/p')
	[ -n "$sent" ] && [ "$sent" -gt 0 ] || { echo "no ping statistics: $out"; return 1; }
	lost=$((sent - got))
	echo "lost $lost of $sent pings (5/s) across disable -> upgrade -> enable"
	[ $((lost * 100)) -le $((sent * MAX_LOSS_PCT)) ] || { echo "more than $MAX_LOSS_PCT %"; return 1; }
}
echo "# $(loss_ok | head -n1)"
check "ping loss across the upgrade is at most $MAX_LOSS_PCT %" loss_ok
state_source_kept() {
	local m
	m=$(dk "$P" plugin inspect -f '{{range .Settings.Mounts}}{{.Name}}={{.Source}} {{end}}' "$PLUGIN")
	echo "$m" | grep -q "state=$STATE " || { echo "mounts: $m"; return 1; }
}
same_identity() { [ "$(cat "$STATE/instance.json")" = "$ID_BEFORE" ]; }
check "the upgraded plugin is v2 and answers" retry 10 runs_version e2e2-amd64
# What the README's upgrade section says: an upgrade from the registry to
# a version with the same config.json keeps the settings on both engines
# (seen on 20.10.24 and 2.0.0-beta.24, 2026-12-07; issue 25 reported a
# reset to config.json's defaults, not reproduced here).
upgrade_kept_settings() {
	local m
	m=$(cat "$V6B_RUN/$P/upgraded-mounts")
	echo "settings right after upgrade, before set: $m"
	echo "$m" | grep -q "state=$STATE " && echo "$m" | grep -q "UPLINK=eth0 "
}
check "upgrade kept state.source and UPLINK (set again anyway before enable)" upgrade_kept_settings
check "state.source is kept across the upgrade" state_source_kept
check "same state directory identity after the upgrade" same_identity
check "the container keeps its address" inspect_addr pubweb public "$PUBADDR"
check "the internet still reaches it" retry 10 inet_fetch_hello "http://[$PUBADDR]/"
check "a new container on the network after the upgrade" run_web public 2001:db8:1234:a1:1::81 pubweb2
check "v6bridge status of the upgraded plugin lists the network" status_shows "$PUBLIC"

dk "$P" rm -f pubweb pubweb2 >/dev/null 2>&1 || true
check "network rm after the upgrade" dk "$P" network rm public
dk "$P" plugin disable -f "$PLUGIN" >/dev/null 2>&1 || true
dk "$P" plugin rm -f "$PLUGIN" >/dev/null 2>&1 || true
echo "# release test took $((SECONDS - T0)) s"
summary
