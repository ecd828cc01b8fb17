#!/usr/bin/env bash
# make demo: the seed scenario ("Running an IPv6-only host — redux") on a
# simulated IPv6-only VPS with a private current engine and v6bridge as a
# managed plugin, checked the way the blog's "Initial testing" does.
#   V6B_DEMO_ENGINE=legacy   use Debian's 20.10 instead
#   V6B_DEMO_KEEP=1          leave it running (clean up with: test/e2e/demo.sh down)
#   V6B_DEMO_PREFIX=demo     the VPS prefix (namespaces demo-vps, ...; at most 8 characters)
#   V6B_BIN, V6B_ECHOSERVER  the binaries to use (default bin/v6bridge, bin/echoserver)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"
# shellcheck source=checks.sh
source "$here/checks.sh"

P=${V6B_DEMO_PREFIX:-demo}
KIND=${V6B_DEMO_ENGINE:-current}
BIN=${V6B_BIN:-$repo/bin/v6bridge}
PLUGIN=v6bridge:latest
STATE=$V6B_LIB/$P/v6bridge-state
D=$PLUGIN
if [ "${1:-}" = down ]; then vps_down "$P"; exit 0; fi

finish() {
	local rc=$?
	if [ "${V6B_DEMO_KEEP:-0}" = 1 ]; then
		echo "# left running: DOCKER_HOST=unix://$V6B_RUN/$P/docker.sock docker ...; stop with: $0 down"
	else
		vps_down "$P" || true
	fi
	exit "$rc"
}
trap finish EXIT

echo "# The seed's address plan, as v6bridge computes it (v6bridge plan):"
"$BIN" plan --public 2001:db8:1234:a1::/64 --ula fd12:3456:789a::/48 --host-id 0x8101 | sed 's/^/#   /'
echo "#   (\"the internet\": a server at 2001:db8:ffff::10 behind the provider's router)"
echo "# starting the simulated VPS and a $KIND engine inside it"
vps_up "$P"
engine_up "$P" "$KIND"
image_import "$P"
echo "# engine $(engine_version "$P") (API $(engine_api "$P"))"
install_managed_plugin
PLUGIN_ACTIVE=1
check "docker plugin ls: $PLUGIN enabled" plugin_listed_enabled

cf=(-f "$repo/examples/seed/compose.yml")
api_at_least "$P" 1.48 || cf+=(-f "$repo/examples/seed/compose.legacy.yml")
export V6BRIDGE=$PLUGIN
echo "# docker compose -p demo up -d   (examples/seed/compose.yml, driver $PLUGIN)"
check "compose up: networks demo_internal, demo_public and demo-busybox-1" dk "$P" compose "${cf[@]}" -p demo up -d
check "busybox has fd12:3456:789a:8101:1::ab53 on demo_internal" inspect_addr demo-busybox-1 demo_internal "$WEB_ADDR"
check "busybox has 2001:db8:1234:a1:1::ab53 on demo_public" inspect_addr demo-busybox-1 demo_public "$PUBLIC_ADDR"
start_inet_server
echo "# Initial testing"
check "docker exec demo-busybox-1 ping6 -c 4 2001:db8:ffff::10 (outbound, \"the internet\")" \
	dk "$P" exec demo-busybox-1 ping6 -c 4 -W 3 2001:db8:ffff::10
seen=$(dk "$P" exec demo-busybox-1 sh -c 'timeout 10 wget -q -O - "$0"; exit $?' "$INET_URL" 2>&1 || true)
echo "#   the internet server saw the connection from: $seen"
check "outbound: the internet sees the host's or the container's public address, never a ULA" \
	sh -c "case '$seen' in 2001:db8:1234:a1::1|$PUBLIC_ADDR) exit 0 ;; *) exit 1 ;; esac"
check "inbound, direct to the container: http://[2001:db8:1234:a1:1::ab53] from the internet" \
	retry 5 inet_fetch_hello "http://[$PUBLIC_ADDR]/"
check "inbound, published port on the host: http://[2001:db8:1234:a1::1]:8081 from the internet" \
	inet_fetch_hello "http://[$HOST_ADDR]:8081/"
check "docker run --rm --network demo_internal busybox wget -O - http://[fd12:3456:789a:8101:1::ab53]" \
	fetch_from_container demo_internal "http://[$WEB_ADDR]/"
check "the provider's router resolves 2001:db8:1234:a1:1::ab53 to the host's MAC (NDP proxy)" router_neigh_is_host "$PUBLIC_ADDR"
dk "$P" exec demo-busybox-1 httpd -p 8000 -h / # listening, but not published
check "a listening but unpublished port (8000) of the public container is closed (default deny)" \
	inet_cannot_fetch "http://[$PUBLIC_ADDR]:8000/"
check "... while the container itself serves it" dk "$P" exec demo-busybox-1 sh -c 'timeout 5 wget -q -O - http://[::1]:8000/; exit $?'
check "v6bridge status shows the published port" status_shows "8081->80/tcp"
check "docker logs demo-busybox-1 shows the requests from the internet" logs_show demo-busybox-1 2001:db8:ffff::10
summary
