#!/usr/bin/env bash
# v6bridge benchmarks against Docker's built-in bridge on the same engine, and
# the plugin's scale to 1000 endpoints. `make bench` runs it after the Go
# benchmarks; see docs/benchmarks.md. Run as root. Everything happens in
# namespaces of the e2e rig (prefixes bn and bns); nothing touches the host's
# interfaces or firewall. Never asserts timings: it prints numbers and ratios.
#
#   bench/bench.sh [--json] [--only start,net,data,scale,ndp]
#
# Environment: BENCH_STARTS (50), BENCH_NETS (30), BENCH_ENDPOINTS (1000),
# BENCH_IPERF_RUNS (3), BENCH_IPERF_SECONDS (5), BENCH_RR_SECONDS (5),
# BENCH_NDP_COUNT (50000), BENCH_NDP_RATE (10000 solicitations/s),
# BENCH_NDP_FLOOD_RATE (100000/s), BENCH_NDP_FLOOD_SECONDS (30),
# BENCH_NDP_START (5000 addresses), BENCH_NDP_START_SECONDS (15),
# BENCH_NDP_ATTACK_RATE (100000/s), BENCH_NDP_ATTACK_SECONDS (20 each),
# BENCH_NDP_ATTACK_LIVE_EVERY (2: half of the attack for live addresses),
# BENCH_KEEP=1 keeps the work dir, BENCH_PREFIX (bn) names the rig's
# namespaces (P and Ps).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
# shellcheck source=../test/e2e/lib.sh
source test/e2e/lib.sh

JSON=0
ONLY=start,net,data,scale,ndp
while [ $# -gt 0 ]; do
	case $1 in
	--json) JSON=1 ;;
	--only) ONLY=$2; shift ;;
	*) echo "usage: $0 [--json] [--only start,net,data,scale,ndp]" >&2; exit 2 ;;
	esac
	shift
done
want() { case ",$ONLY," in *",$1,"*) return 0 ;; esac; return 1; }

STARTS=${BENCH_STARTS:-50}
NETS=${BENCH_NETS:-30}
ENDPOINTS=${BENCH_ENDPOINTS:-1000}
IPERF_RUNS=${BENCH_IPERF_RUNS:-3}
IPERF_SECONDS=${BENCH_IPERF_SECONDS:-5}
RR_SECONDS=${BENCH_RR_SECONDS:-5}
NDP_COUNT=${BENCH_NDP_COUNT:-50000}
NDP_RATE=${BENCH_NDP_RATE:-10000}
NDP_FLOOD_RATE=${BENCH_NDP_FLOOD_RATE:-100000}
NDP_FLOOD_SECONDS=${BENCH_NDP_FLOOD_SECONDS:-30}
NDP_START=${BENCH_NDP_START:-5000}
NDP_START_SECONDS=${BENCH_NDP_START_SECONDS:-15}
NDP_ATTACK_RATE=${BENCH_NDP_ATTACK_RATE:-100000}
NDP_ATTACK_SECONDS=${BENCH_NDP_ATTACK_SECONDS:-20}
NDP_ATTACK_LIVE_EVERY=${BENCH_NDP_ATTACK_LIVE_EVERY:-2}

P=${BENCH_PREFIX:-bn} # the engine's VPS (BENCH_PREFIX: another rig running beside)
S=${P}s # the scale / NDP VPS (no engine)
BIN=$repo/bin/v6bridge
W=$(mktemp -d /tmp/v6bridge-bench.XXXXXX)
SCALE_PID=""
NDPPD_PID=""
SERVE_PID=""

# stop_serve stops the host-service plugin: SERVE_PID is the subshell that
# runs in_vps in the background, the plugin (nsenter execs it) its child.
stop_serve() {
	pkill -TERM -P "$SERVE_PID" 2>/dev/null
	kill "$SERVE_PID" 2>/dev/null
	wait "$SERVE_PID" 2>/dev/null || true
	SERVE_PID=""
}

cleanup() {
	set +e
	[ -z "$SCALE_PID" ] || kill "$SCALE_PID" 2>/dev/null
	[ -z "$NDPPD_PID" ] || kill "$NDPPD_PID" 2>/dev/null
	[ -z "$SERVE_PID" ] || stop_serve
	vps_down "$P" >/dev/null 2>&1
	vps_down "$S" >/dev/null 2>&1
	if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "# samples kept in $W" >&2; else rm -rf "$W"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "# $*" >&2; }
now_ns() { date +%s%N; }
ms_since() { echo $((($(now_ns) - $1) / 1000)) | awk '{printf "%.3f\n", $1/1000}'; }

