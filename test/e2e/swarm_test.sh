#!/usr/bin/env bash
# End-to-end: a Docker Swarm of two simulated IPv6-only VPS behind the same
# provider router, each with its own /64, its own engine and the v6bridge
# managed plugin, set up from `v6bridge plan --swarm` (docs/swarm.md).
#
#   test/e2e/swarm_test.sh legacy|current    (as root, after make build)
#
# VPS prefixes: ${V6B_PREFIX}a and ${V6B_PREFIX}b (default e2sla/e2slb or
# e2sca/e2scb); the second VPS hangs off the first one's router.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"

KIND=${1:?usage: swarm_test.sh legacy|current}
case $KIND in legacy | current) ;; *) echo "unknown engine $KIND: want legacy or current" >&2; exit 2 ;; esac
P=${V6B_PREFIX:-e2s${KIND:0:1}}
A=${P}a B=${P}b
BIN=$repo/bin/v6bridge
PLUGIN=v6bridge:latest
SITE=fd3c:9a41:7e02::/48
declare -A PUB=([$A]=2001:db8:1234:a1::/64 [$B]=2001:db8:1234:a2::/64)
declare -A HOSTADDR=([$A]=2001:db8:1234:a1::1 [$B]=2001:db8:1234:a2::1)
declare -A RIF=([$A]=vps0 [$B]=vps-$B) # the router's side of each VPS's link
PORT=8090
START=$SECONDS

cleanup() {
	local rc=$?
	if [ "$rc" -ne 0 ] || [ "${V6B_KEEP_LOGS:-0}" = 1 ]; then
		for h in "$A" "$B"; do
			echo "--- $h: plugin log (last 30 lines)"
			grep -h 'plugin=' "$V6B_LIB/$h/logs/dockerd.log" 2>/dev/null | tail -n 30 | cut -c1-300 || true
		done
	fi
	local t=$SECONDS
	vps_down "$B" &
	vps_down "$A" || true
	wait || true
	echo "# teardown took $((SECONDS - t)) s"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ helpers
state() { echo "$V6B_LIB/$1/v6bridge-state"; }

# planned HOST FIELD: a field of HOST in the swarm plan.
planned() { jq -r --arg h "$1" ".hosts[] | select(.name == \$h) | .$2" <<<"$PLAN"; }

# run_planned HOST CMD: a `docker ...` command of the plan, on HOST's engine.
run_planned() {
	local h=$1 -a w
	read -r -a w <<<"$2"
	[ "${w[0]}" = docker ] || { echo "not a docker command: $2"; return 1; }
	dk "$h" "${w[@]:1}"
}

# task HOST SERVICE: the id of SERVICE's running container on HOST.
task() { dk "$1" ps -q --filter "label=com.docker.swarm.service.name=$2" --filter status=running | head -n1; }
task_addr() { dk "$1" inspect -f "{{(index .NetworkSettings.Networks \"$3\").GlobalIPv6Address}}" "$(task "$1" "$2")"; }

# one_task_each SERVICE: a running task of SERVICE on each node.
one_task_each() { [ -n "$(task "$A" "$1")" ] && [ -n "$(task "$B" "$1")" ]; }

# in_prefix ADDR PREFIX: ADDR lies in the plan's /112 (its last 16 bits are the host part).
in_prefix() {
	local net=${2%/112}
	[ "$2" != "$net" ] || { echo "$2 is not a /112"; return 1; }
	case $1 in "${net}"[0-9a-f]*) return 0 ;; esac
	echo "address '$1' is not in $2"
	return 1
}

# task_in_plan HOST SERVICE NETWORK FIELD: the task's address is in HOST's planned network.
task_in_plan() { in_prefix "$(task_addr "$1" "$2" "$3")" "$(planned "$1" "$4")"; }

# answers_from NS URL WANT: a GET of URL from netns NS returns WANT.
answers_from() {
	local out
	out=$(ip netns exec "$1" timeout 8 busybox wget -q -O - "$2" 2>&1) || { echo "$out"; return 1; }
	[ "$out" = "$3" ] || { echo "got '$out', want '$3'"; return 1; }
}

