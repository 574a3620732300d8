#!/bin/bash
# Why: the patched kernel is tested in a qemu guest that needs no disk
# image: a cpio initramfs with busybox, iproute2 and nft (plus the shared
# libraries ldd lists), the test programs from test/, and an /init that
# runs them, prints PASS/FAIL per test and a SUMMARY line, then powers off.
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
for t in $TOOLS; do
	cp "$t" "$root/usr/sbin/"
	ldd "$t" | grep -o '/[^ ]*' | while read -r lib; do
		cp -L --parents "$lib" "$root"
	done
done

# Tests: C programs are linked statically, shell tests run with busybox sh.
for c in "$HERE"/test/*.c; do
	gcc -O2 -Wall -Wextra -static -o "$root/tests/$(basename "$c" .c)" "$c"
done
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
poweroff -f
INIT
chmod 755 "$root/init"

(cd "$root" && find . | cpio -o -H newc --quiet | gzip -9) > "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
echo "initramfs.sh: $OUT ($(du -h "$OUT" | cut -f1))"
