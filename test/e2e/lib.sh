# shellcheck shell=bash
# v6bridge end-to-end test rig: a simulated IPv6-only VPS in network namespaces,
# private Docker engines inside it, a busybox image, and a tiny check framework.
# Source it (safe under `set -euo pipefail`); see test/e2e/README.md.
#
# Nothing here touches the root network namespace: every link, address, route,
# sysctl and firewall rule lives in namespaces named "$P-*".

V6B_TOOLS=${V6B_TOOLS:-/opt/v6bridge-tools/bin}
V6B_RUN=${V6B_RUN:-/run/v6b-e2e}
V6B_LIB=${V6B_LIB:-/var/lib/v6b-e2e}
V6B_CACHE=${V6B_CACHE:-/var/cache/v6b-e2e}
V6B_ENGINE_TIMEOUT=${V6B_ENGINE_TIMEOUT:-90}

# The simulated provider's plan (see /work/shared/seed and examples/seed).
V6B_VPS_ADDR=2001:db8:1234:a1::1
V6B_ROUTER_ADDR=2001:db8:1234:a1::fffe
V6B_ROUTER_INET_ADDR=2001:db8:ffff::1
V6B_INET_ADDR=2001:db8:ffff::10

_v6b_log() { echo "# $*" >&2; }
_v6b_die() { echo "v6b-e2e: $*" >&2; return 1; }

# ---------------------------------------------------------------- check framework
V6B_PASSED=${V6B_PASSED:-0}
V6B_FAILED=${V6B_FAILED:-0}

# check "description" cmd args...  -> "ok   - description" or "FAIL - description"
# followed by the command's output, indented. Never fails itself.
check() {
	local desc=$1 out rc=0
	shift
	out=$("$@" 2>&1) || rc=$?
	if [ "$rc" -eq 0 ]; then
		V6B_PASSED=$((V6B_PASSED + 1))
		echo "ok   - $desc"
	else
		V6B_FAILED=$((V6B_FAILED + 1))
		echo "FAIL - $desc (exit $rc)"
		[ -z "$out" ] || printf '%s\n' "$out" | sed 's/^/    /'
	fi
	return 0
}

# summary: prints "N passed, N failed"; non-zero when anything failed.
summary() {
	echo "$V6B_PASSED passed, $V6B_FAILED failed"
	[ "$V6B_FAILED" -eq 0 ]
}

# retry SECONDS cmd...: rerun cmd every 0.2 s until it succeeds or time is up.
retry() {
	local deadline=$((SECONDS + $1)) rc=0
	shift
	while :; do
		rc=0
		"$@" && return 0 || rc=$?
		[ "$SECONDS" -lt "$deadline" ] || return "$rc"
		sleep 0.2
	done
}

# ---------------------------------------------------------------- docker CLI
# The newest docker CLI found (28.x negotiates down to 20.10 engines, supports
# --ipv4=false). Override with V6B_DOCKER_CLI.
_v6b_cli() {
	if [ -n "${V6B_DOCKER_CLI:-}" ]; then echo "$V6B_DOCKER_CLI"; return 0; fi
	local c v best="" bestv=""
	for c in /usr/local/bin/docker /usr/bin/docker "$V6B_TOOLS/docker"; do
		[ -x "$c" ] || continue
		v=$("$c" --version 2>/dev/null | sed -n 's/^Docker version \([0-9.]*\).*/\1/p')
		[ -n "$v" ] || continue
		if [ -z "$best" ] || [ "$(printf '%s\n%s\n' "$bestv" "$v" | sort -V | tail -n1)" = "$v" ] && [ "$v" != "$bestv" ]; then
			best=$c bestv=$v
		fi
	done
	[ -n "$best" ] || { _v6b_die "no docker CLI found (run scripts/install-deps.sh)"; return 1; }
	V6B_DOCKER_CLI=$best
	echo "$best"
}

# dk P args...: the docker CLI talking to the engine of VPS P (compose too: dk P compose ...).
dk() {
	local p=$1
	shift
	[ -n "${V6B_DOCKER_CLI:-}" ] || _v6b_cli >/dev/null || return 1
	DOCKER_HOST="unix://$V6B_RUN/$p/docker.sock" "$V6B_DOCKER_CLI" "$@"
}