# task_fetches HOST SERVICE URL WANT: HOST's task of SERVICE GETs URL and gets WANT.
task_fetches() {
	local out
	out=$(dk "$1" exec "$(task "$1" "$2")" sh -c 'timeout 8 wget -q -O - "$0"; exit $?' "$3" 2>&1) || { echo "$out"; return 1; }
	[ "$out" = "$4" ] || { echo "got '$out', want '$4'"; return 1; }
}
task_cannot_fetch() {
	local out
	if out=$(dk "$1" exec "$(task "$1" "$2")" sh -c 'timeout 3 wget -q -O - "$0"; exit $?' "$3" 2>&1); then
		echo "reachable: $out"
		return 1
	fi
}

# router_neigh_is HOST ADDR: the provider's router resolved ADDR (by NDP) to HOST's uplink MAC.
router_neigh_is() {
	local mac want
	want=$(ip -n "$1-vps" link show eth0 | awk '/link\/ether/ {print $2}')
	mac=$(ip -n "$A-router" -6 neigh show "$2" dev "${RIF[$1]}" | awk '{for (i=1;i<NF;i++) if ($i=="lladdr") print $(i+1)}')
	[ "$mac" = "$want" ] || { echo "router: $2 -> '$mac' on ${RIF[$1]}, want $want"; ip -n "$A-router" -6 neigh show; return 1; }
}

# nothing_left HOST: no task container, no v6bridge network, link or state file on HOST.
# Two files outlive every network by design and are not counted: ipam/ula.json (the
# ULA /64 the plugin keeps aside) and instance.json (the state directory's identity,
# docs/resilience.md). IPv4 placeholders too are released.
nothing_left() {
	local h=$1 out
	out=$(
		dk "$h" ps -aq --filter label=com.docker.swarm.task
		dk "$h" network ls -q --filter driver="$PLUGIN"
		ip -n "$h-vps" -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | grep -E '^v6[bhc]' || true
		find "$(state "$h")" -type f -name '*.json' ! -name ula.json ! -name instance.json 2>/dev/null || true
	)
	[ -z "$out" ] || { echo "left on $h:"; echo "$out"; return 1; }
}

# nothing_left_within SECONDS HOST: nothing_left HOST becomes true within SECONDS; on
# failure only the last listing is shown (what is still there, not every try's).
nothing_left_within() {
	retry "$1" nothing_left "$2" >/dev/null 2>&1 || nothing_left "$2"
}

# ------------------------------------------------------------------ two VPS, one swarm
echo "# engine: $KIND, VPS $A and $B behind $A-router"
vps_up "$A"
vps_add "$B" --router "$A" --lan a2
engine_up "$A" "$KIND" &
ea=$!
engine_up "$B" "$KIND" &
eb=$!
wait "$ea" && wait "$eb"
echo "# engines up after $((SECONDS - START)) s: $(engine_version "$A") (API $(engine_api "$A")), kernel $(uname -r)"

PLAN=$("$BIN" plan --swarm --json --site "$SITE" --host "$A=${PUB[$A]}" --host "$B=${PUB[$B]}")
check "plan --swarm gives each host its own public and ULA prefixes" \
	test "$(planned "$A" public_network) $(planned "$B" ula_prefix)" = "2001:db8:1234:a1:1::/112 fd3c:9a41:7e02:2::/64"
same_64_refused() {
	local out
	if out=$("$BIN" plan --swarm --site "$SITE" --host "x=${PUB[$A]}" --host "y=${PUB[$A]}" 2>&1); then
		echo "accepted: $out"
		return 1
	fi
	echo "$out" | grep -q "overlapping public prefixes" || { echo "message: $out"; return 1; }
}
check "plan --swarm refuses two hosts with the same /64" same_64_refused

# image and plugin on both hosts at once
install_plugin() {
	local h=$1
	image_import "$h" || return 1
	mkdir -p "$(state "$h")"
	DOCKER_HOST="unix://$V6B_RUN/$h/docker.sock" DOCKER=$(_v6b_cli) \
		bash "$repo/plugin/create.sh" "$PLUGIN" "$BIN" "$V6B_LIB/$h/plugin-build" "$(state "$h")" >/dev/null || return 1
	dk "$h" plugin set "$PLUGIN" LOG_LEVEL=debug
}
_v6b_cli >/dev/null
install_plugin "$A" &
ia=$!
install_plugin "$B" &
ib=$!
wait "$ia" && wait "$ib"
for h in "$A" "$B"; do
	mapfile -t cmds < <(planned "$h" 'commands[]')
	check "$h: the plan's plugin settings" run_planned "$h" "${cmds[0]}"
	check "$h: plugin enabled" dk "$h" plugin enable "$PLUGIN"
	for c in "${cmds[@]:1}"; do
		check "$h: ${c#docker network create }" run_planned "$h" "$c"
	done
