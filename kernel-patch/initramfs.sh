#!/bin/bash
# Why: the patched kernel is tested in a qemu guest that needs no disk
# image: a cpio initramfs with busybox, iproute2 and nft (plus the shared
# libraries ldd lists), the test programs from test/, and an /init that
# runs them, prints PASS/FAIL per test and a SUMMARY line, then powers off.
# Tests named lib_*.c use the project's libtcpcp: they are linked against
# $TCPCP_BUILD/libtcpcp.so (the top Makefile's `make kernel-test` passes
# its build), which goes into the image at /usr/lib/tcpcp with its shared
# libraries at the paths ldd names; without TCPCP_BUILD they are left
# out, with a line.
# Output: $TCPCP_KERNEL_CACHE/initramfs.cpio.gz (default /var/cache/tcpcp-kernel).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${TCPCP_KERNEL_CACHE:-/var/cache/tcpcp-kernel}
OUT=$CACHE/initramfs.cpio.gz
TOOLS="/usr/sbin/ip /usr/sbin/tc /usr/bin/ss /usr/sbin/nft"

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT

if ! dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed'; then
	echo "initramfs.sh: installing busybox-static"
	DEBIAN_FRONTEND=noninteractive apt-get install -y busybox-static >/dev/null
fi
mkdir -p "$CACHE" "$root"/{bin,dev,proc,sys,tmp,run,tests,usr/sbin}
cp /bin/busybox "$root/bin/busybox"
# The kernel opens /dev/console before /init runs, so it must be in the image.
mknod -m 600 "$root/dev/console" c 5 1

# Tools and their shared libraries, at the paths ldd names.  The tools go
# to /usr/sbin, first in PATH, apart from busybox's applets of the same
# name (Debian's busybox sh still prefers its applets: see test/*.sh).
copy_libs() {
	ldd "$1" | grep -o '/[^ ]*' | while read -r lib; do
		cp -L --parents "$lib" "$root"
	done
}
for t in $TOOLS; do
	cp "$t" "$root/usr/sbin/"
	copy_libs "$t"
done

# Tests: C programs are linked statically, shell tests run with busybox sh.
for c in "$HERE"/test/*.c; do
	case $(basename "$c") in lib_*) continue ;; esac
	gcc -O2 -Wall -Wextra -static -o "$root/tests/$(basename "$c" .c)" "$c"
done
BUILD=${TCPCP_BUILD:-}
# The library goes to /usr/lib/tcpcp in the image, not to the build's
# path: /init mounts a tmpfs on /tmp, where a CI clone's build lives.
GUEST_LIB=/usr/lib/tcpcp
if [ -n "$BUILD" ] && [ -e "$BUILD/libtcpcp.so" ]; then
	BUILD=$(cd "$BUILD" && pwd)
	mkdir -p "$root$GUEST_LIB"
	cp -L "$BUILD/libtcpcp.so.1" "$root$GUEST_LIB/"
	copy_libs "$BUILD/libtcpcp.so.1"
	for c in "$HERE"/test/lib_*.c; do
		[ -e "$c" ] || continue
		t="$root/tests/$(basename "$c" .c)"
		gcc -O2 -Wall -Wextra -I"$HERE/../include" -I"$BUILD/gen" -o "$t" "$c" \
			-L"$BUILD" -ltcpcp -Wl,-rpath,"$GUEST_LIB"
	done
else
	echo "initramfs.sh: TCPCP_BUILD not set (or no libtcpcp.so there): the lib_* tests are left out"
fi
# TCPCP_KERNEL_BENCH=1 (`make kernel-bench`): after the tests, the guest
# runs bench/ckpt_cost --receive with the kernel's TCP_ACK_HOLD clamp and
# with the BPF clamp (tcpcp.conf "ack-hold no"), same program, same kernel;
# then bench/resurrect_cost: resurrection with a probe and with
# TCP_REPAIR_RESYNC.
if [ "${TCPCP_KERNEL_BENCH:-0}" = 1 ] && [ -n "$BUILD" ] && [ -e "$BUILD/libtcpcp.so" ]; then
	mkdir -p "$root/bench"
	for b in ckpt_cost resurrect_cost; do
		gcc -D_GNU_SOURCE -O2 -Wall -Wextra -I"$HERE/../include" -o "$root/bench/$b" \
			"$HERE/../bench/$b.c" -L"$BUILD" -ltcpcp -Wl,-rpath,"$GUEST_LIB"
	done
	cat > "$root/bench/run.sh" <<'BENCH'
#!/bin/busybox sh
echo 'ack-hold no' > /tmp/bpf.conf
for how in TCP_ACK_HOLD BPF; do
	[ "$how" = BPF ] && export TCPCP_CONFIG=/tmp/bpf.conf
	/bench/ckpt_cost --receive 2 3 0 100 10 1 2>&1 | sed "s/^/INFO bench.$how: /"
done
unset TCPCP_CONFIG
/bench/resurrect_cost 5 1 10 100 2>&1 | sed "s/^/INFO bench.resurrect: /"
BENCH
	chmod 755 "$root/bench/run.sh"
fi
for s in "$HERE"/test/*.sh; do
	[ -e "$s" ] && install -m 755 "$s" "$root/tests/"
done

cat > "$root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/usr/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
echo "tcpcp-guest: Linux $(uname -r), $(nproc) CPUs, uptime $(cut -d' ' -f1 /proc/uptime) s"
pass=0
fail=0
for t in /tests/*; do
	name=$(basename "$t")
	t0=$(cut -d' ' -f1 /proc/uptime)
	if "$t" --expect-patched; then r=PASS; pass=$((pass + 1)); else r=FAIL; fail=$((fail + 1)); fi
	t1=$(cut -d' ' -f1 /proc/uptime)
	echo "$r $name ($(echo "$t0 $t1" | awk '{printf "%.2f", $2 - $1}') s)"
done
echo "SUMMARY: $pass passed, $fail failed (uptime $(cut -d' ' -f1 /proc/uptime) s)"
[ -x /bench/run.sh ] && /bench/run.sh
poweroff -f
INIT
chmod 755 "$root/init"

(cd "$root" && find . | cpio -o -H newc --quiet | gzip -9) > "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
echo "initramfs.sh: $OUT ($(du -h "$OUT" | cut -f1))"