# ---------------------------------------------------------------- the VPS
_v6b_ns() { ip netns list 2>/dev/null | awk '{print $1}' | grep -x "$1" >/dev/null; }
_v6b_sysctl() { ip netns exec "$1" sysctl -qw "$2" >/dev/null; }

# vps_up P: namespaces P-vps (docker host), P-router (provider), P-inet (internet).
vps_up() {
	local p=${1:?vps_up P}
	[ "${#p}" -le 8 ] || { _v6b_die "prefix '$p' too long (max 8)"; return 1; }
	if _v6b_ns "$p-vps" && _v6b_ns "$p-router" && _v6b_ns "$p-inet" &&
		ip -n "$p-vps" -6 route show default 2>/dev/null | grep "$V6B_ROUTER_ADDR" >/dev/null; then
		return 0
	fi
	vps_down "$p"
	local n
	# explicit `|| return`: callers like `check` run this where set -e does not apply
	for n in vps router inet; do
		ip netns add "$p-$n" || return 1
		ip -n "$p-$n" link set lo up || return 1
		_v6b_sysctl "$p-$n" net.ipv6.conf.default.accept_dad=0 || return 1
		_v6b_sysctl "$p-$n" net.ipv6.conf.all.accept_dad=0 || return 1
	done
	# links are created directly inside the namespaces: the root netns never sees them
	ip -n "$p-vps" link add eth0 type veth peer name vps0 netns "$p-router" || return 1
	ip -n "$p-inet" link add eth0 type veth peer name inet0 netns "$p-router" || return 1
	_v6b_sysctl "$p-router" net.ipv6.conf.all.forwarding=1 || return 1
	ip -n "$p-router" addr add "$V6B_ROUTER_ADDR/64" dev vps0 nodad || return 1
	ip -n "$p-router" addr add "$V6B_ROUTER_INET_ADDR/64" dev inet0 nodad || return 1
	ip -n "$p-vps" addr add "$V6B_VPS_ADDR/64" dev eth0 nodad || return 1
	ip -n "$p-inet" addr add "$V6B_INET_ADDR/64" dev eth0 nodad || return 1
	ip -n "$p-vps" link set eth0 up || return 1
	ip -n "$p-router" link set vps0 up || return 1
	ip -n "$p-router" link set inet0 up || return 1
	ip -n "$p-inet" link set eth0 up || return 1
	ip -n "$p-vps" -6 route add default via "$V6B_ROUTER_ADDR" dev eth0 || return 1
	ip -n "$p-inet" -6 route add default via "$V6B_ROUTER_INET_ADDR" dev eth0 || return 1
	mkdir -p "$V6B_RUN/$p" "$V6B_LIB/$p/logs"
}

# vps_add Q --router P [--lan a2]: a second VPS, namespace Q-vps, behind P's existing
# provider router (vps_up P first) on a link of its own with its own /64:
# eth0 2001:db8:1234:<lan>::1/64 (default lan a2), default via 2001:db8:1234:<lan>::fffe,
# the router's side named vps-Q. Q-router and Q-inet do not exist: P-router and
# P-inet are shared. Engines and in_vps work on Q as on P; vps_down Q removes Q-vps
# (and with it the router's side of the link). Idempotent.
vps_add() {
	local q=${1:?vps_add Q --router P [--lan a2]} p="" lan=a2
	shift
	while [ $# -gt 0 ]; do
		case $1 in
		--router) p=${2:?--router P}; shift 2 ;;
		--lan) lan=${2:?--lan HEX}; shift 2 ;;
		*) _v6b_die "vps_add: unknown argument '$1' (want --router P [--lan a2])"; return 1 ;;
		esac
	done
	[ -n "$p" ] || { _v6b_die "vps_add $q: --router P is required"; return 1; }
	[ "${#q}" -le 8 ] || { _v6b_die "prefix '$q' too long (max 8)"; return 1; }
	[[ $lan =~ ^[0-9a-f]{1,4}$ ]] && [ "$lan" != a1 ] ||
		{ _v6b_die "vps_add $q: --lan '$lan': want 1 to 4 hex digits other than a1 (P's)"; return 1; }
	_v6b_ns "$p-router" || { _v6b_die "vps_add $q: no router $p-router (vps_up $p first)"; return 1; }
	local addr=2001:db8:1234:$lan::1 gw=2001:db8:1234:$lan::fffe rif=vps-$q
	if _v6b_ns "$q-vps" && ip -n "$q-vps" -6 route show default 2>/dev/null | grep "$gw" >/dev/null &&
		ip -n "$p-router" link show "$rif" >/dev/null 2>&1; then
		return 0
	fi
	vps_down "$q"
	ip netns add "$q-vps" || return 1
	ip -n "$q-vps" link set lo up || return 1
	_v6b_sysctl "$q-vps" net.ipv6.conf.default.accept_dad=0 || return 1
	_v6b_sysctl "$q-vps" net.ipv6.conf.all.accept_dad=0 || return 1
	ip -n "$q-vps" link add eth0 type veth peer name "$rif" netns "$p-router" || return 1
	ip -n "$p-router" addr add "$gw/64" dev "$rif" nodad || return 1
	ip -n "$q-vps" addr add "$addr/64" dev eth0 nodad || return 1
	ip -n "$q-vps" link set eth0 up || return 1
	ip -n "$p-router" link set "$rif" up || return 1
	ip -n "$q-vps" -6 route add default via "$gw" dev eth0 || return 1
	mkdir -p "$V6B_RUN/$q" "$V6B_LIB/$q/logs"
}

