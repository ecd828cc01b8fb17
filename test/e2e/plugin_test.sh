#!/usr/bin/env bash
# End-to-end: v6bridge with a real engine on the simulated IPv6-only VPS,
# as a managed plugin and as a host service, with the seed's compose file.
#
#   test/e2e/plugin_test.sh legacy|current    (as root, after make build)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"
# shellcheck source=checks.sh
source "$here/checks.sh"
# shellcheck source=security_checks.sh
source "$here/security_checks.sh"
# shellcheck source=fastpath_checks.sh
source "$here/fastpath_checks.sh"

VARIANT=${1:?usage: plugin_test.sh legacy|current|current-nft}
ENGINE_FLAGS=()
case $VARIANT in
legacy | current) KIND=$VARIANT P=${V6B_PREFIX:-e2e${KIND:0:1}} ;;
# The engine's nftables firewall backend, without its userland proxy: v6bridge
# must not need either.
current-nft) KIND=current P=${V6B_PREFIX:-e2en} ENGINE_FLAGS=(--firewall-backend=nftables --userland-proxy=false) ;;
*) echo "unknown variant $VARIANT: want legacy, current or current-nft" >&2; exit 2 ;;
esac
BIN=$repo/bin/v6bridge
PLUGIN=v6bridge:latest
STATE=$V6B_LIB/$P/v6bridge-state
cleanup() {
	local rc=$?
	if [ "$rc" -ne 0 ] || [ "${V6B_KEEP_LOGS:-0}" = 1 ]; then dump_logs || true; fi
	stop_host_service || true
	vps_down "$P" || true
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "# engine: $VARIANT"
vps_up "$P"
engine_up "$P" "$KIND" "${ENGINE_FLAGS[@]}"
image_import "$P"
echo "# engine $(engine_version "$P") (API $(engine_api "$P")), kernel $(uname -r)"
V4FLAG=()
api_at_least "$P" 1.48 && V4FLAG=(--ipv4=false)

# ------------------------------------------------------------- managed plugin
echo "# managed plugin $PLUGIN"
install_managed_plugin
check "docker plugin ls shows $PLUGIN enabled" plugin_listed_enabled
check "the bare name is not a managed plugin's name (engines want the tag)" \
	expect_fail "could not resolve driver\|not found" dk "$P" network create -d v6bridge --ipv6 --subnet fd00:99::/112 bare

D=$PLUGIN
PLUGIN_ACTIVE=1
foundation_checks
nat_checks
fastpath_checks
ndp_checks
metrics_checks
option_checks
security_checks
plan_checks
bad_input_checks
crash_checks
restart_checks
compose_checks "$PLUGIN"
[ "$VARIANT" != current ] || migrate_checks "$PLUGIN"
cleanup_checks

# ------------------------------------------------------------- host service
echo "# host service (bare name v6bridge)"
remove_managed_plugin
PLUGIN_ACTIVE=
start_host_service
D=v6bridge
check "host service: network create with the bare name" \
	dk "$P" network create -d v6bridge --ipam-driver v6bridge --ipv6 "${V4FLAG[@]}" --subnet fd12:3456:789a:8101:1::/112 internal
check "host service: container gets the requested address" \
	run_web internal fd12:3456:789a:8101:1::ab53
check "host service: a second container fetches the page" \
	fetch_from_container internal "http://[fd12:3456:789a:8101:1::ab53]/"
dk "$P" rm -f web >/dev/null
dk "$P" network rm internal >/dev/null
compose_checks v6bridge
cleanup_checks
stop_host_service

summary
