# shellcheck shell=bash
# The fast path (issue 16) end to end: the flowtable is in place where the
# kernel has flowtables, and a live connection to a published port stops
# when its container leaves the network, and stays stopped when it comes
# back with the same address (its conntrack entry, and with it an
# offloaded flow, is gone: the connection cannot resume from its middle).
# Uses P, BIN, HOST_ADDR (checks.sh) and the internal network of
# foundation_checks.

FP_ADDR=fd12:3456:789a:8101:1::f7

# fp_client_start ADDR PORT LOG: from the internet namespace, one TCP
# connection that sends a line every 100 ms; each echo read back appends
# the time to LOG.
fp_client_start() {
	ip netns exec "$P-inet" python3 - "$1" "$2" "$3" </dev/null >/dev/null 2>&1 <<-'EOF_PY' &
		import socket, sys, time
		for _ in range(50):  # until the container listens
		    try:
		        s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
		        break
		    except OSError:
		        time.sleep(0.1)
		s.settimeout(0.5)
		log = open(sys.argv[3], "a", buffering=1)
		end = time.time() + 30
		while time.time() < end:
		    try:
		        s.sendall(b"ping\n")
		        if s.recv(64):
		            log.write("%.3f\n" % time.time())
		    except socket.timeout:
		        pass
		    except OSError:
		        break
		    time.sleep(0.1)
	EOF_PY
	FP_CLIENT=$!
}
fp_echoes_since() { # LOG T: echoes after time T
	awk -v t="$2" '$1 > t' "$1" 2>/dev/null | wc -l
}
fp_echoes_at_least() { [ "$(fp_echoes_since "$1" 0)" -ge "$2" ]; }
fp_no_echo_since() { # LOG T
	local n
	n=$(fp_echoes_since "$1" "$2")
	[ "$n" -eq 0 ] || { echo "$n echoes after $2"; return 1; }
}
fp_flowtable_if_supported() {
	local doc
	doc=$(in_vps "$P" "$BIN" doctor 2>&1 | grep -E '^(ok|warn) +fastpath') || true
	case $doc in
	*FASTPATH=false*) # the default: no flowtable, whatever the kernel has
		! in_vps "$P" nft list flowtables ip6 | grep -q 'flowtable ft' || { echo "doctor: $doc, but a flowtable:"; in_vps "$P" nft list flowtables; return 1; } ;;
	ok*) in_vps "$P" nft list flowtables ip6 | grep -q 'flowtable ft' || { echo "doctor: $doc, but no flowtable:"; in_vps "$P" nft list flowtables; return 1; } ;;
	warn*) echo "# $doc" ;;
	*) echo "doctor has no fastpath check: $doc"; return 1 ;;
	esac
}

fastpath_checks() {
	local log=$V6B_RUN/$P/fp-echo.log t
	rm -f "$log"
	check "fast path: the flowtable is in place with FASTPATH=true where the kernel has flowtables, absent by default (doctor says which)" fp_flowtable_if_supported
	check "fast path: an echo container publishing -p 8090:7 starts" \
		dk "$P" run -d --name fpecho --network internal --ip6 "$FP_ADDR" -p 8090:7 busybox nc -ll -p 7 -e cat
	fp_client_start "$HOST_ADDR" 8090 "$log"
	check "fast path: a long-lived connection to [$HOST_ADDR]:8090 passes data" retry 10 fp_echoes_at_least "$log" 10
	dk "$P" network disconnect internal fpecho >/dev/null
	t=$(date +%s.%N)
	sleep 2
	check "fast path: it stops when the container leaves the network" fp_no_echo_since "$log" "$(awk -v t="$t" 'BEGIN { printf "%.3f", t + 0.5 }')"
	dk "$P" network connect --ip6 "$FP_ADDR" internal fpecho >/dev/null
	t=$(date +%s.%N)
	sleep 3
	check "fast path: and does not resume when it comes back with the same address" fp_no_echo_since "$log" "$t"
	kill "$FP_CLIENT" 2>/dev/null || true
	wait "$FP_CLIENT" 2>/dev/null || true
	dk "$P" rm -f fpecho >/dev/null 2>&1 || true
}