# vps_down P: stop engines and whatever runs in the namespaces, remove them. Idempotent.
vps_down() {
	local p=${1:?vps_down P} n pid
	engine_down "$p" || true
	for n in inet router vps; do
		_v6b_ns "$p-$n" || continue
		for pid in $(ip netns pids "$p-$n" 2>/dev/null); do kill -TERM "$pid" 2>/dev/null || true; done
	done
	for n in inet router vps; do
		_v6b_ns "$p-$n" || continue
		for pid in $(ip netns pids "$p-$n" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
		ip netns del "$p-$n" 2>/dev/null || true
	done
	_v6b_mntns_down "$p"
	if [ -d "$V6B_LIB/$p" ]; then
		find "$V6B_LIB/$p" -mindepth 1 -maxdepth 1 ! -name logs -exec rm -rf --one-file-system {} + 2>/dev/null || true
	fi
	rm -rf --one-file-system "${V6B_RUN:?}/$p" 2>/dev/null || true
	rmdir "$V6B_RUN" "$V6B_LIB/$p/logs" "$V6B_LIB/$p" "$V6B_LIB" 2>/dev/null || true
}

# ---------------------------------------------------------------- mount namespace
# Each VPS gets a private mount namespace (kept by a bind-mounted ns file, no process)
# with its own /run/docker, /etc/docker, /run/containerd and a sysfs of P-vps, so two
# engines (and a host-service plugin socket /run/docker/plugins/v6bridge.sock) never see
# each other; dockerd hard-codes /run/docker/plugins for managed plugins.
_v6b_mntns() { echo "$V6B_RUN/$1/ns/mnt"; }

_v6b_mntns_up() {
	local p=$1 d="$V6B_RUN/$1" dir
	local f
	f=$(_v6b_mntns "$p")
	if [ -e "$f" ] && nsenter --mount="$f" true 2>/dev/null; then return 0; fi
	mkdir -p "$d/ns" || return 1
	mountpoint -q "$d/ns" || mount --bind "$d/ns" "$d/ns" || return 1
	mount --make-private "$d/ns" || return 1
	: >"$f" || return 1
	# mount points that must exist on the host; remember the ones we create
	for dir in /run/docker /etc/docker /run/containerd; do
		if [ ! -d "$dir" ]; then
			mkdir -p "$dir" || return 1
			echo "$dir" >>"$V6B_RUN/created-dirs"
		fi
	done
	nsenter --net="/run/netns/$p-vps" unshare --mount="$f" --propagation private sh -euc '
		for dir in /run/docker /etc/docker /run/containerd; do
			mount -t tmpfs -o mode=0755 v6b-e2e "$dir"
		done
		# sysfs of this netns, keeping the cgroup mounts
		cg=$1/ns-cg
		mkdir -p "$cg"
		mount --rbind /sys/fs/cgroup "$cg"
		mount -t sysfs sysfs /sys
		mount --move "$cg" /sys/fs/cgroup
		rmdir "$cg"
	' sh "$d"
}

_v6b_mntns_down() {
	local p=$1 d="$V6B_RUN/$1" f dir
	f=$(_v6b_mntns "$p")
	if mountpoint -q "$f" 2>/dev/null; then umount "$f" 2>/dev/null || umount -l "$f" || true; fi
	if mountpoint -q "$d/ns" 2>/dev/null; then umount "$d/ns" 2>/dev/null || umount -l "$d/ns" || true; fi
	# host mount points created for the private mounts, once no VPS uses them any more
	rm -f "$f"
	if [ -f "$V6B_RUN/created-dirs" ] && ! awk '{print $5}' /proc/self/mountinfo | grep "^$V6B_RUN/.*/ns/mnt\$" >/dev/null; then
		while read -r dir; do rmdir "$dir" 2>/dev/null || true; done <"$V6B_RUN/created-dirs"
		rm -f "$V6B_RUN/created-dirs"
	fi
	rmdir "$V6B_RUN" 2>/dev/null || true
}

# in_vps P cmd...: run cmd in P-vps's network and private mount namespaces (where the
# engine runs; start a host-service plugin this way).
in_vps() {
	local p=${1:?in_vps P cmd...}
	shift
	_v6b_ns "$p-vps" || { _v6b_die "no VPS $p (vps_up $p)"; return 1; }
	if [ -e "$(_v6b_mntns "$p")" ] && mountpoint -q "$(_v6b_mntns "$p")"; then
		nsenter --net="/run/netns/$p-vps" --mount="$(_v6b_mntns "$p")" -- "$@"
	else
		nsenter --net="/run/netns/$p-vps" -- "$@"
	fi
}

# ---------------------------------------------------------------- engines
_v6b_pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# containerd for KIND: legacy = Debian's; current = the v2 build when install-deps made
# one (the current engine needs containerd >= 1.7), else Debian's.
_v6b_containerd() {
	case $1 in
	legacy) echo /usr/bin/containerd ;;
	current) if [ -x "$V6B_TOOLS/containerd" ]; then echo "$V6B_TOOLS/containerd"; else echo /usr/bin/containerd; fi ;;
	esac
}