[ -x "$BIN" ] || { echo "bench: $BIN missing (make build)" >&2; exit 1; }
# Installing belongs before a measurement, not in it: scripts/install-deps.sh (make deps).
for t in iperf3 ndppd nft nsenter python3 busybox; do
	command -v "$t" >/dev/null || { echo "bench: $t missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
done
log "building bench/scale and bench/ndpflood"
CGO_ENABLED=0 go build -o "$W/scale" ./bench/scale
CGO_ENABLED=0 go build -o "$W/ndpflood" ./bench/ndpflood
CGO_ENABLED=0 go build -o "$W/rr" ./bench/rr

version=$("$BIN" version 2>/dev/null | awk '{print $NF}' || echo dev)
mem=$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)
cpu=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)

# ------------------------------------------------------------ engine pairs
engine_info='"engine": "none", "api": "-"'
if want start || want net || want data; then
	log "VPS $P with the current engine"
	vps_up "$P"
	engine_up "$P" current >/dev/null
	image_import "$P"
	engine_info="\"engine\": \"moby $(engine_version "$P")\", \"api\": \"$(engine_api "$P")\""
	# serve_plugin true|false: (re)start the host-service plugin with that
	# FASTPATH; its reconcile rebuilds the table with or without the flowtable.
	serve_plugin() {
		if [ -n "$SERVE_PID" ]; then
			stop_serve
		fi
		in_vps "$P" rm -f /run/docker/plugins/v6bridge.sock
		in_vps "$P" "$BIN" serve --state-dir "$W/state" --uplink eth0 --log-level warn --fastpath "$1" \
			</dev/null >>"$W/plugin.log" 2>&1 &
		SERVE_PID=$!
		retry 10 in_vps "$P" test -S /run/docker/plugins/v6bridge.sock
		sleep 2 # the reconcile after the socket, and the new process settled
	}
	serve_plugin true
	V6=(-d v6bridge --ipam-driver v6bridge --ipv6 --ipv4=false)
	BI=(--ipv6 --ipv4=false)
fi

if want start; then
	dk "$P" network create "${V6[@]}" --subnet fd00:b6::/112 -o v6bridge.mode=nat vstart >/dev/null
	dk "$P" network create "${BI[@]}" --subnet fd00:beef:1::/64 bstart >/dev/null
	for net in vstart bstart vstart bstart; do dk "$P" run --rm --network "$net" busybox true; done # warm-up
	log "container start: $STARTS runs each, interleaved"
	for _ in $(seq "$STARTS"); do
		for pair in v6bridge:vstart builtin:bstart; do
			t=$(now_ns)
			dk "$P" run --rm --network "${pair#*:}" busybox true
			ms_since "$t" >>"$W/start-${pair%%:*}.txt"
		done
	done
	dk "$P" network rm vstart bstart >/dev/null
fi

if want net; then
	log "network create + remove: $NETS each, interleaved"
	for _ in $(seq "$NETS"); do
		t=$(now_ns)
		dk "$P" network create "${V6[@]}" --subnet fd00:c1::/112 -o v6bridge.mode=nat vnet >/dev/null
		dk "$P" network rm vnet >/dev/null
		ms_since "$t" >>"$W/net-v6bridge.txt"
		t=$(now_ns)
		dk "$P" network create "${BI[@]}" --subnet fd00:c2::/64 bnet >/dev/null
		dk "$P" network rm bnet >/dev/null
		ms_since "$t" >>"$W/net-builtin.txt"
	done
fi

