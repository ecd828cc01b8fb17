# shellcheck shell=bash
# The scenario checks of plugin_test.sh, one function per group. They use
# P (the VPS prefix), D (the driver name), BIN, STATE, PLUGIN and V4FLAG.

INTERNAL_NET=fd12:3456:789a:8101:1::/112
INTERNAL_GW=fd12:3456:789a:8101:1::1
WEB_ADDR=fd12:3456:789a:8101:1::ab53
PUBLIC_NET=2001:db8:1234:a1:1::/112
PUBLIC_ADDR=2001:db8:1234:a1:1::ab53

# ------------------------------------------------------------------ helpers
net_create() { dk "$P" network create -d "$D" --ipam-driver "$D" --ipv6 "${V4FLAG[@]}" "$@"; }

# expect_fail PATTERN cmd...: cmd fails and says PATTERN (grep -i).
expect_fail() {
	local pat=$1 out
	shift
	if out=$("$@" 2>&1); then
		echo "accepted: $*"
		return 1
	fi
	# A here-string, not echo | grep -q: with pipefail, grep quitting at the
	# first match can fail the pipeline with SIGPIPE on a long message.
	grep -qi -- "$pat" <<<"$out" || { echo "message lacks '$pat': $out"; return 1; }
}

# owned: what v6bridge owns in the VPS (links) and on disk (state files).
# Engines < 28 request the IPv4 placeholder address before the IPv6 one and
# do not release it when the IPv6 request is refused; v6bridge frees those
# with the network (cleanup_checks proves it), so they are not counted here.
owned() {
	ip -n "$P-vps" -o link show | awk -F': ' '{print " " $2}' | sed 's/@.*//' | grep -E '^ v6[bhc]' | sort
	find "$STATE" -type f -name '*.json' 2>/dev/null | sed "s|$STATE/||" | grep -v '^ipam/addrs/v4placeholder' | sort
}

# refused PATTERN cmd...: cmd fails saying PATTERN and leaves nothing behind.
refused() {
	local before after
	before=$(owned)
	expect_fail "$@" || return 1
	after=$(owned)
	[ "$before" = "$after" ] || { echo "left behind:"; diff <(echo "$before") <(echo "$after"); return 1; }
}

run_web() { # run_web NETWORK ADDR [NAME] [docker run flags...]
	local net=$1 addr=$2 name=${3:-web}
	shift 3 2>/dev/null || shift $#
	dk "$P" run -d --name "$name" --network "$net" --ip6 "$addr" "$@" busybox \
		sh -c 'echo Hello world! > /index.html && exec httpd -f -v -h /' >/dev/null
	inspect_addr "$name" "$net" "$addr"
}

inspect_addr() { # inspect_addr CONTAINER NETWORK ADDR
	local got
	got=$(dk "$P" inspect -f "{{(index .NetworkSettings.Networks \"$2\").GlobalIPv6Address}}" "$1")
	[ "$got" = "$3" ] || { echo "inspect shows '$got', want $3"; return 1; }
}

has_internal_addr() { case $(container_addr "$1" internal) in fd12:3456:789a:8101:1::*) return 0 ;; *) return 1 ;; esac; }

container_addr() { dk "$P" inspect -f "{{(index .NetworkSettings.Networks \"$2\").GlobalIPv6Address}}" "$1"; }

# busybox's wget -T crashes; bound it with timeout instead.
fetch_from_container() { # NETWORK URL
	local out
	out=$(dk "$P" run --rm --network "$1" busybox sh -c 'timeout 10 wget -q -O - "$0"; exit $?' "$2") || { echo "$out"; return 1; }
	[ "$out" = "Hello world!" ] || { echo "got: $out"; return 1; }
}

fetch_from_host() { # URL
	local out
	out=$(ip netns exec "$P-vps" timeout 10 busybox wget -q -O - "$1" 2>&1) || { echo "$out"; return 1; }
	[ "$out" = "Hello world!" ] || { echo "got: $out"; return 1; }
}

default_route() { # CONTAINER GATEWAY
	local r
	r=$(dk "$P" exec "$1" ip -6 route show default)
	echo "$r" | grep -q "via $2" || { echo "default route: '$r', want via $2"; return 1; }
}

no_routable_v4() { # CONTAINER
	local r a
	r=$(dk "$P" exec "$1" ip -4 route show default)
	a=$(dk "$P" exec "$1" ip -4 addr show scope global | grep inet | grep -v ' 169\.254\.' || true)
	[ -z "$r" ] && [ -z "$a" ] || { echo "IPv4 default route '$r', addresses '$a'"; return 1; }
}

bridges_count() { # N
	local n
	n=$(ip -n "$P-vps" -o link show type bridge | grep -c ' v6b-' || true)
	[ "$n" -eq "$1" ] || { echo "$n v6bridge bridges, want $1"; ip -n "$P-vps" -o link show type bridge; return 1; }
}

