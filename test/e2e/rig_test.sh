#!/usr/bin/env bash
# Proves the e2e rig with plain engines (no v6bridge needed): the simulated IPv6-only VPS,
# both engines one after the other, the busybox image, plugin discovery both ways
# (managed and host service) in the engine's private mounts, the built-in IPv6 bridge
# baseline on the current engine, and that nothing is left afterwards.
#
#   test/e2e/rig_test.sh            (as root; V6B_SKIP_INSTALL=1 skips install-deps.sh)
#   V6B_ENGINES=current test/e2e/rig_test.sh
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
if [ "${V6B_SKIP_INSTALL:-0}" != 1 ]; then
	"$repo/scripts/install-deps.sh" >/tmp/v6b-install-deps.log 2>&1 ||
		{ cat /tmp/v6b-install-deps.log >&2; exit 1; }
fi
# shellcheck source=lib.sh
source "$here/lib.sh"
_v6b_cli >/dev/null

P=${V6B_PREFIX:-rig}
ENGINES=${V6B_ENGINES:-legacy current}
work=$(mktemp -d /tmp/v6b-rig.XXXXXX)
cleanup() {
	local rc=$?
	vps_down "$P" || true
	rm -rf "$work"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- helpers
has_addr() { ip -n "$1" -6 addr show dev "$2" | grep "inet6 $3 " >/dev/null; }
no_ipv4() {
	local out
	out=$(ip -n "$P-vps" -4 addr show | grep 'inet ' | grep -v ' lo$' || true)
	[ -z "$out" ] || { echo "$out"; return 1; }
}
ping_inet() { ip netns exec "$P-vps" busybox ping6 -c 1 -W 2 "$V6B_INET_ADDR"; }
no_route_from_host() { ! ip -6 route get "$V6B_INET_ADDR" 2>/dev/null | grep "$P" >/dev/null; }
run_hi() { [ "$(dk "$P" run --rm busybox echo hi)" = hi ]; }
# busybox 1.35 wget -T segfaults; bound it with `timeout` instead
wget_inet() {
	local out
	out=$(dk "$P" run --rm --network b6 busybox timeout 10 wget -q -O - "http://[$V6B_INET_ADDR]/") || return 1
	echo "$out"
	[ "$out" = "hello from the internet" ]
}
container_v6() {
	dk "$P" run --rm --network b6 busybox ip -6 addr show dev eth0 | grep 'inet6 fd00:beef::'
}
private_plugins_dir() {
	in_vps "$P" test -d /run/docker/plugins || { echo "no /run/docker/plugins in the VPS"; return 1; }
	! [ -e /run/docker/plugins ] || [ -z "$(ls -A /run/docker/plugins)" ] ||
		{ echo "host /run/docker/plugins is not empty:"; ls -A /run/docker/plugins; return 1; }
}
plugin_enabled() { [ "$(dk "$P" plugin inspect --format '{{.Enabled}}' rigprobe:latest)" = true ]; }
managed_socket() {
	local id
	id=$(dk "$P" plugin inspect --format '{{.Id}}' rigprobe:latest)
	in_vps "$P" test -S "/run/docker/plugins/$id/rig.sock" || { echo "no socket for $id"; in_vps "$P" ls -R /run/docker/plugins; return 1; }
	! [ -e "/run/docker/plugins/$id" ] || { echo "socket dir visible on the host"; return 1; }
}
net_with() { dk "$P" network create -d "$1" "$2" >/dev/null && dk "$P" network rm "$2" >/dev/null; }
start_hostsvc() {
	in_vps "$P" "$work/rigplugin" -sock /run/docker/plugins/rigsvc.sock </dev/null >"$work/rigsvc.log" 2>&1 &
	echo $! >"$work/rigsvc.pid"
	retry 10 in_vps "$P" test -S /run/docker/plugins/rigsvc.sock
}
stop_hostsvc() { kill "$(cat "$work/rigsvc.pid")" 2>/dev/null || true; wait "$(cat "$work/rigsvc.pid")" 2>/dev/null || true; }
engine_gone() {
	local left
	left=$(grep -l "$V6B_RUN/$P/" /proc/[0-9]*/cmdline 2>/dev/null || true)
	[ -z "$left" ] || { echo "processes left: $left"; return 1; }
	! grep -q "$V6B_RUN/$P" /proc/self/mountinfo || { grep "$V6B_RUN/$P" /proc/self/mountinfo; return 1; }
	[ -z "$(find /sys/fs/cgroup -maxdepth 6 -type d -name "v6b-e2e-$P" 2>/dev/null)" ] || { echo "cgroups left"; return 1; }
}
# the root network namespace: links, routes, firewall, forwarding; must never change
root_netns() {
	ip -o link | awk '{print $2, $3}'
	ip -4 route; ip -6 route
	nft list ruleset 2>/dev/null || true
	sysctl -n net.ipv4.ip_forward net.ipv6.conf.all.forwarding
}
root_untouched() { root_netns | diff "$work/root-netns.before" -; }
compose_project() {
	local f="$work/compose/compose.yml" st
	dk "$P" compose -f "$f" -p rig up -d --quiet-pull || return 1
	st=$(dk "$P" compose -f "$f" -p rig ps --format '{{.State}}')
	echo "state: $st"
	dk "$P" compose -f "$f" -p rig down || return 1
	[ "$st" = running ]
}
restart_keeps() {
	dk "$P" run -d --name always --restart=always --stop-timeout 1 busybox sleep 600 >/dev/null || return 1
	engine_restart "$P" || return 1
	retry 20 bash -c "[ \"\$(DOCKER_HOST=unix://$V6B_RUN/$P/docker.sock $V6B_DOCKER_CLI inspect -f '{{.State.Running}}' always)\" = true ]" || return 1
	in_vps "$P" test -S /run/docker/plugins/rigsvc.sock || { echo "host-service socket lost"; return 1; }
	dk "$P" rm -f always >/dev/null
}
nothing_left() {
	local n
	for n in vps router inet; do
		! ip netns list | grep -w "$P-$n" >/dev/null || { echo "netns $P-$n left"; return 1; }
	done
	engine_gone
	[ ! -e "$V6B_RUN/$P" ] || { echo "$V6B_RUN/$P left"; return 1; }
	! pgrep -f "$work" >/dev/null || { echo "processes of the test left:"; pgrep -af "$work"; return 1; }
}

# plugin probe: a do-nothing network driver, as a managed-plugin dir and a binary
CGO_ENABLED=0 go build -C "$repo" -o "$work/rigplugin" ./test/e2e/rigplugin
mkdir -p "$work/plugin/rootfs"
cp "$work/rigplugin" "$work/plugin/rootfs/rigplugin"
cat >"$work/plugin/config.json" <<'EOF'
{
  "description": "v6bridge e2e rig probe",
  "documentation": "test/e2e/rigplugin",
  "entrypoint": ["/rigplugin", "-sock", "/run/docker/plugins/rig.sock"],
  "interface": {"types": ["docker.networkdriver/1.0"], "socket": "rig.sock"},
  "network": {"type": "host"}
}
EOF
mkdir -p "$work/compose"
cat >"$work/compose/compose.yml" <<'EOF'
services:
  hello:
    image: busybox:latest
    command: ["sleep", "300"]
    stop_signal: SIGKILL
EOF
root_netns >"$work/root-netns.before"
mkdir -p "$work/www"
echo "hello from the internet" >"$work/www/index.html"

# ---------------------------------------------------------------- the VPS
check "vps up ($P-vps, $P-router, $P-inet)" vps_up "$P"
check "vps: eth0 has $V6B_VPS_ADDR/64" has_addr "$P-vps" eth0 "$V6B_VPS_ADDR/64"
check "vps: default route via the router" bash -c "ip -n $P-vps -6 route show default | grep 'via $V6B_ROUTER_ADDR dev eth0' >/dev/null"
check "vps: no IPv4 except lo" no_ipv4
check "router: /64 on-link, $V6B_ROUTER_ADDR, forwarding on" bash -c \
	"ip -n $P-router -6 route show 2001:db8:1234:a1::/64 | grep vps0 >/dev/null && [ \$(ip netns exec $P-router sysctl -n net.ipv6.conf.all.forwarding) = 1 ]"
check "vps up is idempotent" vps_up "$P"
check "vps pings $V6B_INET_ADDR through the router" ping_inet
check "root netns untouched (no route to the simulated internet)" no_route_from_host
ip netns exec "$P-inet" busybox httpd -f -p "[$V6B_INET_ADDR]:80" -h "$work/www" </dev/null >/dev/null 2>&1 &
check "internet: busybox httpd answers" retry 5 bash -c "ip netns exec $P-vps busybox wget -q -O - 'http://[$V6B_INET_ADDR]/' | grep hello >/dev/null"

# ---------------------------------------------------------------- each engine
for kind in $ENGINES; do
	if ! check "$kind: engine up" engine_up "$P" "$kind"; then :; fi
	check "$kind: engine answers ($(engine_version "$P" 2>/dev/null || echo '?'), API $(engine_api "$P" 2>/dev/null || echo '?'))" dk "$P" info
	check "$kind: a second engine_up for $P is refused" bash -c "! (source '$here/lib.sh'; engine_up '$P' '$kind') 2>/dev/null"
	check "$kind: busybox imported" image_import "$P"
	check "$kind: docker run --rm busybox echo hi" run_hi
	check "$kind: /run/docker is private to the VPS" private_plugins_dir
	check "$kind: compose up/ps/down through dk" compose_project
	check "$kind: managed plugin created" dk "$P" plugin create rigprobe:latest "$work/plugin"
	check "$kind: managed plugin enabled" dk "$P" plugin enable rigprobe:latest
	check "$kind: plugin ls shows it enabled" plugin_enabled
	check "$kind: its socket is /run/docker/plugins/<id>/ in the VPS only" managed_socket
	check "$kind: network with -d rigprobe:latest" net_with rigprobe:latest rignet
	check "$kind: managed plugin disabled and removed" bash -c \
		"DOCKER_HOST=unix://$V6B_RUN/$P/docker.sock $(_v6b_cli) plugin disable rigprobe:latest && DOCKER_HOST=unix://$V6B_RUN/$P/docker.sock $(_v6b_cli) plugin rm rigprobe:latest"
	check "$kind: host-service plugin started with in_vps" start_hostsvc
	check "$kind: network with the bare name -d rigsvc" net_with rigsvc rignet2
	check "$kind: engine_restart brings a restart=always container back, keeps host services" restart_keeps
	stop_hostsvc
	if [ "$kind" = current ]; then
		check "$kind: built-in bridge network b6 with IPv6" dk "$P" network create --ipv6 --subnet fd00:beef::/64 b6
		check "$kind: container on b6 has an fd00:beef:: address" container_v6
		check "$kind: container on b6 wgets from httpd in $P-inet" wget_inet
		check "$kind: network b6 removed" dk "$P" network rm b6
	fi
	check "$kind: engine down" engine_down "$P"
	check "$kind: no engine process, mount or cgroup left" engine_gone
	check "$kind: engine_down again is a no-op" engine_down "$P"
done

# ---------------------------------------------------------------- teardown
check "vps down" vps_down "$P"
check "vps down again is a no-op" vps_down "$P"
check "nothing left (namespaces, mounts, processes, state)" nothing_left
check "root netns (links, routes, nftables, forwarding) unchanged" root_untouched
summary