if want data; then
	log "data path: iperf3 from a container's netns to $V6B_INET_ADDR, ${IPERF_RUNS}x${IPERF_SECONDS}s each;" \
		"new-connection HTTP request rate from the internet ns to a published port, ${IPERF_RUNS}x${RR_SECONDS}s each;" \
		"v6bridge with and without the fast path and the built-in bridge, interleaved"
	dk "$P" network create "${V6[@]}" --subnet fd00:b6:2::/112 -o v6bridge.mode=nat vdata >/dev/null
	# the engine's own NAT66 (ip6tables masquerade) on a built-in bridge
	dk "$P" network create "${BI[@]}" --subnet fd00:beef::/64 b6 >/dev/null
	ip netns exec "$P-inet" iperf3 -s -D -I "$W/iperf.pid"
	declare -A cpid port=([v6bridge]=8181 [builtin]=8182)
	for pair in v6bridge:vdata builtin:b6; do
		k=${pair%%:*}
		dk "$P" run -d --name "ip-$k" --network "${pair#*:}" -p "${port[$k]}:80" busybox sleep 3600 >/dev/null
		dk "$P" cp "$repo/bin/echoserver" "ip-$k:/echoserver" >/dev/null
		dk "$P" exec -d "ip-$k" /echoserver -listen '[::]:80'
		cpid[$k]=$(dk "$P" inspect -f '{{.State.Pid}}' "ip-$k")
		retry 10 nsenter --net="/proc/${cpid[$k]}/ns/net" busybox ping -6 -c1 -W1 "$V6B_INET_ADDR" >/dev/null
	done
	iperf() { # KEY SERIES
		nsenter --net="/proc/${cpid[$1]}/ns/net" iperf3 -6 -c "$V6B_INET_ADDR" -t "$IPERF_SECONDS" -J \
			| python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e6)' \
			>>"$W/iperf-$2.txt"
	}
	rr() { # KEY SERIES
		retry 10 ip netns exec "$P-inet" busybox wget -q -O /dev/null "http://[$V6B_VPS_ADDR]:${port[$1]}/"
		ip netns exec "$P-inet" "$W/rr" -url "http://[$V6B_VPS_ADDR]:${port[$1]}/" -duration "${RR_SECONDS}s" \
			>>"$W/rr-$2.txt"
	}
	flowtable() { in_vps "$P" nft list flowtables ip6 2>/dev/null | grep -q 'flowtable ft'; }
	# doctor exits 1 on the root namespace's failures (no uplink there): only its fastpath line counts;
	# it checks the flowtable only for FASTPATH=true (its default follows the plugin's: false)
	fastpath="off (FASTPATH=true, but: $({ FASTPATH=true "$BIN" doctor 2>/dev/null || true; } | sed -n 's/^warn *fastpath *//p'))"
	for _ in $(seq "$IPERF_RUNS"); do
		serve_plugin true
		if flowtable; then fastpath=on; fi
		iperf v6bridge v6bridge
		rr v6bridge v6bridge
		iperf builtin builtin
		rr builtin builtin
		serve_plugin false
		if flowtable; then log "FASTPATH=false, but the table has a flowtable"; exit 1; fi
		iperf v6bridge v6bridge-nofp
		rr v6bridge v6bridge-nofp
	done
	echo "$fastpath" >"$W/fastpath.txt"
fi
if want start || want net || want data; then
	vps_down "$P" >/dev/null 2>&1
fi

# ------------------------------------------------------------ scale and NDP
scale_how="no scale run"
if want scale || want ndp; then
	log "VPS $S: v6bridge serve alone in the VPS namespace, $ENDPOINTS endpoints through its socket"
	scale_how="v6bridge serve in a namespace, plugin API over its unix socket"
	vps_up "$S"
	serve_scale() {
		ip netns exec "$S-vps" "$BIN" serve --socket "$W/scale.sock" --state-dir "$W/scale-state" --uplink eth0 \
			</dev/null >"$W/scale-$1.log" 2>&1 &
		SCALE_PID=$!
		retry 30 grep -q 'reconciled kernel state' "$W/scale-$1.log"
	}
	rss_mib() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$SCALE_PID/status"; }
	stop_scale() { kill "$SCALE_PID"; wait "$SCALE_PID" 2>/dev/null || true; SCALE_PID=""; }
	serve_scale first
	ip netns exec "$S-vps" "$W/scale" --socket "$W/scale.sock" -n "$ENDPOINTS" >"$W/scale.json"
	rss=$(rss_mib)
	stop_scale
	serve_scale restart
	took=$(sed -n 's/.*reconciled kernel state.*took=\([^ ]*\).*/\1/p' "$W/scale-restart.log" | tail -n1)
	printf '{"rss_mib": %s, "rss_restart_mib": %s, "reconcile": "%s"}\n' "$rss" "$(rss_mib)" "$took" >"$W/scale-extra.json"
	if ! want scale; then rm -f "$W/scale.json"; fi
