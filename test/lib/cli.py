# SPDX-License-Identifier: GPL-2.0-or-later
"""The tcpcp CLI as the tests use it, and finding a process's socket."""
import json
import os
import subprocess

from . import build
from .traffic import wait_for


def tcpcp(topo, host, *args, check=True, timeout=60):
    return topo.run(host, build.tcpcp(), *args, check=check, timeout=timeout)


def get(topo, host, pid, fd, img):
    return tcpcp(topo, host, 'get', '--pid', pid, '--fd', fd, '-o', img)


def release(topo, host, pid, fd):
    return tcpcp(topo, host, 'release', '--pid', pid, '--fd', fd)


def close(topo, host, pid, fd, linger=None):
    extra = ['--linger', linger] if linger is not None else []
    return tcpcp(topo, host, 'close', '--pid', pid, '--fd', fd, *extra)


def gate_entries(topo, host):
    """How many 4-tuples the gate of @host drops (0: it has none)."""
    return int(tcpcp(topo, host, 'gate').stdout)


def create_prefix(img, *opts):
    """Prefix for Traffic(): `tcpcp create IMG OPTS --` execs the rest."""
    return [build.tcpcp(), 'create', str(img), *map(str, opts), '--']


def show(img):
    """The image as JSON; reading a file needs no namespace."""
    r = subprocess.run([build.tcpcp(), 'show', str(img), '--json'],
                       capture_output=True, text=True, env=build.env(), timeout=30)
    assert r.returncode == 0, f'tcpcp show: exit {r.returncode}: {r.stderr.strip()}'
    return json.loads(r.stdout)


def _split(hp):
    host, port = hp.rsplit(':', 1)
    return host.strip('[]').split('%')[0], int(port)


HALF_CLOSED = ('fin-wait-1', 'fin-wait-2', 'close-wait', 'last-ack', 'closing')


def established(topo, host, states=('established',)):
    """TCP sockets of a namespace in states (ss names): dicts of local,
    peer, inode, state."""
    r = topo.run(host, 'ss', '-Htne', *[w for st in states for w in ('state', st)])
    socks = []
    for line in r.stdout.splitlines():
        f = line.split()
        # ss prints the state column only when it lists several.
        state = f.pop(0).lower() if len(states) > 1 else states[0]
        state = {'estab': 'established'}.get(state, state)
        ino = [x for x in f if x.startswith('ino:')]
        socks.append({'local': _split(f[2]), 'peer': _split(f[3]),
                      'recvq': int(f[0]), 'sendq': int(f[1]), 'state': state,
                      'inode': int(ino[0][4:]) if ino else None})
    return socks


def connected(topo, host):
    """Established and half-closed TCP sockets: what tcpcp can pass."""
    return established(topo, host, ('established',) + HALF_CLOSED)


def socket_fds(pid):
    """inode -> fd number for the sockets of a process."""
    fds = {}
    d = f'/proc/{pid}/fd'
    for fd in os.listdir(d):
        try:
            link = os.readlink(f'{d}/{fd}')
        except OSError:
            continue
        if link.startswith('socket:['):
            fds[int(link[8:-1])] = int(fd)
    return fds


def tcp_socket(topo, host, pid, timeout=10, state='established'):
    """The one TCP connection of pid, as established() gives it, plus its
    fd number in that process, once it is in state (an ss name)."""
    def find():
        fds = socket_fds(pid)
        mine = [dict(s, fd=fds[s['inode']]) for s in connected(topo, host)
                if s['inode'] in fds]
        assert len(mine) <= 1, f'pid {pid} has several connections: {mine}'
        return mine[0] if mine and mine[0]['state'] == state else None
    return wait_for(find, timeout, f'a TCP connection of pid {pid} in {host} in state {state}')


def wait_listening(topo, host, port, timeout=10):
    """Connect only once the listener is there: a refused SYN would put
    a RST into the capture."""
    def up():
        r = topo.run(host, 'ss', '-Htln', 'sport', f'= :{port}')
        return bool(r.stdout.strip())
    wait_for(up, timeout, f'a listener on port {port} in {host}')