# engine_up P KIND [dockerd flags...]: KIND legacy (Debian docker.io 20.10) or current
# (dockerd built from the Go module proxy + runc 1.5.2). Waits until `docker info` answers.
engine_up() {
	local p=${1:?engine_up P KIND} kind=${2:?engine_up P KIND}
	shift 2
	local d="$V6B_RUN/$p" l="$V6B_LIB/$p" ctrd dockerd path
	local -a flags=()
	_v6b_ns "$p-vps" || { _v6b_die "no VPS $p (vps_up $p first)"; return 1; }
	if _v6b_pid_alive "$d/dockerd.pid"; then
		_v6b_die "engine of $p already running ($(cat "$d/kind" 2>/dev/null)); engine_down $p first"
		return 1
	fi
	path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
	case $kind in
	legacy)
		dockerd=/usr/sbin/dockerd
		[ -x "$dockerd" ] || { _v6b_die "$dockerd missing (run scripts/install-deps.sh)"; return 1; }
		;;
	current)
		dockerd=$V6B_TOOLS/dockerd
		local f
		for f in dockerd runc docker-proxy; do
			[ -x "$V6B_TOOLS/$f" ] || { _v6b_die "$V6B_TOOLS/$f missing (run scripts/install-deps.sh)"; return 1; }
		done
		path=$V6B_TOOLS:$path # docker-proxy, containerd-shim-runc-v2 of the same generation
		flags+=(--add-runtime "v6brunc=$V6B_TOOLS/runc" --default-runtime v6brunc)
		;;
	*) _v6b_die "engine kind '$kind': want legacy or current"; return 1 ;;
	esac
	ctrd=$(_v6b_containerd "$kind")
	# with --firewall-backend=nftables dockerd sets no forwarding sysctl itself and refuses
	# to create its default IPv4 bridge without net.ipv4.ip_forward=1: set that one in the
	# VPS (it has no IPv4 uplink). IPv6 forwarding stays with the plugin / the test.
	case " $* " in *" --firewall-backend=nftables "* | *" --firewall-backend nftables "*)
		_v6b_sysctl "$p-vps" net.ipv4.ip_forward=1 || return 1 ;;
	esac
	engine_down "$p" >/dev/null 2>&1 || true
	_v6b_mntns_up "$p" || { _v6b_die "private mount namespace of $p failed"; return 1; }
	mkdir -p "$d/containerd" "$l/containerd" "$l/docker" "$l/logs" || return 1
	echo "$kind" >"$d/kind"
	cat >"$d/containerd.toml" <<-EOF
		version = 2
		root = "$l/containerd"
		state = "$d/containerd/state"
		disabled_plugins = ["io.containerd.grpc.v1.cri"]
		[grpc]
		  address = "$d/containerd/containerd.sock"
		[ttrpc]
		  address = "$d/containerd/containerd.sock.ttrpc"
		[debug]
		  address = "$d/containerd/debug.sock"
	EOF
	: >"$l/logs/containerd.log"
	in_vps "$p" env PATH="$path" "$ctrd" --config "$d/containerd.toml" \
		</dev/null >>"$l/logs/containerd.log" 2>&1 &
	echo $! >"$d/containerd.pid"
	if ! retry 30 test -S "$d/containerd/containerd.sock"; then
		tail -n 30 "$l/logs/containerd.log" >&2
		_v6b_die "containerd of $p did not start"
		return 1
	fi
	echo '{}' >"$d/daemon.json"
	: >"$l/logs/dockerd.log"
	# the whole dockerd command line, for engine_restart
	printf '%s\0' env PATH="$path" "$dockerd" \
		--containerd "$d/containerd/containerd.sock" \
		--data-root "$l/docker" --exec-root "$d/exec" --pidfile "$d/dockerd.pid" \
		--host "unix://$d/docker.sock" --config-file "$d/daemon.json" \
		--cgroup-parent "v6b-e2e-$p" \
		"${flags[@]}" "$@" >"$d/dockerd.cmd"
	_v6b_dockerd_start "$p"
}