plugin_pid() { # the plugin process in this VPS
	local pid
	for pid in $(ip netns pids "$P-vps"); do
		if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'v6bridge serve'; then
			echo "$pid"
			return 0
		fi
	done
	return 1
}

plugin_listed_enabled() {
	dk "$P" plugin ls --format '{{.Name}} {{.Enabled}}' | grep -qx "$PLUGIN true"
}

install_managed_plugin() {
	mkdir -p "$STATE"
	DOCKER_HOST="unix://$V6B_RUN/$P/docker.sock" DOCKER=$(_v6b_cli) \
		bash "$repo/plugin/create.sh" "$PLUGIN" "$BIN" "$V6B_LIB/$P/plugin-build" "$STATE"
	dk "$P" plugin set "$PLUGIN" LOG_LEVEL=debug METRICS="[::1]:9430"
	dk "$P" plugin enable "$PLUGIN" >/dev/null
}

remove_managed_plugin() {
	dk "$P" plugin disable -f "$PLUGIN" >/dev/null 2>&1 || true
	dk "$P" plugin rm -f "$PLUGIN" >/dev/null 2>&1 || true
}

start_host_service() {
	mkdir -p "$STATE-hs"
	in_vps "$P" "$BIN" serve --state-dir "$STATE-hs" --log-level debug \
		</dev/null >>"$V6B_LIB/$P/logs/v6bridge-service.log" 2>&1 &
	echo $! >"$V6B_RUN/$P/v6bridge-service.pid"
	retry 10 in_vps "$P" test -S /run/docker/plugins/v6bridge.sock
	STATE=$STATE-hs
}

stop_host_service() {
	local f=$V6B_RUN/$P/v6bridge-service.pid
	[ -f "$f" ] || return 0
	kill -TERM "$(cat "$f")" 2>/dev/null || true
	rm -f "$f"
}

dump_logs() {
	echo "--- plugin log (last 60 lines):"
	grep -h 'plugin=' "$V6B_LIB/$P/logs/dockerd.log" 2>/dev/null | tail -n 60 | cut -c1-400
	tail -n 60 "$V6B_LIB/$P/logs/v6bridge-service.log" 2>/dev/null | cut -c1-400
}

# ------------------------------------------------------------------ groups
foundation_checks() {
	check "network create internal (nat, $INTERNAL_NET)" net_create --subnet "$INTERNAL_NET" -o v6bridge.mode=nat internal
	check "network create public ($PUBLIC_NET of the host's /64)" net_create --subnet "$PUBLIC_NET" public
	check "one bridge per network in the VPS" bridges_count 2
	check "a container gets exactly the requested address (--ip6 $WEB_ADDR)" run_web internal "$WEB_ADDR"
	check "a second container reaches it over IPv6" fetch_from_container internal "http://[$WEB_ADDR]/"
	check "the host reaches it through the bridge" fetch_from_host "http://[$WEB_ADDR]/"
	check "the container's IPv6 default route is via the gateway" default_route web "$INTERNAL_GW"
	check "the container has no routable IPv4" no_routable_v4 web
	check "a container on the public network gets its address" run_web public "$PUBLIC_ADDR" pubweb
	check "the host reaches the public container" fetch_from_host "http://[$PUBLIC_ADDR]/"
}

