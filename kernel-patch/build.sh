#!/bin/bash
# Why: the patches in series/ must be tested on a real kernel, and a
# kernel build takes many minutes on a small VM.  This script keeps a
# patched Debian linux-source-6.12 tree outside the repository and
# rebuilds it incrementally, so a second run with unchanged patches and
# config is a no-op and a changed patch recompiles only what it touches.
# Output: $TCPCP_KERNEL_CACHE/bzImage (default /var/cache/tcpcp-kernel).
set -euo pipefail
shopt -s nullglob

HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${TCPCP_KERNEL_CACHE:-/var/cache/tcpcp-kernel}
TARBALL=/usr/src/linux-source-6.12.tar.xz
SRC=$CACHE/linux-source-6.12
NICE=(nice -n 19 ionice -c3)
export ARCH=x86_64

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

[ -f "$TARBALL" ] || { echo "build.sh: $TARBALL missing: apt-get install linux-source-6.12" >&2; exit 1; }
command -v pahole >/dev/null || { echo "build.sh: pahole missing (BTF): apt-get install dwarves" >&2; exit 1; }
mkdir -p "$CACHE/applied"
start=$(date +%s)

# Everything that decides the result goes into the stamp.
version=$(dpkg-query -W -f='${Version}' linux-source-6.12)
stamp=$( { echo "$version"; ls "$HERE/series"; cat "$HERE"/series/*.patch "$HERE/build.sh"; } | sha256sum | cut -d' ' -f1)
if [ -f "$CACHE/bzImage" ] && [ "$(cat "$CACHE/stamp" 2>/dev/null)" = "$stamp" ]; then
	echo "build.sh: cached $CACHE/bzImage (stamp $stamp), $(( $(date +%s) - start )) s"
	exit 0
fi
rm -f "$CACHE/stamp"

# A new Debian source version, or a tree whose old patches do not
# revert cleanly, is unpacked again (and then compiled from scratch).
unpack() {
	echo "build.sh: unpacking $TARBALL ($version)"
	rm -rf "$SRC" "$CACHE/applied"
	mkdir -p "$CACHE/applied"
	"${NICE[@]}" tar -C "$CACHE" -xJf "$TARBALL"
	echo "$version" > "$CACHE/version"
}
if [ ! -d "$SRC" ] || [ "$(cat "$CACHE/version" 2>/dev/null)" != "$version" ]; then
	unpack
fi

# Unless the tree already carries exactly this series, revert the applied
# one (newest first) and apply ours.  patch(1) rewrites the files it
# touches, so make recompiles what they affect and nothing else.
if ! diff -rq "$HERE/series" "$CACHE/applied" >/dev/null 2>&1; then
	applied=("$CACHE"/applied/*.patch)
	for ((i = ${#applied[@]} - 1; i >= 0; i--)); do
		echo "build.sh: reverting $(basename "${applied[i]}")"
		if ! patch -d "$SRC" -p1 -R -s --no-backup-if-mismatch < "${applied[i]}"; then
			echo "build.sh: cannot revert $(basename "${applied[i]}"); unpacking again"
			unpack
			break
		fi
	done
	rm -f "$CACHE"/applied/*.patch
	for p in "$HERE"/series/*.patch; do
		echo "build.sh: applying $(basename "$p")"
		patch -d "$SRC" -p1 -s --no-backup-if-mismatch < "$p"
		cp "$p" "$CACHE/applied/"
	done
fi

# A small x86_64 kernel: tinyconfig plus what the tests and tcpcp need.
cd "$SRC"
OPTS="64BIT SMP PRINTK EARLY_PRINTK TTY SERIAL_8250 SERIAL_8250_CONSOLE
BINFMT_ELF BINFMT_SCRIPT BLK_DEV_INITRD RD_GZIP DEVTMPFS DEVTMPFS_MOUNT
PROC_FS PROC_SYSCTL SYSFS TMPFS SHMEM MULTIUSER FUTEX EPOLL SIGNALFD
TIMERFD EVENTFD POSIX_TIMERS FILE_LOCKING PCI ACPI
NET INET IPV6 UNIX PACKET NETDEVICES NET_CORE VETH
SYSVIPC NAMESPACES NET_NS PID_NS UTS_NS IPC_NS USER_NS
NETFILTER NETFILTER_ADVANCED NF_CONNTRACK NF_TABLES NF_TABLES_INET NFT_CT
BPF_SYSCALL BPF_JIT DEBUG_KERNEL DEBUG_INFO_DWARF_TOOLCHAIN_DEFAULT DEBUG_INFO_BTF
CGROUPS CGROUP_BPF NET_SCHED NET_SCH_TBF NET_CLS_ACT NET_CLS_BPF NET_ACT_BPF
NET_SCH_INGRESS TCP_CONG_CUBIC IP_ADVANCED_ROUTER
VIRTIO_MENU VIRTIO_PCI VIRTIO_NET NET_9P NET_9P_VIRTIO 9P_FS
PERF_EVENTS FTRACE UPROBE_EVENTS BPF_EVENTS"
# BPF_EVENTS: without it bpf_probe_read_kernel() is not built, and the
# gate's netfilter programs (lib/bpf/gate.bpf.c) fail to load, as on no
# distribution kernel.  It needs a probe event type; uprobes are the
# smaller one, and the function tracer (default y) would recompile all.
"${NICE[@]}" make -s tinyconfig >/dev/null
# shellcheck disable=SC2046,SC2086
scripts/config $(printf -- '--enable %s ' $OPTS) --disable DEBUG_INFO_NONE \
	--disable DEBUG_INFO_REDUCED --disable DEBUG_INFO_SPLIT \
	--disable FUNCTION_TRACER --disable FUNCTION_GRAPH_TRACER --disable DYNAMIC_FTRACE \
	--disable KPROBES --disable STACK_TRACER
"${NICE[@]}" make -s olddefconfig
for o in $OPTS; do
	grep -q "^CONFIG_$o=y" .config || echo "CONFIG_$o" >> "$tmp/missing"
done
if [ -s "$tmp/missing" ]; then
	echo "build.sh: not enabled after olddefconfig: $(tr '\n' ' ' < "$tmp/missing")" >&2
	exit 1
fi

echo "build.sh: make -j2 bzImage (log: $CACHE/build.log)"
if ! "${NICE[@]}" make -j2 bzImage > "$CACHE/build.log" 2>&1; then
	tail -30 "$CACHE/build.log" >&2
	exit 1
fi
cp arch/x86/boot/bzImage "$CACHE/bzImage"
echo "$stamp" > "$CACHE/stamp"
echo "build.sh: built $CACHE/bzImage ($(make -s kernelrelease)) in $(( $(date +%s) - start )) s"