done

echo "# plugins and config-only networks after $((SECONDS - START)) s"
check "swarm init --advertise-addr ${HOSTADDR[$A]} on $A" \
	dk "$A" swarm init --advertise-addr "${HOSTADDR[$A]}"
TOKEN=$(dk "$A" swarm join-token -q worker)
check "swarm join from $B over IPv6" \
	dk "$B" swarm join --token "$TOKEN" --advertise-addr "${HOSTADDR[$B]}" "[${HOSTADDR[$A]}]:2377"
check "two nodes ready" retry 30 bash -c '[ "$(DOCKER_HOST=$0 $1 node ls --format "{{.Status}}" | grep -c Ready)" = 2 ]' \
	"unix://$V6B_RUN/$A/docker.sock" "$(_v6b_cli)"
mapfile -t mcmds < <(jq -r '.manager[]' <<<"$PLAN")
for c in "${mcmds[@]}"; do
	check "$A (manager): ${c#docker network create }" run_planned "$A" "$c"
done

# busybox as PID 1 ignores SIGTERM: a short grace period keeps service rm quick.
check "service web: 2 replicas, one per node, --publish mode=host,published=$PORT" \
	dk "$A" service create -d --no-resolve-image --name web --replicas 2 --replicas-max-per-node 1 \
	--stop-grace-period 1s --network public --publish "mode=host,target=80,published=$PORT" \
	busybox sh -c 'hostname > /index.html && exec httpd -f -h /'
check "service nat: 2 replicas on the nat network" \
	dk "$A" service create -d --no-resolve-image --name nat --replicas 2 --replicas-max-per-node 1 \
	--stop-grace-period 1s --network internal busybox sleep 3600
check "web runs a task on each node" retry 60 one_task_each web
check "nat runs a task on each node" retry 60 one_task_each nat

echo "# tasks running after $((SECONDS - START)) s"
declare -A WEB NAME
for h in "$A" "$B"; do
	WEB[$h]=$(task_addr "$h" web public || true)
	NAME[$h]=$(task "$h" web | cut -c1-12)
	echo "# $h: web task ${NAME[$h]} at ${WEB[$h]}, nat task at $(task_addr "$h" nat internal || true)"
	check "$h: the web task's address is from $h's plan ($(planned "$h" public_network))" task_in_plan "$h" web public public_network
	check "$h: the nat task's address is from $h's ULA /64 ($(planned "$h" nat_network))" task_in_plan "$h" nat internal nat_network
	check "$h: the internet reaches the task at its public address" \
		retry 10 answers_from "$A-inet" "http://[${WEB[$h]}]/" "${NAME[$h]}"
	check "$h: the router learnt the task's address from $h's NDP answer" router_neigh_is "$h" "${WEB[$h]}"
	check "$h: the internet reaches the task via the host port [${HOSTADDR[$h]}]:$PORT" \
		answers_from "$A-inet" "http://[${HOSTADDR[$h]}]:$PORT/" "${NAME[$h]}"
done
check "$A's task reaches $B's task at its public address (via the router)" \
	task_fetches "$A" web "http://[${WEB[$B]}]/" "${NAME[$B]}"
check "$B's task reaches $A's task at its public address (via the router)" \
	task_fetches "$B" web "http://[${WEB[$A]}]/" "${NAME[$A]}"
check "$B's nat task reaches $A's web task (NAT66, public address)" \
	task_fetches "$B" nat "http://[${WEB[$A]}]/" "${NAME[$A]}"
check "$B's ULA /64 is local: $A's task cannot reach $B's nat task" \
	task_cannot_fetch "$A" web "http://[$(task_addr "$B" nat internal)]/"

# ------------------------------------------------------------------ cleanup
echo "# checks done after $((SECONDS - START)) s"
RM=$SECONDS
check "service rm web nat" dk "$A" service rm web nat
check "network rm public internal (manager)" dk "$A" network rm public internal
for h in "$A" "$B"; do
	# a worker tears its tasks and the network down on its own time (about 7 s here)
	check "$h: no task, network, bridge, veth or state left" nothing_left_within 90 "$h"
	echo "# $h: teardown checked after $((SECONDS - RM)) s"
	check "$h: config-only networks removed" dk "$h" network rm public-cfg internal-cfg
done
echo "# swarm e2e took $((SECONDS - START)) s"
summary