bad_input_checks() {
	local n
	check "refused: unknown option" refused "v6bridge.colour" net_create --subnet fd00:11::/112 -o v6bridge.colour=blue bad
	check "refused: bad mode" refused "nat, public, routed, internal" net_create --subnet fd00:11::/112 -o v6bridge.mode=bridge bad
	check "refused: MTU below 1280" refused "1280" net_create --subnet fd00:11::/112 -o v6bridge.mtu=1000 bad
	check "refused: bridge name over 15 bytes" refused "15 bytes" net_create --subnet fd00:11::/112 -o v6bridge.bridge_name=bridge-name-too-long bad
	check "refused: bridge name of an existing interface" refused "exists" net_create --subnet fd00:11::/112 -o v6bridge.bridge_name=eth0 bad
	check "refused: icc not a boolean" refused "true or false" net_create --subnet fd00:11::/112 -o v6bridge.icc=maybe bad
	check "refused: prefix shorter than /48" refused "fd00::/40" net_create --subnet fd00::/40 bad
	check "refused: prefix longer than /120" refused "fd00:11::/124" net_create --subnet fd00:11::/124 bad
	check "refused: the host's own /64" refused "2001:db8:1234:a1::/64" net_create --subnet 2001:db8:1234:a1::/64 bad
	check "refused: overlapping another v6bridge pool" refused "overlap" net_create --subnet fd12:3456:789a:8101:1::/120 bad
	check "refused: routed mode without --subnet (its prefix is the provider's)" refused "routed network needs --subnet" net_create --ipam-opt v6bridge.mode=routed bad
	check "refused: public mode on a ULA subnet" refused "global subnet" net_create --subnet fd00:11::/112 -o v6bridge.mode=public bad
	check "refused: port out of range in v6bridge.allow" refused "65535" net_create --subnet 2001:db8:1234:a1:2::/112 -o v6bridge.allow=tcp/99999 bad
	check "refused: host_ipv6 not an address" refused "IPv6 address" net_create --subnet fd00:11::/112 -o v6bridge.host_ipv6=nope bad
	check "refused: --internal with another mode" refused "internal" net_create --subnet fd00:11::/112 --internal -o v6bridge.mode=nat bad
	check "refused: an IPv4 subnet" refused "IPv6" dk "$P" network create -d "$D" --ipam-driver "$D" --ipv6 --subnet 10.9.0.0/24 --subnet fd00:11::/112 bad
	check "refused: --ip6 already in use" refused "$WEB_ADDR" dk "$P" run --rm --network internal --ip6 "$WEB_ADDR" busybox true
	check "refused: --ip6 the subnet-router anycast address" refused "fd12:3456:789a:8101:1::" dk "$P" run --rm --network internal --ip6 fd12:3456:789a:8101:1:: busybox true
	check "refused: --ip6 outside the subnet" refused "fd99::5" dk "$P" run --rm --network internal --ip6 fd99::5 busybox true
	dk "$P" container prune -f >/dev/null
	n=$(dk "$P" network ls --filter name=bad -q | wc -l)
	check "no refused network exists in the engine" test "$n" -eq 0
}

crash_checks() {
	local pid newpid addr
	pid=$(plugin_pid) || { check "plugin process found" false; return; }
	kill -KILL "$pid"
	check "kill -9 of the plugin: the running container stays reachable" fetch_from_host "http://[$WEB_ADDR]/"
	newpid_differs() { newpid=$(plugin_pid) && [ "$newpid" != "$pid" ]; }
	check "the engine restarts the plugin" retry 30 newpid_differs
	# The current engine re-registers a restarted plugin asynchronously: a
	# container started in that moment can fail in the engine's own remote
	# driver proxy ("endpoint ... not found" in ProgramExternalConnectivity,
	# docs/engines.md). A user retries; so does the check.
	start_c2() { dk "$P" rm -f c2 >/dev/null 2>&1; dk "$P" run -d --name c2 --network internal busybox sleep 600; }
	check "after the restart a new container starts (retried while the engine registers the restarted plugin)" \
		retry 20 start_c2
	addr=$(container_addr c2 internal)
	check "it gets an address not in use ($addr)" test -n "$addr" -a "$addr" != "$WEB_ADDR" -a "$addr" != "$INTERNAL_GW"
	check "and reaches the first container" dk "$P" exec c2 sh -c 'timeout 10 wget -q -O /dev/null "$0"; exit $?' "http://[$WEB_ADDR]/"
	dk "$P" rm -f c2 >/dev/null
}

restart_checks() {
	local auto
	check "restart=always container with a fixed address" run_web internal fd12:3456:789a:8101:1::100 keeper --restart=always
	dk "$P" run -d --name keeper2 --restart=always --network internal busybox sleep 100000 >/dev/null
	auto=$(container_addr keeper2 internal)
	engine_restart "$P"
	check "engine restart: restart=always container back with the same address" retry 30 inspect_addr keeper internal fd12:3456:789a:8101:1::100
	if api_at_least "$P" 1.52; then # engines >= 29 name the endpoint to the IPAM
		check "engine restart: auto-addressed container back with the same address ($auto)" retry 30 inspect_addr keeper2 internal "$auto"
	else
		check "engine restart: auto-addressed container back with an address (old engines do not name it: docs/engines.md)" retry 30 has_internal_addr keeper2
	fi
	check "engine restart: it serves again" retry 20 fetch_from_host "http://[fd12:3456:789a:8101:1::100]/"
	# A reboot: engine and every link gone; the plugin re-creates the bridges.
	engine_down "$P"
	for l in $(ip -n "$P-vps" -o link show | grep -oE ' v6[bh][-0-9a-z]*'); do ip -n "$P-vps" link del "$l" 2>/dev/null || true; done
	check "simulated reboot: no bridge left" bridges_count 0
	engine_up "$P" "$KIND" "${ENGINE_FLAGS[@]}"
	check "simulated reboot: the plugin re-creates the bridges" retry 30 bridges_count 2
	check "simulated reboot: restart=always container back with the same address" retry 30 inspect_addr keeper internal fd12:3456:789a:8101:1::100
	check "simulated reboot: it serves again" retry 20 fetch_from_host "http://[fd12:3456:789a:8101:1::100]/"
	dk "$P" rm -f keeper keeper2 web pubweb >/dev/null 2>&1 || true
}

