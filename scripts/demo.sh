#!/bin/bash
# A live pass between network namespaces, step by step, with the tcpcp CLI.
# Topology (scripts/demo-lib.sh): peer, router, origin, dest; the service
# address ipX is on origin and dest, and the router's route decides.
#
# The peer streams pseudo-random data to ipX:5001 and the server streams
# back, both at once, each checking every byte it receives.  Mid-stream
# the server's end moves from origin to dest; at the end both sides print
# what they sent and received with a hash, and the hashes must agree.
# Needs root.  Everything it creates is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/demo-lib.sh

demo_build
TCPCP=$B/tcpcp
TRAFFIC=$B/tcpcp-traffic

say "topology: namespaces $NS-{peer,router,origin,dest}, ipX $IPX at origin"
topology
start_capture

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
verdict "$TMP/origin.out" "$TMP/dest.out"
