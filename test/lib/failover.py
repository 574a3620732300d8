# SPDX-License-Identifier: GPL-2.0-or-later
"""Fail-over helpers for the tests and bench/failover.py: a primary that
dies, and tcpcp-fileserver started and waited for."""
import os
import signal

from . import build, netns
from .passd import binary
from .traffic import wait_for


def primary_dies(topo, server, port, side='dport'):
    """The primary host dies: its links cut (every segment in and out of
    eth0 dropped, in its own namespace), all its processes killed, and
    what the kernel still held of the connection gone (`ss -K`: its RST
    goes nowhere; `port` is the peer's, or with side='sport' the
    service's: all its connections).  Then the link is back for the next
    round."""
    table = 'inet tcpcp_test_dead'
    topo.run('origin', 'nft', '-f', '-', input=f'''
        table {table} {{
            chain in {{ type filter hook ingress device eth0 priority -500; policy drop; }}
            chain out {{ type filter hook output priority -500; oifname "eth0" drop; }}
        }}''')
    kids = topo.run('origin', 'pgrep', '-P', server.pid, check=False).stdout.split()
    for pid in [server.pid, *map(int, kids)]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    server.wait(timeout=10)
    topo.run('origin', 'ss', '-K', side, '=', f':{port}', check=False)
    return lambda: topo.run('origin', 'nft', 'delete', 'table', *table.split())


def fileserver(topo, host, log, *args):
    p = topo.popen(host, binary('tcpcp-fileserver'), *map(str, args),
                   stderr=open(log, 'a'))
    wait_for(lambda: 'ready' in log.read_text() or p.poll() is not None, 10, f'ready in {log}')
    assert p.poll() is None, log.read_text()
    return p


def move_to_dest(topo):
    """The standby's --takeover: the router sends ipX (both families) to
    dest, as `Topology.switch_to('dest')` does, as one shell command."""
    r = topo.ns['router']
    return (f'ip netns exec {r} ip route replace {netns.IPX[4]}/32 via {netns.addr("dest", 4)}'
            f' && ip netns exec {r} ip -6 route replace {netns.IPX[6]}/128 via '
            f'{netns.addr("dest", 6)}')


def standby(topo, log, ctl, key, *cmd, timeout_ms=300, takeover=None):
    """`tcpcp standby --once` at dest, up and listening; by default it
    moves ipX there and runs tcpcp-fileserver --resume with each
    connection (root: cmd[0])."""
    p = topo.popen('dest', build.tcpcp(), 'standby', '--listen', ctl, '--key', key,
                   '--timeout', timeout_ms, '--takeover', takeover or move_to_dest(topo),
                   '--once', '--', *map(str, cmd), stderr=open(log, 'w'))
    wait_for(lambda: 'listening' in log.read_text() or p.poll() is not None, 10,
             f'standby up ({log})')
    assert p.poll() is None, log.read_text()
    return p


def resume_cmd(root):
    """COMMAND for `tcpcp standby`: the file server going on."""
    return (binary('tcpcp-fileserver'), '--root', root, '--resume', '{image}', '--skip', '{skip}')


def peer_port(topo, port):
    """The peer's port of its one established connection to :port."""
    out = topo.run('peer', 'ss', '-Htn', 'state', 'established', 'dport', '=', f':{port}').stdout
    return int(out.split()[2].rsplit(':', 1)[1])
