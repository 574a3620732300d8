#!/bin/bash
# Cost of one flow: traffic switch (an element in the gateway's steering
# map), through tcpcp_switch_run() and through what it replaced, one
# libnftables text command per element (bench/switch_cost.c), N times
# each, in a gateway namespace of its own (removed after).
#     sudo bench/switch_cost.sh [N...]        (default: 100 500; N over ~500
# puts libnftables' socket above fd 1024, where its select() aborts)
set -euo pipefail
cd "$(dirname "$0")/.."
B=${TCPCP_BUILD:-$PWD/build}
export LD_LIBRARY_PATH=$B
counts=("$@")
((${#counts[@]})) || counts=(100 500)
gw=tcpcp-bench-gw-$$
ip netns add "$gw"
trap 'ip netns del "$gw"' EXIT

printf '%-6s %22s %20s %26s %24s\n' N "tcpcp first us" "tcpcp us/switch" \
	"libnftables first us" "libnftables us/switch"
for n in "${counts[@]}"; do
	ip netns exec "$gw" nft delete table inet tcpcp-steer 2>/dev/null || true
	json=$(unshare -n sh -c 'ip link set lo up && exec "$@"' sh "$B/bench/switch_cost" "$gw" "$n")
	python3 - "$json" <<'PY'
import json, sys
j = json.loads(sys.argv[1])
print(f"{j['n']:<6} {j['lib_first_us']:>22.1f} {j['lib_us']:>20.1f} "
      f"{j['nft_first_us']:>26.1f} {j['nft_us']:>24.1f}")
PY
done