fi

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_of() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
HZ=$(getconf CLK_TCK)
# ndp_probe NAME PID: goal 1, latency and CPU at NDP_RATE (PID "" for the
# kernel, whose work happens in softirq and belongs to no process).
# The process's CPU while idle for as long is measured first and taken
# off: v6bridge serve also watches its firewall and links meanwhile. The
# host's CPU (every process, the prober's too, and the kernel's softirq;
# /proc/stat) is measured the same way, so work moved into the kernel
# still counts.
host_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat; }
ndp_probe() {
	local before=0 after=0 idle=0 h0 h1 hidle
	h0=$(host_ticks)
	[ -z "$2" ] || before=$(cpu_ticks "$2")
	sleep "$((NDP_COUNT / NDP_RATE))"
	[ -z "$2" ] || idle=$(($(cpu_ticks "$2") - before))
	hidle=$(($(host_ticks) - h0))
	sleep 1
	[ -z "$2" ] || before=$(cpu_ticks "$2")
	h0=$(host_ticks)
	ip netns exec "$S-router" "$W/ndpflood" probe --iface vps0 --n-live "$ENDPOINTS" \
		--count "$NDP_COUNT" --rate "$NDP_RATE" >"$W/ndp-$1.raw"
	h1=$(host_ticks)
	[ -z "$2" ] || after=$(cpu_ticks "$2")
	python3 - "$W/ndp-$1.raw" "$before" "$after" "$HZ" "$2" "$idle" "$((h1 - h0))" "$hidle" >"$W/ndp-$1.json" <<-'EOF2'
		import json, sys
		r = json.load(open(sys.argv[1]))
		ticks = int(sys.argv[3]) - int(sys.argv[2]) - int(sys.argv[6])
		per = 1000 / int(sys.argv[4]) * 10000 / r["sent"]
		r["cpu_ms_per_10k"] = max(0, ticks) * per if sys.argv[5] else None
		r["cpu_idle_ms_per_10k"] = int(sys.argv[6]) * per if sys.argv[5] else None
		# the probe runs about as long as the idle sample: per 10k sent
		r["host_ms_per_10k"] = max(0, int(sys.argv[7]) - int(sys.argv[8])) * per
		print(json.dumps(r))
	EOF2
}
# ndp_flood NAME PID: goal 2, NDP_FLOOD_RATE for NDP_FLOOD_SECONDS while
# the router keeps re-probing a live address (base reachable time 1 s).
ndp_flood() {
	local before=0 after=0 rss0="null" rss1="null"
	if [ -n "$2" ]; then before=$(cpu_ticks "$2"); rss0=$(rss_of "$2"); fi
	ip netns exec "$S-router" "$W/ndpflood" flood --iface vps0 --rate "$NDP_FLOOD_RATE" \
		--seconds "$NDP_FLOOD_SECONDS" >"$W/flood-$1.raw"
	if [ -n "$2" ]; then after=$(cpu_ticks "$2"); rss1=$(rss_of "$2"); fi
	python3 - "$W/flood-$1.raw" "$before" "$after" "$HZ" "$2" "$rss0" "$rss1" >"$W/flood-$1.json" <<-'EOF2'
		import json, sys
		r = json.load(open(sys.argv[1]))
		ticks = int(sys.argv[3]) - int(sys.argv[2])
		r["cpu_share"] = ticks / int(sys.argv[4]) / r["seconds"] if sys.argv[5] else None
		r["rss_before_mib"] = json.loads(sys.argv[6])
		r["rss_after_mib"] = json.loads(sys.argv[7])
		print(json.dumps(r))
	EOF2
}
# ndp_attack NAME PID: the flood row, as an attacker on the /64 would:
# NDP_ATTACK_RATE solicitations/s for random addresses of the /64, every
# NDP_ATTACK_LIVE_EVERY-th for one of the other live addresses (so the
# responder's budgets are what is attacked), for NDP_ATTACK_SECONDS, once
# forging the router's source address (from another MAC) and once from
# random addresses and MACs, while the router keeps re-probing a live
# address every second (from its link-local address: both are forged).
ndp_attack() {
	local mode ll
	ll=$(ip -n "$S-router" -6 addr show dev vps0 scope link | awk '/inet6/ {sub("/.*", "", $2); print $2; exit}')
	for mode in spoof random; do
		local how=(--source "$ll,$V6B_ROUTER_ADDR")
		[ "$mode" = spoof ] || how=(--random-sources)
		ip netns exec "$S-router" "$W/ndpflood" flood --iface vps0 --rate "$NDP_ATTACK_RATE" \
			--seconds "$NDP_ATTACK_SECONDS" --n-live "$((ENDPOINTS - 1))" --live-every "$NDP_ATTACK_LIVE_EVERY" \
			"${how[@]}" >"$W/attack-$mode-$1.json"
	done
}
# ndp_start NAME CMD...: goal 3, the responder started with NDP_START live
# addresses (CMD runs in the VPS namespace and stays up until killed, or
# returns at once when it only configures the kernel).
ndp_start() {
	local name=$1 pid wait=false
	shift
	[ "$name" != v6bridge ] || wait=true # it announces: wait for all of them
	rm -f "$W/t0"
	ip netns exec "$S-router" "$W/ndpflood" start --iface vps0 --n "$NDP_START" --t0-file "$W/t0" \
		--seconds "$NDP_START_SECONDS" --wait-announced="$wait" >"$W/start-$name.json" &
	local router=$!
	sleep 0.5
	date +%s%N >"$W/t0"
	ip netns exec "$S-vps" "$@" &
	pid=$!
	wait "$router" || true
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}
proxy_flush() {
	ip -n "$S-vps" -6 neigh show proxy dev eth0 | awk '{print "neigh del proxy " $1 " dev eth0"}' >"$W/flush.batch"
	[ ! -s "$W/flush.batch" ] || ip -n "$S-vps" -6 -batch "$W/flush.batch"
	ip netns exec "$S-vps" sysctl -qw net.ipv6.conf.all.proxy_ndp=0 net.ipv6.conf.eth0.proxy_ndp=0
}

