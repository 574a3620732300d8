#!/bin/bash
# A live pass between network namespaces, step by step, with the tcpcp CLI.
#
#     peer --- router --- origin      ipX (the service address) lives on lo
#                   \--- dest         of origin and dest; the router's route
#                                     decides which of them the peer reaches
#
# The peer streams pseudo-random data to ipX:5001 and the server streams
# back, both at once, each checking every byte it receives.  Mid-stream
# the server's end moves from origin to dest; at the end both sides print
# what they sent and received with a hash, and the hashes must agree.
# Needs root.  Everything it creates is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

BYTES=${BYTES:-6M}
RATE=${RATE:-1M}
IPX=10.77.9.1
PORT=5001
NS=tcpcp-demo-$$
TMP=$(mktemp -d /tmp/tcpcp-demo.XXXXXX)
PIDS=()

say() { printf '\n== %s\n' "$*"; }
# Background jobs use `ip netns exec` directly, so that $! is their PID.
in_ns() { local h=$1; shift; ip netns exec "$NS-$h" "$@"; }

cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	for h in peer router origin dest; do ip netns del "$NS-$h" 2>/dev/null || true; done
	rm -rf "$TMP"
}
trap cleanup EXIT

topology() {
	local h i=1
	for h in peer router origin dest; do
		ip netns add "$NS-$h"
		in_ns "$h" ip link set lo up
	done
	for h in peer origin dest; do
		in_ns router ip link add "to-$h" type veth peer name eth0 netns "$NS-$h"
		in_ns router ip addr add "10.77.$i.1/24" dev "to-$h"
		in_ns router ip link set "to-$h" up
		in_ns "$h" ip addr add "10.77.$i.2/24" dev eth0
		in_ns "$h" ip link set eth0 up
		in_ns "$h" ip route add default via "10.77.$i.1"
		i=$((i + 1))
	done
	in_ns router sysctl -qw net.ipv4.ip_forward=1
	in_ns router sysctl -qw net.ipv4.conf.all.rp_filter=0
	for h in origin dest; do in_ns "$h" ip addr add "$IPX/32" dev lo; done
	in_ns router ip route add "$IPX/32" via 10.77.2.2	# ipX is at origin
}

# fd of the one established connection of process $2 in namespace $1
conn_fd() {
	in_ns "$1" ss -Htnp state established | grep -o "pid=$2,fd=[0-9]*" | cut -d= -f3
}

listening() {
	in_ns "$1" ss -Htln "sport = :$PORT" | grep -q .
}

wait_for() {
	local i
	for i in $(seq 100); do "$@" && return 0; sleep 0.1; done
	echo "demo: timed out waiting for: $*" >&2
	return 1
}

scripts/install-deps.sh
make -s -j"$(nproc)" all
export LD_LIBRARY_PATH=$PWD/build
TCPCP=$PWD/build/tcpcp
TRAFFIC=$PWD/build/tcpcp-traffic

say "topology: namespaces $NS-{peer,router,origin,dest}, ipX $IPX at origin"
topology
ip netns exec "$NS-peer" tcpdump -i eth0 -n -U -w "$TMP/peer.pcap" -Z root "tcp port $PORT" 2>"$TMP/tcpdump.log" &
TCPDUMP=$!; PIDS+=($TCPDUMP); disown $TCPDUMP
wait_for grep -q "listening on" "$TMP/tcpdump.log"

say "stream: peer <-> origin, $BYTES each way at $RATE/s"
ip netns exec "$NS-origin" "$TRAFFIC" --listen "$IPX:$PORT" --bytes "$BYTES" --rate "$RATE" \
	--tx-seed 1 --rx-seed 2 --state-out "$TMP/origin.state" >"$TMP/origin.out" &
ORIGIN=$!; PIDS+=($ORIGIN)
wait_for listening origin
ip netns exec "$NS-peer" "$TRAFFIC" --connect "$IPX:$PORT" --bytes "$BYTES" --rate "$RATE" \
	--tx-seed 2 --rx-seed 1 >"$TMP/peer.out" &
PEER=$!; PIDS+=($PEER)
wait_for conn_fd origin "$ORIGIN" >/dev/null
FD=$(conn_fd origin "$ORIGIN")
sleep 2

say "origin: tcpcp get --pid $ORIGIN --fd $FD (isolate, write the ICI)"
t0=$(date +%s%N)
in_ns origin "$TCPCP" get --pid "$ORIGIN" --fd "$FD" -o "$TMP/conn.ici"
"$TCPCP" show "$TMP/conn.ici"

say "dest: tcpcp create (in repair mode, gated) and hand it to a new tcpcp-traffic"
ip netns exec "$NS-dest" "$TCPCP" create "$TMP/conn.ici" -- \
	"$TRAFFIC" --fd 3 --state "$TMP/origin.state" --rate "$RATE" >"$TMP/dest.out" &
DEST=$!; PIDS+=($DEST)
wait_for conn_fd dest "$DEST" >/dev/null

say "router: ipX now via dest; dest: tcpcp activate; origin: tcpcp close"
in_ns router ip route replace "$IPX/32" via 10.77.3.2
in_ns dest "$TCPCP" activate --pid "$DEST" --fd 3 --image "$TMP/conn.ici"
t1=$(date +%s%N)
in_ns origin "$TCPCP" close --pid "$ORIGIN" --fd "$FD"
kill -TERM "$ORIGIN"
wait "$ORIGIN" || true
echo "get -> activate took $(((t1 - t0) / 1000000)) ms; the ICI is $(stat -c %s "$TMP/conn.ici") bytes"

say "waiting for the stream to end"
wait "$PEER"
wait "$DEST"
sleep 0.5; kill -INT $TCPDUMP; sleep 0.5
echo "origin: $(cat "$TMP/origin.out")"
echo "dest:   $(cat "$TMP/dest.out")"
echo "peer:   $(cat "$TMP/peer.out")"
rsts=$(tcpdump -r "$TMP/peer.pcap" -n 'tcp[tcpflags] & tcp-rst != 0' 2>/dev/null | wc -l)
echo "peer saw $rsts RST segment(s)"

python3 - "$TMP/peer.out" "$TMP/dest.out" "$rsts" <<'EOF'
import json, sys
peer, dest = (json.loads(open(f).read().splitlines()[-1]) for f in sys.argv[1:3])
ok = (peer['ok'] and dest['ok'] and int(sys.argv[3]) == 0
      and peer['tx_hash'] == dest['rx_hash'] and peer['rx_hash'] == dest['tx_hash'])
print('\nPASS: both streams intact, the peer noticed nothing' if ok else '\nFAIL')
sys.exit(0 if ok else 1)
EOF
