#!/bin/bash
# Why: the patches are only tested when the patched kernel really runs.
# Boots bzImage + initramfs (from build.sh and initramfs.sh) under qemu
# with TCG (no KVM needed), logs the serial console, and exits 0 only if
# the guest's SUMMARY line reports no failure.
set -euo pipefail

CACHE=${TCPCP_KERNEL_CACHE:-/var/cache/tcpcp-kernel}
LOG=${TCPCP_KERNEL_LOG:-$CACHE/run.log}
TIMEOUT=${TCPCP_KERNEL_TIMEOUT:-600}
ACCEL=tcg
[ -w /dev/kvm ] && [ "${TCPCP_KERNEL_KVM:-0}" = 1 ] && ACCEL=kvm

command -v qemu-system-x86_64 >/dev/null || {
	echo "run.sh: installing qemu-system-x86"
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends qemu-system-x86 >/dev/null
}
for f in "$CACHE/bzImage" "$CACHE/initramfs.cpio.gz"; do
	[ -f "$f" ] || { echo "run.sh: $f missing: run build.sh and initramfs.sh" >&2; exit 1; }
done

pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; true' EXIT
start=$(date +%s.%N)
# -no-reboot and panic=-1: a guest panic ends qemu instead of hanging.
nice -n 19 ionice -c3 timeout "$TIMEOUT" qemu-system-x86_64 -machine q35 -accel "$ACCEL" \
	-m 1G -smp 2 -nographic -no-reboot -nic none \
	-kernel "$CACHE/bzImage" -initrd "$CACHE/initramfs.cpio.gz" \
	-append "console=ttyS0 panic=-1 quiet" < /dev/null > "$LOG" 2>&1 &
pid=$!
set +e
wait "$pid"
rc=$?
set -e
pid=
end=$(date +%s.%N)

grep -E '^(tcpcp-guest|PASS|FAIL|SUMMARY|INFO)' "$LOG" | tr -d '\r' || true
printf 'run.sh: qemu exit %d after %.1f s (log: %s)\n' "$rc" "$(echo "$end - $start" | bc)" "$LOG"
[ "$rc" = 124 ] && { echo "run.sh: timeout after $TIMEOUT s" >&2; exit 1; }
grep -q '^SUMMARY: [0-9]* passed, 0 failed' <(tr -d '\r' < "$LOG")
