#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Write real ICI images into test/fuzz/corpus/: the fuzzer's seeds.

Each comes from a live connection in a throw-away topology, taken with
`tcpcp get` and released again.  Needs root and a build (TCPCP_BUILD).
v4-close-wait.ici and v4-fin-wait-2.ici, half-closed, were taken the
same way by test/test_halfclose.py.
"""
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from lib import build, cli, netns  # noqa: E402
from lib.netns import hostport  # noqa: E402
from lib.traffic import Traffic  # noqa: E402

SEEDS = {
    # name: (family, peer's TCP options, tcpcp-traffic extra arguments)
    'v4-idle': (4, {}, ('--rate', '1')),
    'v6-streaming': (6, {}, ('--rate', '2M')),
    'v4-no-options': (4, dict(timestamps=False, sack=False, window_scaling=False),
                      ('--rate', '2M')),
    'v4-queued': (4, {}, ('--read-stall', '0:3000', '--rate', '2K')),
}


def seed(name, family, opts, extra):
    topo = netns.Topology()
    try:
        topo.tcp_options('peer', **opts)
        ipx = topo.ipx(family)
        srv = Traffic(topo, 'origin', '--listen', hostport(ipx, 5001), '--bytes', '64M', *extra)
        cli.wait_listening(topo, 'origin', 5001)
        peer = Traffic(topo, 'peer', '--connect', hostport(ipx, 5001), '--bytes', '64M', *extra)
        fd = cli.tcp_socket(topo, 'origin', srv.pid)['fd']
        time.sleep(1)
        cli.get(topo, 'origin', srv.pid, fd, HERE / 'corpus' / f'{name}.ici')
        cli.release(topo, 'origin', srv.pid, fd)
        del peer
    finally:
        topo.cleanup()


if __name__ == '__main__':
    build.make_traffic()
    for name, args in SEEDS.items():
        seed(name, *args)
        print(name)
