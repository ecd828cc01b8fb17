#!/usr/bin/env bash
# Runs the end-to-end suite on the given engines, one after the other:
# plugin_test.sh on each, release_test.sh (registry, docker plugin install
# and upgrade) on legacy and current, swarm_test.sh (two VPS as a Swarm) on
# current.
#   test/e2e/run.sh [legacy] [current] [current-nft]
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
engines=("$@")
[ ${#engines[@]} -gt 0 ] || engines=(legacy current current-nft)
passed=0 failed=0 rc=0
# each engine runs plugin_test.sh; those in V6B_SWARM_ENGINES (default current) also
# swarm_test.sh (under a minute on current; V6B_SWARM_ENGINES="legacy current" adds
# 20.10, "none" runs it nowhere)
swarm=" ${V6B_SWARM_ENGINES:-current} "
runs=()
for kind in "${engines[@]}"; do
	runs+=("plugin_test.sh $kind")
	case $kind in legacy | current) runs+=("release_test.sh $kind") ;; esac
	case $swarm in *" $kind "*) runs+=("swarm_test.sh $kind") ;; esac
done
for r in "${runs[@]}"; do
	script=${r% *} kind=${r#* }
	out=$(mktemp)
	bash "$here/$script" "$kind" 2>&1 | tee "$out"
	[ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -n1)
	if [ -n "$line" ]; then
		passed=$((passed + ${line%% *}))
		f=${line#*, }
		failed=$((failed + ${f%% *}))
	else
		failed=$((failed + 1))
		echo "FAIL - $script $kind: the suite did not finish"
	fi
	rm -f "$out"
done
echo "e2e: $passed passed, $failed failed"
[ "$rc" -eq 0 ] && [ "$failed" -eq 0 ]
