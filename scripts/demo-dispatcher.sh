#!/bin/bash
# The dispatcher demo (paper section 1.3) in network namespaces:
#
#   peer (curl) --- router (gateway) --- origin: tcpcp-dispatcher on ipX:8080
#                                  \--- dest:   tcpcp-worker w1, w2
#
# The dispatcher reads each HTTP request, passes the live connection to a
# worker with the request path as application state, and the gateway
# steers only that connection (nftables mark + policy route) to dest.
# curl fetches a few files; the script checks their sha256 and shows which
# worker answered.  Topology: scripts/demo-lib.sh.  Needs root; removes
# everything it created on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/demo-lib.sh

demo_build
topology
# Only the connections the dispatcher marks (3) go to dest.
in_ns router ip rule add fwmark 3 lookup 3
in_ns router ip route add $IPX/32 via 10.77.3.2 table 3

mkdir "$TMP/root"
head -c 1048576 /dev/urandom > "$TMP/root/hello.bin"
head -c 8388608 /dev/urandom > "$TMP/root/big.bin"
(umask 077; od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > "$TMP/key")

for w in 1 2; do
	in_ns dest "$B/tcpcp-worker" --ctl 10.77.3.2:700$w --key "$TMP/key" --name "w$w" \
		--root "$TMP/root" 2> >(sed "s/^/  [dest]   /" >&2) &
	PIDS+=($!)
done
in_ns origin "$B/tcpcp-dispatcher" --listen $IPX:8080 --key "$TMP/key" \
	--worker "10.77.3.2:7001=flow:/run/netns/$NS-router:3" \
	--worker "10.77.3.2:7002=flow:/run/netns/$NS-router:3" \
	--switch-back "flow:/run/netns/$NS-router:0" 2> >(sed "s/^/  [origin] /" >&2) &
PIDS+=($!)
sleep 1

fail=0
for f in hello.bin big.bin hello.bin big.bin; do
	hdr=$(in_ns peer curl -sS --max-time 30 -D - -o "$TMP/out" "http://$IPX:8080/$f")
	worker=$(tr -d '\r' <<<"$hdr" | sed -n 's/^X-Worker: //p')
	if [[ -z $worker ]]; then
		echo "[peer]   GET /$f: not answered by a worker"; fail=1
	elif cmp -s "$TMP/out" "$TMP/root/$f"; then
		echo "[peer]   GET /$f: $(sha256sum < "$TMP/out" | cut -c1-16)... ok, answered by worker $worker"
	else
		echo "[peer]   GET /$f: content differs"; fail=1
	fi
done
echo "[router] connections steered to dest, one map entry each:" \
	"$(in_ns router nft list map inet tcpcp-steer v4 | grep -o ': 0x0*3' | wc -l)"
sleep 0.2	# let the daemons' log lines through before the summary ends
if ((fail)); then echo "FAIL"; else echo "PASS: every file intact, each from a worker it was passed to"; fi
exit $fail
