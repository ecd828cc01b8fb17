#!/usr/bin/env bash
# Runs kernel tests (TestPrivileged*) of a Go package under another Linux
# kernel, in qemu: for features the host's kernel lacks, like the fast
# path's flowtables (docs/fastpath.md). Debian's linux-image-amd64 has them.
# The VM boots the kernel with an initramfs holding the test binary, busybox,
# nft and nsenter (with their libraries) and the modules the tests need,
# loaded before the tests run; no disk, no network to the outside. Without
# KVM qemu emulates the CPU (TCG): slow, fine for functional tests, never
# for timings.
#
#   test/kernelvm/run.sh [-run REGEXP] [-bench REGEXP] [PACKAGE]   (as root; default ./nat)
#
# Environment: KERNELVM_KERNEL (/boot/vmlinuz-*-amd64, the newest), its
# modules from /lib/modules/<version>; KERNELVM_TIMEOUT (900 s).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"

RUN='Privileged(FastPath|RevokeStops)'
BENCH=
while :; do
	case ${1:-} in
	-run) RUN=$2; shift 2 ;;
	-bench) BENCH=$2; shift 2 ;;
	*) break ;;
	esac
done
PKG=${1:-./nat}
TIMEOUT=${KERNELVM_TIMEOUT:-900}
MODULES=(nf_tables nft_ct nft_nat nft_chain_nat nft_masq nft_flow_offload nf_flow_table_inet nf_conntrack_netlink nft_fib_ipv6 bridge veth dummy xfrm_user)

die() { echo "kernelvm: $*" >&2; exit 1; }
for t in qemu-system-x86_64 busybox nft nsenter cpio modprobe; do
	command -v "$t" >/dev/null || die "$t missing: apt-get install qemu-system-x86 linux-image-amd64 busybox-static nftables util-linux cpio kmod"
done
KERNEL=${KERNELVM_KERNEL:-$(ls /boot/vmlinuz-*-amd64 2>/dev/null | sort -V | tail -n1)}
[ -f "$KERNEL" ] || die "no kernel (apt-get install linux-image-amd64, or set KERNELVM_KERNEL)"
VER=${KERNEL##*/vmlinuz-}
[ -d "/lib/modules/$VER" ] || die "no /lib/modules/$VER for $KERNEL"

W=$(mktemp -d /tmp/kernelvm.XXXXXX)
trap 'rm -rf "$W"' EXIT
R=$W/root
mkdir -p "$R"/{bin,sbin,lib,lib64,proc,sys,dev,tmp,run,etc,mod,usr/lib}
chmod 1777 "$R/tmp"

echo "# kernel $VER, package $PKG, tests $RUN" >&2
CGO_ENABLED=0 go test -c -o "$R/test.bin" "$PKG"
cp "$(command -v busybox)" "$R/bin/busybox"
for a in sh mount insmod ip poweroff sleep cat mkdir ln; do ln -s busybox "$R/bin/$a"; done
# nft and nsenter with the libraries they load
copy_bin() {
	local b lib
	b=$(command -v "$1")
	cp "$b" "$R/bin/"
	for lib in $(ldd "$b" | awk '/=>/ {print $3} /^\t\/lib/ {print $1}'); do
		mkdir -p "$R$(dirname "$lib")"
		cp -L "$lib" "$R$lib"
	done
}
copy_bin nft
copy_bin nsenter
cp /etc/protocols /etc/services "$R/etc/" # nft names protocols and ports from them
# modules, dependencies first
: >"$W/mods"
for m in "${MODULES[@]}"; do
	modprobe -S "$VER" --show-depends "$m" | awk '$1 == "insmod" {print $2}'
done | awk '!seen[$0]++' >"$W/mods"
i=0
while read -r ko; do
	i=$((i + 1))
	case $ko in
	*.xz) xz -dc "$ko" >"$R/mod/$i.ko" ;;
	*.zst) zstd -qdc "$ko" >"$R/mod/$i.ko" ;;
	*) cp "$ko" "$R/mod/$i.ko" ;;
	esac
done <"$W/mods"

cat >"$R/init" <<-EOF_INIT
	#!/bin/sh
	mount -t proc proc /proc
	mount -t sysfs sys /sys
	mount -t devtmpfs dev /dev
	for i in \$(seq 1 $i); do insmod /mod/\$i.ko || echo "insmod \$i failed"; done
	ip link set lo up
	export PATH=/bin HOME=/tmp V6B_KERNEL=1
	cd /tmp
	/test.bin -test.run '$RUN' ${BENCH:+-test.bench '$BENCH' -test.benchtime 3s} -test.v -test.count=1 -test.timeout=${TIMEOUT}s
	echo "kernelvm-exit=\$?"
	poweroff -f
EOF_INIT
chmod +x "$R/init"
cp -r "$repo/$(go list -f '{{.Dir}}' "$PKG" | sed "s|^$repo/||")/testdata" "$R/tmp/" 2>/dev/null || true
(cd "$R" && find . | cpio -o -H newc --quiet | gzip -1) >"$W/initrd.gz"

accel=tcg
[ -w /dev/kvm ] && accel=kvm
echo "# booting ($accel)" >&2
timeout "$TIMEOUT" qemu-system-x86_64 -accel "$accel" -m 1024 -smp 2 -nographic -no-reboot \
	-kernel "$KERNEL" -initrd "$W/initrd.gz" -append "console=ttyS0 panic=-1 quiet" </dev/null | tee "$W/out" |
	awk '/^insmod|^=== RUN/ {on = 1} on' || true
rc=$(sed -n 's/.*kernelvm-exit=\([0-9]*\).*/\1/p' "$W/out" | tail -n1)
[ -n "$rc" ] || { tail -n 30 "$W/out" >&2; die "the VM did not finish the tests"; }
exit "$rc"
