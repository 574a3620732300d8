# Shared by the demos (sourced): the 4-namespace topology, waiting, the
# peer's capture and the verdict.  Every demo removes all it created on
# exit (the trap below).
#
#     peer --- router --- origin      ipX (the service address) lives on lo
#                   \--- dest         of origin and dest; the router's route
#                                     decides which of them the peer reaches

# The tests run the demos on a build of theirs: TCPCP_BUILD names it and
# TCPCP_SKIP_BUILD=1 skips installing and building (demo_build).
B=$(realpath "${TCPCP_BUILD:-$PWD/build}")
export LD_LIBRARY_PATH=$B

BYTES=${BYTES:-6M}
RATE=${RATE:-1M}
IPX=10.77.9.1
PORT=5001
NS=tcpcp-demo-$$
TMP=$(mktemp -d /tmp/tcpcp-demo.XXXXXX)
PIDS=()

say() { printf '\n== %s\n' "$*"; }
# Background jobs call `ip netns exec` or nsenter directly, not these
# functions, so that $! is their PID rather than a subshell's.
in_ns() { local h=$1; shift; ip netns exec "$NS-$h" "$@"; }
# For CRIU and what it dumps: nsenter, not `ip netns exec`, whose private
# mount namespace CRIU cannot dump ("unreachable sharing").
nsenter_ns() { local h=$1; shift; nsenter --net="/run/netns/$NS-$h" "$@"; }

cleanup() {
	local p h
	disown -a	# no job notices for what is killed here
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	for h in peer router origin dest; do
		for p in $(ip netns pids "$NS-$h" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
		# tcpcp's gate is pinned outside the namespace and holds it.
		nsenter_ns "$h" "$B/tcpcp" gate flush 2>/dev/null || true
		ip netns del "$NS-$h" 2>/dev/null || true
	done
	[[ ${KEEP_TMP:-} ]] || rm -rf "$TMP"
}
trap cleanup EXIT

topology() {
	local h i=1
	# tcpcp runs under ip netns exec here, which cannot mount its bpffs.
	"$B/tcpcp" gate setup
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

demo_build() {
	[[ ${TCPCP_SKIP_BUILD:-} ]] && return
	scripts/install-deps.sh
	make -s -j"$(nproc)" all
}

start_capture() {
	ip netns exec "$NS-peer" tcpdump -i eth0 -n -U -w "$TMP/peer.pcap" -Z root \
		"tcp port $PORT" 2>"$TMP/tcpdump.log" &
	TCPDUMP=$!; PIDS+=($TCPDUMP); disown $TCPDUMP
	wait_for grep -q "listening on" "$TMP/tcpdump.log"
}

# verdict OUT...: print each end's report (the last line of each OUT, then
# the peer's); PASS if the peer's streams match those of the last OUT both
# ways and the peer saw no RST.
verdict() {
	local f rsts
	sleep 0.5; kill -INT $TCPDUMP; sleep 0.5
	for f in "$@" "$TMP/peer.out"; do
		printf '%-8s%s\n' "$(basename "$f" .out):" "$(tail -n1 "$f")"
	done
	rsts=$(tcpdump -r "$TMP/peer.pcap" -n 'tcp[tcpflags] & tcp-rst != 0' 2>/dev/null | wc -l)
	echo "peer saw $rsts RST segment(s)"
	python3 - "$TMP/peer.out" "${@: -1}" "$rsts" <<'PYEOF'
import json, sys
peer, srv = (json.loads(open(f).read().splitlines()[-1]) for f in sys.argv[1:3])
ok = (peer['ok'] and srv['ok'] and int(sys.argv[3]) == 0
      and peer['tx_hash'] == srv['rx_hash'] and peer['rx_hash'] == srv['tx_hash'])
print('\nPASS: both streams intact, the peer noticed nothing' if ok else '\nFAIL')
sys.exit(0 if ok else 1)
PYEOF
}