compose_checks() { # DRIVER
	local -a cf=(-f "$repo/examples/seed/compose.yml")
	api_at_least "$P" 1.48 || cf+=(-f "$repo/examples/seed/compose.legacy.yml")
	dk "$P" rm -f web pubweb >/dev/null 2>&1 || true
	dk "$P" network rm internal public >/dev/null 2>&1 || true
	export V6BRIDGE=$1
	check "compose (driver: $1): the seed's networks and busybox come up" dk "$P" compose "${cf[@]}" -p demo up -d
	check "compose: busybox has its internal address" inspect_addr demo-busybox-1 demo_internal "$WEB_ADDR"
	check "compose: busybox has its public address" inspect_addr demo-busybox-1 demo_public "$PUBLIC_ADDR"
	check "compose: a container on demo_internal fetches http://[$WEB_ADDR]" fetch_from_container demo_internal "http://[$WEB_ADDR]/"
	check "compose: the host fetches http://[$PUBLIC_ADDR]" fetch_from_host "http://[$PUBLIC_ADDR]/"
	check "compose down" dk "$P" compose "${cf[@]}" -p demo down
	unset V6BRIDGE
}

cleanup_checks() {
	local left
	dk "$P" rm -f $(dk "$P" ps -aq) >/dev/null 2>&1 || true
	for n in $(dk "$P" network ls --filter driver="$D" -q); do dk "$P" network rm "$n" >/dev/null; done
	left=$(ip -n "$P-vps" -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | grep -E '^v6[bhc]' || true)
	check "network rm: no bridge or veth left" test -z "$left"
	left=$(find "$STATE/driver" "$STATE/ipam/pools" "$STATE/ipam/addrs" -type f -name '*.json' 2>/dev/null || true)
	check "network rm: no network, endpoint, pool or address state left" test -z "$left"
}

# ------------------------------------------------------------------ NAT66, ports, firewall, NDP
HOST_ADDR=2001:db8:1234:a1::1
INET_URL=http://[2001:db8:ffff::10]:8080/

start_inet_server() {
	ip netns exec "$P-inet" "${V6B_ECHOSERVER:-$repo/bin/echoserver}" -listen "[2001:db8:ffff::10]:8080" \
		</dev/null >>"$V6B_LIB/$P/logs/echoserver.log" 2>&1 &
	retry 5 inet_fetch "$INET_URL" >/dev/null
	# A route to the ULA range on the provider's router: the firewall, not
	# the lack of a route, must keep the internet out of nat networks.
	ip -n "$P-router" -6 route replace fd12:3456:789a::/48 via "$HOST_ADDR" dev vps0
}

self_hairpin() { # CONTAINER URL
	local out
	out=$(dk "$P" exec "$1" sh -c 'timeout 10 wget -q -O - "$0"; exit $?' "$2" 2>&1) || { echo "$out"; return 1; }
	[ "$out" = "Hello world!" ] || { echo "got: $out"; return 1; }
}
inet_fetch() { ip netns exec "$P-inet" timeout 8 busybox wget -q -O - "$1" 2>&1; }
inet_fetch_hello() {
	local out
	out=$(inet_fetch "$1") || { echo "$out"; return 1; }
	[ "$out" = "Hello world!" ] || { echo "got: $out"; return 1; }
}
inet_cannot_fetch() {
	local out
	if out=$(ip netns exec "$P-inet" timeout 4 busybox wget -q -O - "$1" 2>&1); then
		echo "reachable: $out"
		return 1
	fi
}
# source_seen NETWORK WANT [docker run flags]: the internet server saw WANT.
source_seen() {
	local net=$1 want=$2 out
	shift 2
	out=$(dk "$P" run --rm --network "$net" "$@" busybox sh -c 'timeout 10 wget -q -O - "$0"; exit $?' "$INET_URL" 2>&1) || { echo "$out"; return 1; }
	[ "$out" = "$want" ] || { echo "the server saw '$out', want $want"; return 1; }
}
container_cannot_fetch() { # NETWORK URL
	local out
	if out=$(dk "$P" run --rm --network "$1" busybox sh -c 'timeout 4 wget -q -O - "$0"; exit $?' "$2" 2>&1); then
		echo "reachable: $out"
		return 1
	fi
}
# logs_show CONTAINER PATTERN. Not `docker logs | grep -q`: under pipefail
# grep's early exit can SIGPIPE docker logs and fail a check that matched.
logs_show() {
	local out
	out=$(dk "$P" logs "$1" 2>&1)
	grep -q -- "$2" <<<"$out" || { echo "logs of $1 lack $2:"; tail -n 5 <<<"$out"; return 1; }
}
router_neigh_is_host() { # ADDR: the router resolved ADDR to the VPS's uplink MAC
	local mac want
	want=$(ip -n "$P-vps" link show eth0 | awk '/link\/ether/ {print $2}')
	mac=$(ip -n "$P-router" -6 neigh show "$1" dev vps0 | awk '{for (i=1;i<NF;i++) if ($i=="lladdr") print $(i+1)}')
	[ "$mac" = "$want" ] || { echo "router: $1 -> '$mac', want $want"; ip -n "$P-router" -6 neigh show dev vps0; return 1; }
}
router_resolves_again() { # ADDR: the router forgets ADDR, asks again and gets the VPS's MAC
	ip -n "$P-router" -6 neigh del "$1" dev vps0 2>/dev/null || true
	ip netns exec "$P-router" busybox ping6 -c 1 -W 2 "$1" >/dev/null 2>&1 || true
	router_neigh_is_host "$1"
}
no_proxy_entries() { # no kernel proxy neighbour entry on the VPS's uplink
	local left
	left=$(ip -n "$P-vps" -6 neigh show proxy dev eth0)
	[ -z "$left" ] || { echo "proxy entries left: $left"; return 1; }
}
router_no_answer_for() { # ADDR: nothing answers NDP for ADDR
	ip -n "$P-router" -6 neigh del "$1" dev vps0 2>/dev/null || true
	ip netns exec "$P-router" busybox ping6 -c 1 -W 2 "$1" >/dev/null 2>&1 || true
	local st
	st=$(ip -n "$P-router" -6 neigh show "$1" dev vps0)
	case $st in *lladdr*REACHABLE* | *lladdr*STALE* | *lladdr*DELAY*) echo "answered: $st"; return 1 ;; esac
}

