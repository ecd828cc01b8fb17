# shellcheck shell=bash
# security_checks: issue 10's attacks, end to end, each failing: a
# container routing around icc=false, spoofing its source, forged ICMPv6
# errors, an engine handing out held addresses, options of the wrong JSON
# type, table v6bridge deleted while the plugin is stopped, `nft flush
# ruleset` while it runs. Sourced by plugin_test.sh; uses P, D, PLUGIN,
# PLUGIN_ACTIVE and the helpers of lib.sh and checks.sh.

SEC_PUB_NET=2001:db8:1234:a1:5ec::/112
SEC_PUB_WEB=2001:db8:1234:a1:5ec::80
SPOOF_PUB=2001:db8:1234:a1::99 # in the provider's /64, held by nobody
SPOOF_ULA=fd00:dead::1         # in no network
INET_ADDR=2001:db8:ffff::10

# sec_api ROUTE BODY: POST to the running plugin's socket, print the answer.
sec_api() { in_vps "$P" curl -s --max-time 10 --unix-socket "$(plugin_socket)" -d "$2" "http://plugin/$1"; }
# sec_api_refuses ROUTE BODY PATTERN: the answer is an error saying PATTERN.
sec_api_refuses() {
	local out
	out=$(sec_api "$1" "$2") || { echo "no answer: $out"; return 1; }
	echo "$out" | grep -q '"Err":"[^"]' || { echo "accepted: $out"; return 1; }
	echo "$out" | grep -qF -- "$3" || { echo "error lacks '$3': $out"; return 1; }
}

# routed_around NETWORK TARGET: a container with NET_ADMIN adds a host route
# to TARGET via its gateway (GW) and fetches from it; exit 0 only if the
# route was added and the fetch worked.
routed_fetch() { # NETWORK GW TARGET
	dk "$P" run --rm --network "$1" --cap-add NET_ADMIN busybox sh -c \
		'ip -6 route add "$1/128" via "$0" || exit 3; timeout 4 wget -q -O - "http://[$1]/"' "$2" "$3" 2>&1
}
routed_fetch_fails() {
	local out rc=0
	out=$(routed_fetch "$@") || rc=$?
	[ "$rc" -ne 3 ] || { echo "could not add the route: $out"; return 1; }
	[ "$rc" -ne 0 ] || { echo "reachable through the gateway: $out"; return 1; }
}

# spy: counters in the internet namespace for the sources that arrive there.
spy_up() {
	ip netns exec "$P-inet" nft -f - <<-EOF
		table ip6 spy
		delete table ip6 spy
		table ip6 spy {
			chain in {
				type filter hook input priority 0;
				ip6 saddr $SPOOF_PUB counter
				ip6 saddr fd00::/8 counter
				ip6 saddr $SEC_PUB_NET counter
			}
		}
	EOF
}
spy_count() { # SOURCE as written in the rule
	ip netns exec "$P-inet" nft list chain ip6 spy in | grep -F "ip6 saddr $1 " | grep -oE 'packets [0-9]+' | grep -oE '[0-9]+'
}
spy_zero() { local n; n=$(spy_count "$1"); [ "$n" = 0 ] || { echo "$n packets from $1 reached the internet"; return 1; }; }
spy_some() { local n; n=$(spy_count "$1"); [ "${n:-0}" -gt 0 ] || { echo "nothing from $1 reached the internet"; return 1; }; }
# (busybox ip knows no nodad: wait out duplicate address detection.)
ping_from() { # NETWORK SOURCE-TO-ADD|"" : ping the internet server from SOURCE
	dk "$P" run --rm --network "$1" --cap-add NET_ADMIN busybox sh -c \
		'if [ -n "$0" ]; then ip -6 addr add "$0/128" dev eth0 || exit 3; sleep 2.5; set -- -I "$0"; else set --; fi; ping6 -c 2 -W 1 "$@" '"$INET_ADDR"' >/dev/null; exit 0' "$2"
}

