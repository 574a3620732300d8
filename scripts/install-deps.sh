#!/bin/bash
# Install what tcpcp needs to build, test and demo, from Debian's packages.
# Idempotent: a second run only checks.
set -euo pipefail

PKGS=(
	build-essential pkg-config
	protobuf-c-compiler libprotobuf-c-dev	# the ICI image
	libnftnl-dev libmnl-dev		# flow: steering (table and elements)
	libnftables-dev nftables		# bench/switch_cost (the text path), tests
	libcap-dev				# capability checks
	libnet1-dev libbpf-dev clang		# traffic switching, BPF
	libclang-rt-14-dev			# libFuzzer, for the ICI fuzz target
	util-linux				# setpriv: tests without capabilities
	iproute2 tcpdump			# test topologies and captures
	libssl-dev libnl-route-3-dev		# live passing: HMAC, routes
	curl wget				# demo clients
	python3-pytest
	python3-matplotlib			# bench/ plots
	criu		# criu-plugin.h of CRIU 3.17, which the plugin builds against
	runc busybox-static podman		# container migration tests
	linux-source-6.12 dwarves flex bison bc libelf-dev cpio	# kernel-patch/: the patched kernel
	qemu-system-x86				# kernel-patch/: booted under TCG
)

missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
