# SPDX-License-Identifier: GPL-2.0-or-later
"""The gate itself (lib/isolate.c, lib/bpf.c): shared by processes,
batched, cleaned up.

Each test holds loopback connections in a namespace of its own
(test/gate/holder.py) and checks what a user would: an isolated
connection's data is not acknowledged, a released one delivers what was
sent meanwhile and echoes, and nothing of the gate is left behind.
"""
import ctypes
import json
import os
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from lib import build, cli

HOLDER = Path(__file__).resolve().parent / 'gate' / 'holder.py'
BPFFS = Path('/run/tcpcp/bpf')
SO_NETNS_COOKIE = 71


class Holder:
    def __init__(self, topo, host, n, v6=False):
        lib = str(build.build_dir() / 'libtcpcp.so')
        argv = ['python3', str(HOLDER), str(n), '--lib', lib] + (['--v6'] if v6 else [])
        self.proc = topo.popen(host, *argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True, env=build.ctypes_env())
        info = json.loads(self.proc.stdout.readline())
        self.pid, self.server = info['pid'], info['server']

    def ask(self, cmd):
        self.proc.stdin.write(cmd + '\n')
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()


def hooks(topo, host):
    """tcpcp's netfilter links pinned for @host's namespace."""
    cookie = netns_cookie(topo, host)
    d = BPFFS / f'net-{cookie:016x}'
    return sorted(p.name for p in d.glob('tcpcp_*')) if d.exists() else []


def netns_cookie(topo, host):
    r = topo.run(host, 'python3', '-c',
                 'import socket,struct; s=socket.socket(); '
                 f'print(struct.unpack("Q", s.getsockopt(socket.SOL_SOCKET, {SO_NETNS_COOKIE}, 8))[0])')
    return int(r.stdout)


def cli_loop(topo, host, cmd, pid, fds, tmp, errors):
    for fd in fds:
        args = [cmd, '--pid', pid, '--fd', fd]
        if cmd == 'get':
            args += ['-o', tmp / f'{pid}-{fd}.img']
        r = cli.tcpcp(topo, host, *args, check=False)
        if r.returncode:
            errors.append(r.stderr.strip())