nat_checks() {
	start_inet_server
	check "nat: a container on a ULA network reaches the internet server" source_seen internal "$HOST_ADDR"
	check "nat: published -p 8081:80 container starts" run_web internal fd12:3456:789a:8101:1::81 p8081 -p 8081:80
	check "nat: the internet reaches [$HOST_ADDR]:8081" inet_fetch_hello "http://[$HOST_ADDR]:8081/"
	check "nat: the container saw the client's own address" logs_show p8081 2001:db8:ffff::10
	check "nat: hairpin: another container reaches [$HOST_ADDR]:8081" fetch_from_container internal "http://[$HOST_ADDR]:8081/"
	check "nat: hairpin: the container reaches its own published port" self_hairpin p8081 "http://[$HOST_ADDR]:8081/"
	check "nat: hairpin from a container on another v6bridge network" fetch_from_container public "http://[$HOST_ADDR]:8081/"
	check "nat: the host itself reaches [$HOST_ADDR]:8081" fetch_from_host "http://[$HOST_ADDR]:8081/"
	check "nat: the internet cannot reach a ULA container directly, even with a route" inet_cannot_fetch "http://[$WEB_ADDR]/"
	check "nat: a second container asking for host port 8081 is refused" \
		expect_fail "8081" dk "$P" run -d --name dup8081 --network internal -p 8081:80 busybox sleep 60
	dk "$P" rm -f dup8081 >/dev/null 2>&1 || true
	check "public: published container on 2001:db8:1234:a1:1::80 starts" \
		dk "$P" run -d --name p80 --network public --ip6 2001:db8:1234:a1:1::80 -p 8082:80 busybox \
		sh -c 'echo Hello world! > /index.html && httpd -p 8000 -h / && exec httpd -f -v -p 80 -h /'
	check "public: the internet reaches the published port directly on the container's address" retry 5 inet_fetch_hello "http://[2001:db8:1234:a1:1::80]/"
	check "public: and through the host's address [$HOST_ADDR]:8082" inet_fetch_hello "http://[$HOST_ADDR]:8082/"
	check "public: an unpublished listening port (8000) is not reachable" inet_cannot_fetch "http://[2001:db8:1234:a1:1::80]:8000/"
	check "public: a public container goes out with its own address" source_seen public 2001:db8:1234:a1:1::99 --ip6 2001:db8:1234:a1:1::99
	check "isolation: a container on internal cannot reach the public container" container_cannot_fetch internal "http://[2001:db8:1234:a1:1::80]:8000/"
	check "isolation: a container on public cannot reach the nat container" container_cannot_fetch public "http://[$WEB_ADDR]/"
	check "v6bridge status shows the published ports" status_shows "8081->80/tcp"
	check "v6bridge status --json lists the NDP counters" status_shows '"NDP"' --json
	if [ -n "${PLUGIN_ACTIVE:-}" ]; then
		dk "$P" plugin disable -f "$PLUGIN" >/dev/null
		check "plugin disabled: the published port still works" inet_fetch_hello "http://[$HOST_ADDR]:8081/"
		check "plugin disabled: the public container is still reachable" inet_fetch_hello "http://[2001:db8:1234:a1:1::80]/"
		check "plugin disabled: the router re-resolves the public container (kernel proxy entries left at stop)" \
			router_resolves_again 2001:db8:1234:a1:1::80
		dk "$P" plugin enable "$PLUGIN" >/dev/null
		check "plugin enabled again: it took the proxy entries back" retry 10 no_proxy_entries
		check "plugin enabled again: the router resolves the public container" router_resolves_again 2001:db8:1234:a1:1::80
	fi
	in_vps "$P" nft flush ruleset
	check "after nft flush ruleset: NAT66 recovers without a restart" retry 10 source_seen internal "$HOST_ADDR"
	check "after nft flush ruleset: the published port works again" retry 10 inet_fetch_hello "http://[$HOST_ADDR]:8081/"
	check "after nft flush ruleset: the unpublished port is closed again" inet_cannot_fetch "http://[2001:db8:1234:a1:1::80]:8000/"
}

