#!/bin/bash
# Cost per connection of tcpcp_get and of tcpcp_create + tcpcp_activate:
# microseconds (from op_cost's own clock, without strace) and system calls
# (strace -c, mode minus the mode before it, divided by N), for
# established connections and for half-closed ones (CLOSE_WAIT: the
# create replays the peer's FIN through a raw socket).
#     sudo bench/op_cost.sh [N...]        (default: 1 10 100)
# Each run is in a network namespace of its own (unshare -n), gone after.
# "warm": the same while another connection of the namespace stays gated,
# so that its gate's netfilter hooks stay attached (otherwise each
# activation empties the gate and detaches them, and the next create
# attaches them again).  "carry": with congestion carry-over
# (tcpcp_create_opts.congestion = TCPCP_CONGESTION_CARRY, allowed by a
# tcpcp.conf of the run's own).
set -euo pipefail
cd "$(dirname "$0")/.."
B=${TCPCP_BUILD:-$PWD/build}
OP=$B/bench/op_cost
export LD_LIBRARY_PATH=$B
counts=("$@")
((${#counts[@]})) || counts=(1 10 100)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf 'congestion-carry yes\n' >"$tmp/tcpcp.conf"

in_netns() { unshare -n sh -c 'ip link set lo up && exec "$@"' sh "$@"; }
calls() {	# total system calls of: op_cost N MODE [close-wait]
	in_netns strace -f -c -o "$tmp/strace" "$OP" "$@" >/dev/null
	awk '$NF == "total" { print $(NF-2) }' "$tmp/strace"
}

printf '%-6s %-11s %10s %14s %20s %14s %15s %24s %10s\n' N state "get us" "get syscalls" \
	"create+activate us" "the same, warm" "the same, carry" "create+activate syscalls" \
	"ICI bytes"
for n in "${counts[@]}"; do
	for state in established close-wait; do
		extra=(); [ "$state" = established ] || extra=("$state")
		json=$(in_netns "$OP" "$n" all "${extra[@]}")
		warm=$(in_netns "$OP" "$n" all-warm "${extra[@]}")
		carry=$(TCPCP_CONFIG=$tmp/tcpcp.conf in_netns "$OP" "$n" all-carry "${extra[@]}")
		c0=$(calls "$n" none "${extra[@]}"); c1=$(calls "$n" get "${extra[@]}")
		c2=$(calls "$n" all "${extra[@]}")
		python3 - "$json" "$warm" "$carry" "$n" "$state" "$c0" "$c1" "$c2" <<'PY'
import json, sys
j, w, k = (json.loads(a) for a in sys.argv[1:4])
n, state = int(sys.argv[4]), sys.argv[5]
c0, c1, c2 = map(int, sys.argv[6:])
# The check costs 4 system calls per connection (3 on a half-closed one).
check = 4 if state == 'established' else 3
print(f"{n:<6} {state:<11} {j['get_us']:>10.1f} {(c1 - c0) / n:>14.1f} "
      f"{j['create_activate_us']:>20.1f} {w['create_activate_us']:>14.1f} "
      f"{k['create_activate_us']:>15.1f} "
      f"{(c2 - c1 - n * check) / n:>24.1f} {j['ici_bytes']:>10.0f}")
PY
	done
done
