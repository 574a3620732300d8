#!/bin/sh
# Why: checks that the guest kernel config has what tcpcp's tests need
# (netns, veth, nftables, clsact, BTF) and that the copied tools run.
# Runs inside the qemu guest only (it changes network settings).
set -eu
# Debian's busybox sh prefers its own applets to PATH: call the real tools.
ip() { /usr/sbin/ip "$@"; }
tc() { /usr/sbin/tc "$@"; }
ss() { /usr/sbin/ss "$@"; }
[ -e /sys/kernel/btf/vmlinux ] || { echo "no /sys/kernel/btf/vmlinux"; exit 1; }
ip netns add gt
trap 'ip netns del gt' EXIT
ip link add gt0 type veth peer name gt1 netns gt
ip addr add 10.99.0.1/24 dev gt0
ip link set gt0 up
ip -n gt addr add 10.99.0.2/24 dev gt1
ip -n gt link set gt1 up
ip -n gt link set lo up
tc qdisc add dev gt0 clsact
tc qdisc add dev gt0 root tbf rate 10mbit burst 32k latency 50ms
nft add table inet tcpcp
nft add chain inet tcpcp in '{ type filter hook input priority 0; }'
nft add rule inet tcpcp in ct state established accept
ping -c1 -W5 10.99.0.2 >/dev/null
ss -tan >/dev/null