# plugin_socket: the running plugin's socket, inside the VPS's mounts.
plugin_socket() {
	if [ -n "${PLUGIN_ACTIVE:-}" ]; then
		echo "/run/docker/plugins/$(dk "$P" plugin inspect -f '{{.Id}}' "$PLUGIN")/v6bridge.sock"
	else
		echo /run/docker/plugins/v6bridge.sock
	fi
}
status_shows() { # PATTERN [status flags]
	local pat=$1 out
	shift
	out=$(in_vps "$P" "$BIN" status --socket "$(plugin_socket)" "$@" 2>&1) || { echo "$out"; return 1; }
	echo "$out" | grep -qF -- "$pat" || { echo "status lacks $pat:"; echo "$out"; return 1; }
}

# soak: with the router's reachable time at 1 s it re-probes the container
# address by unicast all the time; 60 s of traffic must lose nothing.
ndp_soak() {
	local out
	ip netns exec "$P-router" sysctl -qw net.ipv6.neigh.vps0.base_reachable_time_ms=1000
	out=$(ip netns exec "$P-inet" busybox ping6 -q -c 300 -i 0.2 -W 3 2001:db8:1234:a1:1::80 2>&1)
	ip netns exec "$P-router" sysctl -qw net.ipv6.neigh.vps0.base_reachable_time_ms=30000
	echo "$out" | grep -q ' 0% packet loss' || { echo "$out"; return 1; }
}

# ndp_restart_gap: traffic to the public container while the plugin is
# killed and restarted by the engine (or by the test for a host service)
# loses at most 2 s.
ndp_restart_gap() {
	local out lost pid
	ip netns exec "$P-router" sysctl -qw net.ipv6.neigh.vps0.base_reachable_time_ms=1000
	ip netns exec "$P-inet" busybox ping6 -q -c 100 -i 0.1 -W 3 2001:db8:1234:a1:1::80 >"$V6B_RUN/$P/ping.out" 2>&1 &
	local ping=$!
	sleep 1
	pid=$(plugin_pid) && kill -KILL "$pid"
	[ -n "${PLUGIN_ACTIVE:-}" ] || start_host_service
	wait "$ping" || true
	ip netns exec "$P-router" sysctl -qw net.ipv6.neigh.vps0.base_reachable_time_ms=30000
	out=$(cat "$V6B_RUN/$P/ping.out")
	lost=$(echo "$out" | sed -n 's/^\([0-9]*\) packets transmitted, \([0-9]*\) packets received.*/\1 \2/p' | awk '{print $1-$2}')
	[ -n "$lost" ] && [ "$lost" -le 20 ] || { echo "lost $lost of 100 (0.1 s apart):"; echo "$out"; return 1; }
	echo "lost $lost packets"
}

ndp_checks() {
	check "ndp: the router resolves the public container to the VPS's MAC" router_neigh_is_host 2001:db8:1234:a1:1::80
	check "ndp soak: 60 s of traffic with the router re-probing every second loses nothing" ndp_soak
	check "ndp: traffic resumes within 2 s after the plugin is killed and restarted" ndp_restart_gap
	check "ndp: the restarted plugin answers again" retry 10 router_neigh_is_host 2001:db8:1234:a1:1::80
	check "ndp: an unused address of the /112 gets no answer" router_no_answer_for 2001:db8:1234:a1:1::77
	dk "$P" rm -f p80 >/dev/null
	check "ndp: after docker rm the address is no longer answered" retry 5 router_no_answer_for 2001:db8:1234:a1:1::80
	dk "$P" rm -f p8081 >/dev/null
}

