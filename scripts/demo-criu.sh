#!/bin/bash
# A process with a live TCP connection checkpointed by CRIU on one host
# and restored on another, with the tcpcp plugin carrying the connection.
# Topology (scripts/demo-lib.sh): peer, router, origin, dest; the service
# address ipX is on origin and dest, and the router's route decides.
#
# A tcpcp-traffic server at origin streams with the peer both ways, each
# end checking every byte.  `criu dump` stops it mid-stream, `criu
# restore` brings it back at dest, the router's route for ipX moves, and
# the stream goes on to its end: the hashes must agree and the peer must
# not have seen a RST.  Needs root; removes everything it created on exit
# (CRIU itself is installed once into /opt/tcpcp-criu and kept).
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/demo-lib.sh

demo_build
CRIU=${TCPCP_CRIU:-$(scripts/criu/install-criu.sh)}
# Compel then stops the task with PTRACE_SYSCALL rather than a hardware
# breakpoint, which some hypervisors never deliver (docs/criu.md).
export CRIU_FAULT=${CRIU_FAULT-130}
TRAFFIC=$B/tcpcp-traffic
IMG=$TMP/img
mkdir "$IMG"

say "topology: namespaces $NS-{peer,router,origin,dest}, ipX $IPX at origin"
topology
start_capture

say "stream: peer <-> origin, $BYTES each way at $RATE/s"
# Its own session and no terminal, stdio on files: as CRIU can dump it.
nsenter --net="/run/netns/$NS-origin" setsid "$TRAFFIC" --listen "$IPX:$PORT" --bytes "$BYTES" --rate "$RATE" \
	--tx-seed 1 --rx-seed 2 </dev/null >"$TMP/server.out" 2>"$TMP/server.err" &
SERVER=$!; PIDS+=($SERVER); disown $SERVER	# CRIU kills it: no job notice
wait_for listening origin
ip netns exec "$NS-peer" "$TRAFFIC" --connect "$IPX:$PORT" --bytes "$BYTES" --rate "$RATE" \
	--tx-seed 2 --rx-seed 1 >"$TMP/peer.out" &
PEER=$!; PIDS+=($PEER)
wait_for conn_fd origin "$SERVER" >/dev/null
sleep 2

say "origin: criu dump -t $SERVER --tcp-established --network-lock skip --lib build/criu-plugin"
t0=$(date +%s%N)
nsenter_ns origin "$CRIU" dump -t "$SERVER" -D "$IMG" -o dump.log \
	--tcp-established --network-lock skip --lib "$B/criu-plugin"
while [[ -e /proc/$SERVER ]]; do sleep 0.05; done	# killed by the dump, silently
ls -l "$IMG"/tcpcp-*.img
"$B/tcpcp" show "$IMG"/tcpcp-*.img | head -8

say "dest: criu restore --tcp-close --lib build/criu-plugin (the same images)"
nsenter_ns dest "$CRIU" restore -D "$IMG" -d -o restore.log \
	--tcp-close --lib "$B/criu-plugin"
say "router: ipX now via dest"
in_ns router ip route replace "$IPX/32" via 10.77.3.2
t1=$(date +%s%N)
echo "dump -> restored at dest took $(((t1 - t0) / 1000000)) ms"
wait_for conn_fd dest "$SERVER" >/dev/null	# CRIU restores the same pid

say "waiting for the stream to end"
wait "$PEER"
while kill -0 "$SERVER" 2>/dev/null; do sleep 0.1; done
verdict "$TMP/server.out"