def test_two_processes_at_once(topo, tmp_path):
    """Two tcpcp processes isolate (then release) the connections of two
    programs at the same time, each one by one through the CLI."""
    a, b = Holder(topo, 'origin', 20), Holder(topo, 'origin', 20, v6=True)
    for cmd in ('get', 'release'):
        errors = []
        threads = [threading.Thread(target=cli_loop, args=(topo, 'origin', cmd, h.pid, h.server,
                                                           tmp_path, errors)) for h in (a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        if cmd == 'get':
            assert cli.gate_entries(topo, 'origin') == 40
            assert len(hooks(topo, 'origin')) == 4
            for h in (a, b):
                assert h.ask('send') == 'ok'
            time.sleep(0.5)
            assert [a.ask('unacked'), b.ask('unacked')] == ['20', '20'], \
                'an isolated connection acknowledged data'
    assert cli.gate_entries(topo, 'origin') == 0
    assert hooks(topo, 'origin') == [], 'the gate kept its hooks with no entry left'
    assert [a.ask('verify'), b.ask('verify')] == ['ok 20', 'ok 20']


def test_batch_10000(topo):
    """10,000 connections isolated in one call and released in one call;
    none left behind, every one delivers and echoes afterwards."""
    n = 10000
    h = Holder(topo, 'origin', n)
    r = h.ask('isolate')
    assert r.startswith('ok'), r
    assert h.ask('entries') == str(n)
    assert hooks(topo, 'origin') == ['tcpcp_in4', 'tcpcp_out4'], \
        'an IPv4-only gate needs only the IPv4 hooks'
    assert h.ask('send') == 'ok'
    # Short: every retransmission dropped meanwhile doubles the wait for
    # the next one, which is what delivers the byte after the release.
    time.sleep(0.3)
    assert h.ask('unacked') == str(n)
    r = h.ask('release')
    assert r.startswith('ok'), r
    assert h.ask('entries') == '0'
    assert hooks(topo, 'origin') == []
    assert h.ask('verify') == f'ok {n}'


@pytest.mark.parametrize('v6', [False, True], ids=['4', '6'])
def test_ends_for_a_time(topo, v6):
    """The batch by 4-tuple (the CRIU plugin's calls, struct tcpcp_ends),
    through a socket that is none of the connections: closed for 2 s, the
    connections fall silent, then deliver once the time has run out with
    no further call (a caller that died midway leaves nothing that drops
    for good); the next call removes the spent entries and the hooks."""
    n = 20
    h = Holder(topo, 'origin', n, v6=v6)
    assert h.ask('isolate-ends 2') == 'ok 0'
    assert h.ask('entries') == str(n)
    assert h.ask('send') == 'ok'
    time.sleep(0.5)
    assert h.ask('unacked') == str(n), 'a gated connection acknowledged data'
    time.sleep(2)
    assert h.ask('entries') == '0', 'the entries outlived their time'
    assert h.ask('verify') == f'ok {n}'
    assert h.ask('release-ends') == 'ok 1'
    assert hooks(topo, 'origin') == []


def test_ends_until_opened(topo):
    """Closed by 4-tuple for good, opened by 4-tuple: the callback runs
    once, the connections deliver and echo, nothing is left behind."""
    n = 20
    h = Holder(topo, 'origin', n, v6=True)
    assert h.ask('isolate-ends 0') == 'ok 0'
    assert h.ask('send') == 'ok'
    time.sleep(3)
    assert h.ask('unacked') == str(n), 'a gated connection acknowledged data'
    assert h.ask('entries') == str(n)
    assert h.ask('release-ends') == 'ok 1'
    assert h.ask('entries') == '0'
    assert hooks(topo, 'origin') == []
    assert h.ask('verify') == f'ok {n}'


ALL_HOOKS = ['tcpcp_in4', 'tcpcp_in6', 'tcpcp_out4', 'tcpcp_out6']


def test_keep(topo):
    """tcpcp_gate_keep (a daemon that takes passes often): the namespace's
    hooks stay attached with no entry, through an isolate and release;
    keep 0 lets them go at once; a keep that has run out goes with the
    next gate call.  The connections are intact."""
    h = Holder(topo, 'origin', 2)
    assert h.ask('keep 60') == 'ok'
    assert hooks(topo, 'origin') == ALL_HOOKS and h.ask('entries') == '0'
    assert h.ask('isolate').startswith('ok') and h.ask('release').startswith('ok')
    assert hooks(topo, 'origin') == ALL_HOOKS, 'the release detached kept hooks'
    assert h.ask('keep 0') == 'ok'
    assert hooks(topo, 'origin') == []
    assert h.ask('keep 1') == 'ok' and hooks(topo, 'origin') == ALL_HOOKS
    time.sleep(1.5)
    assert h.ask('isolate').startswith('ok') and h.ask('release').startswith('ok')
    assert hooks(topo, 'origin') == [], 'a keep that ran out kept the hooks'
    assert h.ask('send') == 'ok' and h.ask('verify') == 'ok 2'


def test_linger_runs_out(topo, tmp_path):
    """A closed origin's lingering entry drops for its time, then counts
    as gone: the next release in the namespace detaches the hooks."""
    h = Holder(topo, 'origin', 2)
    pid, (fd1, fd2) = h.pid, h.server
    cli.get(topo, 'origin', pid, fd1, tmp_path / '1.img')
    cli.close(topo, 'origin', pid, fd1, linger=1)
    assert cli.gate_entries(topo, 'origin') == 1
    cli.get(topo, 'origin', pid, fd2, tmp_path / '2.img')
    assert cli.gate_entries(topo, 'origin') == 2
    time.sleep(1.5)
    assert cli.gate_entries(topo, 'origin') == 1
    cli.release(topo, 'origin', pid, fd2)
    assert cli.gate_entries(topo, 'origin') == 0
    assert hooks(topo, 'origin') == []


def foreign_map(path):
    """Pin an array map (not a gate) at @path with libbpf through ctypes."""
    bpf = ctypes.CDLL('libbpf.so.1', use_errno=True)
    fd = bpf.bpf_map_create(2, b'foreign', 4, 4, 1, None)     # BPF_MAP_TYPE_ARRAY
    assert fd >= 0, os.strerror(ctypes.get_errno())
    assert bpf.bpf_obj_pin(fd, str(path).encode()) == 0, os.strerror(ctypes.get_errno())
    os.close(fd)


def test_foreign_pin_refused_then_flushed(topo, tmp_path):
    """Something else pinned where this namespace's hook belongs (it would
    leave the gate open): get refuses with one line naming it, the
    connection is left as it was, and `tcpcp gate flush` clears the way."""
    h = Holder(topo, 'origin', 1)
    d = BPFFS / f'net-{netns_cookie(topo, "origin"):016x}'
    d.mkdir()
    foreign_map(d / 'tcpcp_out4')     # the connection is IPv4
    r = cli.tcpcp(topo, 'origin', 'get', '--pid', h.pid, '--fd', h.server[0],
                  '-o', tmp_path / 'x.img', check=False)
    assert r.returncode == 1
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1 and str(d / 'tcpcp_out4') in err \
        and 'gate flush' in err, err
    assert not (tmp_path / 'x.img').exists()
    assert h.ask('send') == 'ok' and h.ask('verify') == 'ok 1', 'the refused get broke it'
    cli.tcpcp(topo, 'origin', 'gate', 'flush')
    assert not d.exists()
    cli.get(topo, 'origin', h.pid, h.server[0], tmp_path / 'x.img')
    assert cli.gate_entries(topo, 'origin') == 1
    cli.release(topo, 'origin', h.pid, h.server[0])
    assert cli.gate_entries(topo, 'origin') == 0


def test_stale_entry_flushed(topo, tmp_path):
    """A process that isolated a connection died before releasing it: the
    entry stays (the connection is silent), `tcpcp gate flush` ends it
    and the connection delivers again."""
    h = Holder(topo, 'origin', 1)
    r = h.ask('isolate')
    assert r.startswith('ok'), r
    assert h.ask('send') == 'ok'
    time.sleep(0.5)
    assert h.ask('unacked') == '1'
    assert cli.gate_entries(topo, 'origin') == 1
    cli.tcpcp(topo, 'origin', 'gate', 'flush')
    assert cli.gate_entries(topo, 'origin') == 0 and hooks(topo, 'origin') == []
    assert h.ask('verify') == 'ok 1'


TWO_NS = r"""
import ctypes, os, socket, sys
libc = ctypes.CDLL(None, use_errno=True)
lib = ctypes.CDLL(sys.argv[1])
lib.tcpcp_strerror.restype = ctypes.c_char_p
keep = []
for ns in sys.argv[2:]:
    fd = os.open(ns, os.O_RDONLY)
    assert libc.setns(fd, 0x40000000) == 0   # CLONE_NEWNET
    l = socket.socket(); l.bind(('127.0.0.1', 0)); l.listen()
    c = socket.create_connection(l.getsockname()); s, _ = l.accept()
    keep += [l, c, s]
arr = (ctypes.c_int * 2)(keep[2].fileno(), keep[5].fileno())
r = lib.tcpcp_gate_close_fds(arr, 2)
print(r, lib.tcpcp_strerror().decode())
"""


def test_other_namespace_refused(topo):
    """One batch, one namespace: sockets of two namespaces are refused
    with one line before anything is gated."""
    r = subprocess.run(['python3', '-c', TWO_NS, str(build.build_dir() / 'libtcpcp.so'),
                        f'/run/netns/{topo.ns["origin"]}', f'/run/netns/{topo.ns["dest"]}'],
                       capture_output=True, text=True, timeout=60, env=build.ctypes_env())
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith('-1 ') and 'another network namespace' in r.stdout, r.stdout
    assert cli.gate_entries(topo, 'origin') == 0 and cli.gate_entries(topo, 'dest') == 0


class LinkInfo(ctypes.Structure):
    """struct bpf_link_info up to its netfilter member (Linux 6.4)."""
    _fields_ = [('type', ctypes.c_uint32), ('id', ctypes.c_uint32),
                ('prog_id', ctypes.c_uint32), ('_pad', ctypes.c_uint32),
                ('pf', ctypes.c_uint32), ('hooknum', ctypes.c_uint32),
                ('priority', ctypes.c_int32), ('flags', ctypes.c_uint32),
                ('_rest', ctypes.c_uint64 * 8)]


def anchor_link(bpf, path):
    """The link info of what is pinned at @path."""
    fd = bpf.bpf_obj_get(str(path).encode())
    assert fd >= 0, os.strerror(ctypes.get_errno())
    info = LinkInfo()
    n = ctypes.c_uint32(ctypes.sizeof(info))
    try:
        assert bpf.bpf_obj_get_info_by_fd(fd, ctypes.byref(info), ctypes.byref(n)) == 0, \
            os.strerror(ctypes.get_errno())
    finally:
        os.close(fd)
    return info


def host_link_ids(bpf):
    """The ids of every BPF link on the host."""
    ids, cur, nxt = set(), 0, ctypes.c_uint32()
    while bpf.bpf_link_get_next_id(cur, ctypes.byref(nxt)) == 0:
        cur = nxt.value
        ids.add(cur)
    return ids


def test_anchor(topo, tmp_path):
    """The anchor (lib/bpf.c): once a gate was used, the host's programs
    also sit at the four hooks of an unnamed namespace of tcpcp's, so
    that a namespace's attach and detach do not switch netfilter's hook
    points on and off for the whole host.  It is four netfilter links at
    the gate's priority, unnamed (no `ip netns` entry); it survives the
    emptied gate, is rebuilt where something else sits at its place, and
    `tcpcp gate unload` takes it away with nothing left on the host."""
    bpf = ctypes.CDLL('libbpf.so.1', use_errno=True)
    anchor = BPFFS / 'anchor'
    h = Holder(topo, 'origin', 1)
    cli.get(topo, 'origin', h.pid, h.server[0], tmp_path / 'x.img')
    cli.release(topo, 'origin', h.pid, h.server[0])
    assert hooks(topo, 'origin') == [], 'the gate kept its hooks with no entry left'
    assert sorted(p.name for p in anchor.iterdir()) == ALL_HOOKS
    infos = [anchor_link(bpf, p) for p in anchor.iterdir()]
    assert all((i.type, i.priority) == (10, -300) for i in infos), \
        'the anchor holds something other than netfilter links at the gate\'s priority'
    assert len({i.id for i in infos}) == 4
    netns_before = topo.run('origin', 'ip', 'netns', 'list').stdout
    # Something else where the anchor's last link belongs: rebuilt.
    (anchor / 'tcpcp_out6').unlink()
    foreign_map(anchor / 'tcpcp_out6')
    cli.get(topo, 'origin', h.pid, h.server[0], tmp_path / 'y.img')
    cli.release(topo, 'origin', h.pid, h.server[0])
    assert sorted(p.name for p in anchor.iterdir()) == ALL_HOOKS
    assert anchor_link(bpf, anchor / 'tcpcp_out6').type == 10
    ids = {anchor_link(bpf, p).id for p in anchor.iterdir()}
    assert h.ask('send') == 'ok' and h.ask('verify') == 'ok 1'
    assert topo.run('origin', 'ip', 'netns', 'list').stdout == netns_before, \
        'the anchor shows up as a named namespace'
    r = subprocess.run([build.tcpcp(), 'gate', 'unload'], env=build.env(),
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert not anchor.exists()
    deadline = time.monotonic() + 5      # a link's id goes when it is freed
    while ids & host_link_ids(bpf) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not ids & host_link_ids(bpf), 'the anchor outlived the unload'