# engine_restart P: restart dockerd only, with the same flags (containerd, the private
# mounts and host-service plugins started with in_vps keep running). Containers stop
# with dockerd (no live-restore) and restart=always ones come back.
engine_restart() {
	local p=${1:?engine_restart P} d="$V6B_RUN/${1:-}"
	[ -f "$d/dockerd.cmd" ] || { _v6b_die "no engine of $p to restart"; return 1; }
	_v6b_stop "$d/dockerd.pid" 30
	_v6b_stop "$d/dockerd.launch.pid" 5
	_v6b_dockerd_start "$p"
}

_v6b_dockerd_start() {
	local p=$1 d="$V6B_RUN/$1" l="$V6B_LIB/$1" deadline=$((SECONDS + V6B_ENGINE_TIMEOUT))
	local -a cmd
	mapfile -d '' cmd <"$d/dockerd.cmd"
	in_vps "$p" "${cmd[@]}" </dev/null >>"$l/logs/dockerd.log" 2>&1 &
	echo $! >"$d/dockerd.launch.pid"
	while ! dk "$p" info >/dev/null 2>&1; do
		if ! kill -0 "$(cat "$d/dockerd.launch.pid")" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
			echo "--- dockerd log ($l/logs/dockerd.log):" >&2
			tail -n 40 "$l/logs/dockerd.log" >&2
			echo "--- containerd log:" >&2
			tail -n 10 "$l/logs/containerd.log" >&2
			_v6b_die "engine $(cat "$d/kind") of $p died or did not answer within ${V6B_ENGINE_TIMEOUT}s"
			return 1
		fi
		sleep 0.2
	done
}


# engine_version P: the engine's server version (20.10.24+dfsg1, or 2.0.0-beta.24 for the
# moby v2 module build: compare engine_api, not this, to tell generations apart).
engine_version() {
	dk "${1:?engine_version P}" version --format '{{.Server.Version}}'
}

# engine_api P: the engine's API version (1.41 for 20.10; >= 1.48 accepts --ipv4=false).
engine_api() {
	dk "${1:?engine_api P}" version --format '{{.Server.APIVersion}}'
}

# engine_kind P: legacy or current, as given to engine_up.
engine_kind() {
	cat "$V6B_RUN/${1:?engine_kind P}/kind"
}