# ------------------------------------------------------------------ address plan, doctor
# plan_checks: a network created without --subnet gets a /112 of the plan and
# works; doctor in the VPS reports forwarding ok. Uses the plugin's own ULA.
plan_subnet() { dk "$P" network inspect -f '{{range .IPAM.Config}}{{.Subnet}} {{end}}' "$1" | tr ' ' '\n' | grep ':' | head -n 1; }
is_ula_112() { case $1 in fd*::/112 | fd*:0:[0-9a-f]*::/112) return 0 ;; *) echo "subnet '$1' is not a ULA /112"; return 1 ;; esac; }
is_public_112() { case $1 in 2001:db8:1234:a1:[0-9a-f]*::/112) return 0 ;; *) echo "subnet '$1' is not a /112 of 2001:db8:1234:a1::/64"; return 1 ;; esac; }
in_subnet() { # ADDR SUBNET: a plan /112 ends in ::/112 (its last 16 bits are the host part)
	case $1 in "${2%::/112}::"[0-9a-f]*) return 0 ;; *) echo "$1 is not in $2"; return 1 ;; esac
}
doctor_forwarding_ok() {
	local out
	# No resolver: the rig has no DNS (TestPrivilegedDNS64 covers DNS64).
	out=$(in_vps "$P" env DOCKER_HOST="unix://$V6B_RUN/$P/docker.sock" "$BIN" doctor --resolv-conf /dev/null 2>&1) || true
	echo "$out" | grep -qE '^ok +forwarding' || { echo "$out"; return 1; }
	echo "$out" | grep -qE '^ok +provider +on-link /64' || { echo "no on-link /64 provider finding:"; echo "$out"; return 1; }
	echo "$out" | grep -qE '^ok +plugin +v6bridge answers at /run/docker/plugins/' || { echo "doctor did not find the plugin:"; echo "$out"; return 1; }
}
plan_checks() {
	local sub pub addr
	check "plan: network create without --subnet" net_create autonet
	sub=$(plan_subnet autonet)
	check "plan: it got a ULA /112 of the plan ($sub)" is_ula_112 "$sub"
	check "plan: a second one gets another subnet" net_create autonet2
	check "plan: the subnets differ" test "$(plan_subnet autonet2)" != "$sub" -a -n "$(plan_subnet autonet2)"
	check "plan: a public network without --subnet (--ipam-opt v6bridge.mode=public)" net_create --ipam-opt v6bridge.mode=public autopub
	pub=$(plan_subnet autopub)
	check "plan: it got a /112 of the host's /64 ($pub)" is_public_112 "$pub"
	check "plan: a container on the automatic network starts" \
		dk "$P" run -d --name autoweb --network autonet busybox sh -c 'echo Hello world! > /index.html && exec httpd -f -v -h /'
	addr=$(container_addr autoweb autonet)
	check "plan: its address $addr is in $sub" in_subnet "$addr" "$sub"
	check "plan: another container reaches it" fetch_from_container autonet "http://[$addr]/"
	check "plan: doctor in the VPS reports forwarding, the on-link /64 and the plugin (found without --socket)" doctor_forwarding_ok
	dk "$P" rm -f autoweb >/dev/null 2>&1 || true
	dk "$P" network rm autonet autonet2 autopub >/dev/null 2>&1 || true
}

# option_checks: UDP publishing, v6bridge.icc=false, v6bridge.allow and the
# internal mode, end to end.
udp_probe() { # ADDR:PORT WANT
	local out
	out=$(ip netns exec "$P-inet" timeout 5 "${V6B_ECHOSERVER:-$repo/bin/echoserver}" -probe-udp "$1" 2>&1) || { echo "$out"; return 1; }
	[ "$(echo "$out" | tr -d '\n')" = "$2" ] || { echo "the container saw '$out', want $2"; return 1; }
}
option_checks() {
	check "udp: a container with -p 5353:5353/udp starts" \
		dk "$P" run -d --name u53 --network internal -p 5353:5353/udp busybox sleep 100000
	dk "$P" cp "${V6B_ECHOSERVER:-$repo/bin/echoserver}" u53:/echoserver >/dev/null
	dk "$P" exec -d u53 /echoserver -listen '[::]:8080' -udp '[::]:5353'
	check "udp: the internet reaches [$HOST_ADDR]:5353/udp; the container sees the client's address" \
		retry 5 udp_probe "[$HOST_ADDR]:5353" 2001:db8:ffff::10
	check "icc=false: network create" net_create --subnet fd00:1cc::/112 -o v6bridge.icc=false noicc
	check "icc=false: a container starts" run_web noicc fd00:1cc::10 iccweb
	check "icc=false: another container on the network cannot reach it" container_cannot_fetch noicc "http://[fd00:1cc::10]/"
	check "icc=false: the host still reaches it" fetch_from_host "http://[fd00:1cc::10]/"
	check "v6bridge.allow=tcp/8000: network create" net_create --subnet 2001:db8:1234:a1:7::/112 -o v6bridge.allow=tcp/8000 allownet
	check "v6bridge.allow: a container listening on 8000 and 9000 starts" \
		dk "$P" run -d --name allowed --network allownet --ip6 2001:db8:1234:a1:7::10 busybox \
		sh -c 'echo Hello world! > /index.html && httpd -p 8000 -h / && exec httpd -f -p 9000 -h /'
	check "v6bridge.allow: port 8000 is open from the internet without -p" retry 5 inet_fetch_hello "http://[2001:db8:1234:a1:7::10]:8000/"
	check "v6bridge.allow: port 9000 stays closed" inet_cannot_fetch "http://[2001:db8:1234:a1:7::10]:9000/"
	check "--internal: network create" net_create --subnet fd00:1a::/112 --internal intern
	check "--internal: a container cannot reach the internet" container_cannot_fetch intern "$INET_URL"
	check "--internal: it reaches its gateway" dk "$P" run --rm --network intern busybox ping6 -c 1 -W 3 fd00:1a::1
	dk "$P" rm -f u53 iccweb allowed >/dev/null 2>&1 || true
	dk "$P" network rm noicc allownet intern >/dev/null 2>&1 || true
}