# ctr_icmp_errors CONTAINER: destination unreachable messages its input saw.
ctr_nft() { nsenter -t "$(dk "$P" inspect -f '{{.State.Pid}}' "$1")" -n nft "${@:2}"; }
ctr_icmp_errors() { ctr_nft "$1" list chain ip6 spy in | grep -oE 'packets [0-9]+' | grep -oE '[0-9]+'; }
forge_unreach() { # TARGET: the internet sends errors about a flow that never was
	ip netns exec "$P-inet" python3 - "$1" "$INET_ADDR" <<-'EOF'
		import socket, sys
		dst, src = sys.argv[1], sys.argv[2]
		s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
		inv = bytes([0x60, 0, 0, 0, 0, 8, 17, 64]) + socket.inet_pton(socket.AF_INET6, dst) + \
			socket.inet_pton(socket.AF_INET6, src) + bytes([0x30, 0x39, 0x15, 0xb3, 0, 8, 0, 0])
		for _ in range(3):
		    s.sendto(bytes([1, 4, 0, 0, 0, 0, 0, 0]) + inv, (dst, 0))
	EOF
}
icmp_errors_none() { local n; n=$(ctr_icmp_errors "$1"); [ "$n" = 0 ] || { echo "the container received $n forged errors"; return 1; }; }
icmp_errors_some() { local n; n=$(ctr_icmp_errors "$1"); [ "${n:-0}" -gt 0 ] || { echo "the container received no error about its own flow"; return 1; }; }

# repaired_within SECONDS: after `nft flush ruleset` our table and the guard
# are back within SECONDS; prints how long it took.
repaired_within() {
	local start now
	in_vps "$P" nft flush ruleset
	start=$(date +%s%N)
	while :; do
		now=$(date +%s%N)
		if in_vps "$P" nft list table ip6 v6bridge 2>/dev/null | grep -q forward_in &&
			in_vps "$P" nft list table ip6 v6bridge-guard >/dev/null 2>&1; then
			echo "repaired after $(((now - start) / 1000000)) ms"
			return 0
		fi
		[ $((now - start)) -lt $(($1 * 1000000000)) ] || { echo "not repaired within $1 s"; return 1; }
		sleep 0.05
	done
}

sec_noicc_up() {
	net_create --subnet fd00:1cd::/112 -o v6bridge.icc=false secnoicc >/dev/null && run_web secnoicc fd00:1cd::10 secnoiccweb
}
sec_icc_routed() {
	local out
	net_create --subnet fd00:1ce::/112 seciccnet >/dev/null && run_web seciccnet fd00:1ce::10 seciccweb || return 1
	out=$(routed_fetch seciccnet fd00:1ce::1 fd00:1ce::10) || { echo "$out"; return 1; }
	[ "$out" = "Hello world!" ] || { echo "got: $out"; return 1; }
}
sec_pub_up() {
	net_create --subnet "$SEC_PUB_NET" secpub >/dev/null &&
		dk "$P" run -d --name secweb --network secpub --ip6 "$SEC_PUB_WEB" -p 8083:80 busybox \
			sh -c 'echo Hello world! > /index.html && httpd -p 8000 -h / && exec httpd -f -p 80 -h /' >/dev/null
}

