# SPDX-License-Identifier: GPL-2.0-or-later
"""Fail-over helpers for the tests and bench/failover.py: a primary that
dies, and tcpcp-fileserver started and waited for."""
import os
import signal

from .passd import binary
from .traffic import wait_for


def primary_dies(topo, server, port):
    """The primary host dies: its links cut (every segment in and out of
    eth0 dropped, in its own namespace), all its processes killed, and
    what the kernel still held of the connection gone (`ss -K`: its RST
    goes nowhere).  Then the link is back for the next round."""
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
    topo.run('origin', 'ss', '-K', 'dport', '=', f':{port}', check=False)
    return lambda: topo.run('origin', 'nft', 'delete', 'table', *table.split())


def fileserver(topo, host, log, *args):
    p = topo.popen(host, binary('tcpcp-fileserver'), *map(str, args),
                   stderr=open(log, 'a'))
    wait_for(lambda: 'ready' in log.read_text() or p.poll() is not None, 10, f'ready in {log}')
    assert p.poll() is None, log.read_text()
    return p