# ------------------------------------------------------------------ migrate
# migrate_checks: v6bridge migrate turns the seed's own ndppd.conf and compose
# file (with its ipv6nat service) into a v6bridge compose file, which then
# passes the seed's checks: outbound, inbound to the public container and to
# the published port, container to container, and NDP answered for it.
MIGRATE_ADDR=2001:db8:1234:a1:1::ab53
busybox_reaches_inet() {
	local out
	out=$(dk "$P" exec demo-busybox-1 sh -c 'timeout 10 wget -q -O - "$0"; exit $?' "$INET_URL" 2>&1) || { echo "$out"; return 1; }
	[ -n "$out" ] || { echo "empty answer"; return 1; }
}
migrate_checks() { # DRIVER
	local dir=$V6B_LIB/$P/migrate
	rm -rf "$dir" && mkdir -p "$dir"
	cp "$repo/migrate/testdata/seed/ndppd.conf" "$repo/migrate/testdata/seed/docker-compose.yml" "$dir/"
	check "migrate: the seed's ndppd.conf and compose file translate (--write)" \
		"$BIN" migrate --ndppd "$dir/ndppd.conf" --compose "$dir/docker-compose.yml" --driver "$1" --write
	local -a cf=(-f "$dir/docker-compose.v6bridge.yml")
	api_at_least "$P" 1.48 || cf+=(-f "$repo/examples/seed/compose.legacy.yml")
	check "migrate: the migrated compose file comes up (without the ipv6nat service)" dk "$P" compose "${cf[@]}" -p demo up -d
	check "migrate: busybox has its public address" inspect_addr demo-busybox-1 demo_public "$MIGRATE_ADDR"
	check "migrate: busybox reaches the internet (the seed's outbound check)" busybox_reaches_inet
	check "migrate: the internet reaches http://[$MIGRATE_ADDR] (NDP answered by v6bridge)" retry 5 inet_fetch_hello "http://[$MIGRATE_ADDR]/"
	check "migrate: the router resolves it to the VPS's MAC" router_neigh_is_host "$MIGRATE_ADDR"
	check "migrate: the internet reaches the published port [$HOST_ADDR]:8081" inet_fetch_hello "http://[$HOST_ADDR]:8081/"
	check "migrate: a container on demo_internal fetches http://[$WEB_ADDR]" fetch_from_container demo_internal "http://[$WEB_ADDR]/"
	check "migrate: docker logs show the internet client's address" logs_show demo-busybox-1 2001:db8:ffff::10
	check "status without --socket finds the plugin and lists the public address" status_finds "$MIGRATE_ADDR"
	check "migrate: compose down" dk "$P" compose "${cf[@]}" -p demo down
}
status_finds() { # PATTERN: v6bridge status, socket found by itself
	local out
	out=$(in_vps "$P" env -u SOCKET "$BIN" status 2>&1) || { echo "$out"; return 1; }
	echo "$out" | grep -qF -- "$1" || { echo "status lacks $1:"; echo "$out"; return 1; }
}

# ------------------------------------------------------------------ metrics
# metrics_checks: the METRICS listener (set in install_managed_plugin) serves
# Prometheus text that Prometheus' parser accepts, with API and NDP counters
# above zero after the NAT and NDP checks.
metrics_checks() {
	in_vps "$P" nft flush ruleset # a repair to count
	check "metrics: [::1]:9430/metrics parses (expfmt) with non-zero API, NDP, firewall repair counters" retry 10 \
		ip netns exec "$P-vps" "$repo/bin/promcheck" -url 'http://[::1]:9430/metrics' \
		-nonzero v6bridge_build_info,v6bridge_api_requests_total,v6bridge_api_request_duration_seconds,v6bridge_ndp_solicitations_received_total,v6bridge_ndp_solicitations_answered_total,v6bridge_ndp_advertisements_sent_total,v6bridge_firewall_applies_total,v6bridge_firewall_repairs_total,v6bridge_reconcile_runs_total
}