# api_at_least P 1.48: true when the engine's API version is at least that.
api_at_least() {
	local have
	have=$(engine_api "$1") || return 1
	[ "$(printf '%s\n%s\n' "$2" "$have" | sort -V | head -n1)" = "$2" ]
}

# _v6b_stop PIDFILE SECONDS: TERM, wait, KILL.
_v6b_stop() {
	local f=$1 t=$2 pid
	[ -f "$f" ] || return 0
	pid=$(cat "$f")
	rm -f "$f"
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	retry "$t" _v6b_gone "$pid" || { kill -KILL "$pid" 2>/dev/null || true; retry 5 _v6b_gone "$pid" || true; }
}
_v6b_gone() { ! kill -0 "$1" 2>/dev/null; }

# engine_down P: stop dockerd, then containerd, then leftovers (shims, containers), and
# drop the engine's private mounts. Idempotent.
engine_down() {
	local p=${1:?engine_down P} d="$V6B_RUN/$1" pid cg
	[ -d "$d" ] || return 0
	[ -f "$d/dockerd.pid" ] || { [ -f "$d/dockerd.launch.pid" ] && cp "$d/dockerd.launch.pid" "$d/dockerd.pid"; }
	_v6b_stop "$d/dockerd.pid" 30
	_v6b_stop "$d/dockerd.launch.pid" 5
	_v6b_stop "$d/containerd.pid" 15
	# shims and container processes the engine left: they live in the engine's cgroup
	# parent (containers), or in the VPS netns and our private mount ns (shims, plugins)
	for cg in $(find /sys/fs/cgroup -maxdepth 6 -type d -name "v6b-e2e-$p" 2>/dev/null); do
		for pid in $(find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
	done
	if [ -e "$(_v6b_mntns "$p")" ]; then
		local ino
		ino=$(stat -Lc %i "$(_v6b_mntns "$p")" 2>/dev/null || true)
		# one find, not a stat per process: on a busy machine that loop took ~15 s
		for pid in $(find /proc/[0-9]*/ns/mnt -maxdepth 0 -lname "mnt:\[$ino\]" 2>/dev/null); do
			pid=${pid#/proc/}
			kill -KILL "${pid%%/*}" 2>/dev/null || true
		done
	fi
	for cg in $(find /sys/fs/cgroup -maxdepth 6 -type d -name "v6b-e2e-$p" 2>/dev/null); do
		retry 5 _v6b_rmcg "$cg" || true
	done
	_v6b_mntns_down "$p"
	rm -f "$d/kind" "$d/docker.sock" "$d/dockerd.cmd"
}
_v6b_rmcg() { find "$1" -depth -type d -exec rmdir {} + 2>/dev/null; [ ! -d "$1" ]; }

# ---------------------------------------------------------------- image
# image_import P: busybox:latest from a busybox-static rootfs (tar built once, cached).
image_import() {
	local p=${1:?image_import P} tar
	tar=$(_v6b_busybox_tar) || return 1
	dk "$p" image inspect busybox:latest >/dev/null 2>&1 && return 0
	dk "$p" import -c 'CMD ["sh"]' "$tar" busybox:latest >/dev/null
}

_v6b_busybox_tar() {
	local bb tar root ver
	bb=$(command -v busybox) || { _v6b_die "busybox missing (run scripts/install-deps.sh)"; return 1; }
	ver=$(dpkg-query -W -f='${Version}' busybox-static 2>/dev/null || md5sum <"$bb" | cut -c1-12)
	tar="$V6B_CACHE/busybox-rootfs-$ver.tar"
	if [ ! -s "$tar" ]; then
		mkdir -p "$V6B_CACHE"
		root=$(mktemp -d "$V6B_CACHE/rootfs.XXXXXX")
		chmod 0755 "$root"
		mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,root,proc,sys,dev,tmp,var/www,run}
		chmod 1777 "$root/tmp"
		cp "$bb" "$root/bin/busybox" || return 1
		chroot "$root" /bin/busybox --install -s || return 1
		printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
		printf 'root:x:0:\nnobody:x:65534:\n' >"$root/etc/group"
		printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
		tar --numeric-owner --owner=0 --group=0 -C "$root" -cf "$tar.tmp" . || return 1
		mv "$tar.tmp" "$tar" || return 1
		rm -rf "$root"
	fi
	echo "$tar"
}