security_checks() {
	local id ep start=$SECONDS
	# 1. icc=false holds for routed traffic.
	check "sec: icc=false network and a web container" sec_noicc_up
	check "sec: icc=false: a container routing to it through the gateway is dropped" routed_fetch_fails secnoicc fd00:1cd::1 fd00:1cd::10
	check "sec: icc=true: the same routed path works (control)" sec_icc_routed

	# 2. Spoofed sources reach neither the router/internet nor leave un-NATed.
	check "sec: public network with a web container (80 published, 8000 not)" sec_pub_up
	spy_up || true
	check "sec: spoof: a public container pings from its own address" ping_from secpub ""
	check "sec: spoof: a public container adds $SPOOF_PUB and pings from it" ping_from secpub "$SPOOF_PUB"
	check "sec: spoof: a nat container adds $SPOOF_ULA and pings from it" ping_from seciccnet "$SPOOF_ULA"
	check "sec: spoof: a public container's own source reaches the internet (control)" spy_some "$SEC_PUB_NET"
	check "sec: spoof: a public container sending from $SPOOF_PUB reaches nothing" spy_zero "$SPOOF_PUB"
	check "sec: spoof: a nat container sending from $SPOOF_ULA does not leave un-NATed" spy_zero fd00::/8

	# 4. ICMPv6 errors reach containers only when related.
	ctr_nft secweb -f - <<-'EOF' || true
		table ip6 spy {
			chain in {
				type filter hook input priority 0;
				icmpv6 type destination-unreachable counter
			}
		}
	EOF
	check "sec: icmp: the internet forges destination unreachable messages to the container" forge_unreach "$SEC_PUB_WEB"
	sleep 0.5
	check "sec: icmp: a forged destination unreachable does not reach the container" icmp_errors_none secweb
	dk "$P" cp "$repo/bin/echoserver" secweb:/echoserver >/dev/null || true
	dk "$P" exec secweb /echoserver -probe-udp "[$INET_ADDR]:5555" >/dev/null 2>&1 || true
	check "sec: icmp: the port unreachable about its own datagram does (control)" icmp_errors_some secweb

	# 5. The driver refuses addresses another endpoint or a gateway holds.
	id=$(dk "$P" network inspect -f '{{.Id}}' seciccnet) || true
	ep=$(printf 'e2e%061d' 1)
	check "sec: CreateEndpoint with another endpoint's address is refused" \
		sec_api_refuses NetworkDriver.CreateEndpoint '{"NetworkID":"'"$id"'","EndpointID":"'"$ep"'","Interface":{"AddressIPv6":"fd00:1ce::10/112"}}' "is held by endpoint"
	check "sec: CreateEndpoint with the gateway's address is refused" \
		sec_api_refuses NetworkDriver.CreateEndpoint '{"NetworkID":"'"$id"'","EndpointID":"'"$ep"'","Interface":{"AddressIPv6":"fd00:1ce::1/112"}}' "is the gateway of network"

	# 7. Options of the wrong JSON type are refused by name.
	check "sec: CreateNetwork with internal=\"yes\" is refused naming the option" \
		sec_api_refuses NetworkDriver.CreateNetwork '{"NetworkID":"e2ebadtype","Options":{"com.docker.network.internal":"yes","com.docker.network.enable_ipv6":true},"IPv6Data":[{"Pool":"fd00:bad::/112","Gateway":"fd00:bad::1/112"}]}' "com.docker.network.internal"
	check "sec: CreateNetwork with a non-map generic option is refused naming it" \
		sec_api_refuses NetworkDriver.CreateNetwork '{"NetworkID":"e2ebadtype","Options":{"com.docker.network.generic":"v6bridge.mode=internal","com.docker.network.enable_ipv6":true},"IPv6Data":[{"Pool":"fd00:bad::/112","Gateway":"fd00:bad::1/112"}]}' "com.docker.network.generic"

	# 3. Fail closed: the plugin stopped, table v6bridge deleted.
	check "sec: fail closed: the published port is reachable (control)" retry 5 inet_fetch_hello "http://[$SEC_PUB_WEB]/"
	if [ -n "${PLUGIN_ACTIVE:-}" ]; then
		dk "$P" plugin disable -f "$PLUGIN" >/dev/null || true
		check "sec: fail closed: plugin stopped, nft delete table ip6 v6bridge" in_vps "$P" nft delete table ip6 v6bridge
		check "sec: fail closed: plugin stopped, table deleted: the unpublished port stays closed" inet_cannot_fetch "http://[$SEC_PUB_WEB]:8000/"
		check "sec: fail closed: and the published one is closed too (not opened)" inet_cannot_fetch "http://[$SEC_PUB_WEB]/"
		dk "$P" plugin enable "$PLUGIN" >/dev/null || true
		check "sec: fail closed: the plugin back, the published port works again" retry 10 inet_fetch_hello "http://[$SEC_PUB_WEB]/"
	fi
	check "sec: repair: nft flush ruleset with the plugin running is repaired within 1 s" repaired_within 1
	check "sec: repair: the unpublished port is closed after the repair" inet_cannot_fetch "http://[$SEC_PUB_WEB]:8000/"

	dk "$P" rm -f secnoiccweb seciccweb secweb >/dev/null 2>&1 || true
	dk "$P" network rm secnoicc seciccnet secpub >/dev/null 2>&1 || true
	ip netns exec "$P-inet" nft delete table ip6 spy 2>/dev/null || true
	echo "# security checks took $((SECONDS - start)) s"
}