if want ndp; then
	ip netns exec "$S-router" sysctl -qw net.ipv6.neigh.vps0.base_reachable_time_ms=1000 net.ipv6.neigh.vps0.delay_first_probe_time=1
	log "NDP: v6bridge's native responder ($ENDPOINTS live addresses), $NDP_COUNT solicitations at $NDP_RATE/s"
	ndp_probe v6bridge "$SCALE_PID"
	log "NDP flood: $NDP_FLOOD_RATE/s for ${NDP_FLOOD_SECONDS}s against v6bridge"
	ndp_flood v6bridge "$SCALE_PID"
	log "NDP attack: $NDP_ATTACK_RATE/s forging the router's address, then from random sources, ${NDP_ATTACK_SECONDS}s each, against v6bridge"
	ndp_attack v6bridge "$SCALE_PID"
	# SIGTERM: the plugin hands its addresses over to kernel proxy entries,
	# which are the kernel's reference run (proxy_ndp=1, proxy_delay=0).
	stop_scale
	log "NDP: the kernel's proxy_ndp ($(ip -n "$S-vps" -6 neigh show proxy dev eth0 | wc -l) proxy entries left by v6bridge's stop)"
	ndp_probe kernel ""
	ndp_flood kernel ""
	ndp_attack kernel ""
	proxy_flush
	log "NDP: ndppd (static rule for the public /112) on the same namespaces"
	cat >"$W/ndppd.conf" <<-EOF
		proxy eth0 {
		    rule 2001:db8:1234:a1:1::/112 {
		        static
		    }
		}
	EOF
	ip netns exec "$S-vps" ndppd -c "$W/ndppd.conf" >"$W/ndppd.log" 2>&1 &
	NDPPD_PID=$!
	ndp_probe ndppd "$NDPPD_PID"
	ndp_flood ndppd "$NDPPD_PID"
	ndp_attack ndppd "$NDPPD_PID"
	kill "$NDPPD_PID" 2>/dev/null || true
	wait "$NDPPD_PID" 2>/dev/null || true
	NDPPD_PID=""
	log "NDP: nobody answering, the host's CPU for sending and dropping the same solicitations"
	ndp_probe none ""

	log "NDP start: $NDP_START live addresses, each responder started from nothing"
	ndp_start v6bridge "$W/ndpflood" respond --uplink eth0 --n "$NDP_START"
	python3 - "$NDP_START" >"$W/proxy.batch" <<-'EOF2'
		import ipaddress, sys
		a = ipaddress.IPv6Address("2001:db8:1234:a1:1::2")
		for i in range(int(sys.argv[1])):
		    print("neigh add proxy %s dev eth0" % (a + i))
	EOF2
	ndp_start kernel sh -c "sysctl -qw net.ipv6.conf.all.proxy_ndp=1 net.ipv6.conf.eth0.proxy_ndp=1 net.ipv6.neigh.eth0.proxy_delay=0 && ip -6 -batch $W/proxy.batch"
	proxy_flush
	ndp_start ndppd ndppd -c "$W/ndppd.conf"
	ip netns exec "$S-router" sysctl -qw net.ipv6.neigh.vps0.base_reachable_time_ms=30000
fi

fastpath_meta=$(cat "$W/fastpath.txt" 2>/dev/null || echo "not measured")
cat >"$W/meta.json" <<EOF
{"date": "$(date -u +%Y-%m-%d)", "cpu": "$cpu", "cores": "$(nproc)", "mem": "$mem", "fastpath": "$fastpath_meta",
 "kernel": "$(uname -r)", $engine_info, "version": "$version",
 "scale_how": "$scale_how"}
EOF
if [ "$JSON" = 1 ]; then
	python3 bench/report.py "$W" --json
else
	python3 bench/report.py "$W"
fi
