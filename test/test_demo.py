# SPDX-License-Identifier: GPL-2.0-or-later
"""The demo applications with real, unmodified clients (curl, wget):
a dispatcher that passes each request to a worker farm, and a file server
that sheds a large download mid-transfer.  The client must finish without
an error and the file's sha256 must match."""
import hashlib
import os
import time

import pytest

from lib import cli
from lib.capture import Capture, assert_no_rst, connection
from lib.passd import binary, make_key
from lib.traffic import wait_for
from test_passd import STEER_MARK, sanitizer_clean, steering  # noqa: F401

MB = 1 << 20


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_file(path, size):
    with open(path, 'wb') as f:
        for _ in range(size // MB):
            f.write(os.urandom(MB))
    return path


def start(topo, host, log, *argv):
    p = topo.popen(host, *argv, stderr=open(log, 'w'))
    return p


def wait_log(log, text, timeout=10):
    wait_for(lambda: text in log.read_text(), timeout, f'"{text}" in {log}')


def test_dispatcher(topo, tmp_path):
    """Every request is read by the dispatcher at origin and answered by
    one of two workers at dest, round robin; only the passed connection
    is steered to dest, the dispatcher keeps accepting at ipX."""
    root = tmp_path / 'root'
    root.mkdir()
    files = {'small.txt': make_file(root / 'small.txt', MB),
             'big.bin': make_file(root / 'big.bin', 8 * MB)}
    key = make_key(tmp_path / 'key')
    steering(topo, 'dest')
    gw = topo.ns['router']
    workers = []
    for n in (1, 2):
        log = tmp_path / f'worker{n}.log'
        ctl = f'{topo.addr("dest", 4)}:{7000 + n}'
        start(topo, 'dest', log, binary('tcpcp-worker'), '--ctl', ctl, '--key', key,
              '--name', f'w{n}', '--root', root)
        wait_log(log, 'taking connections')
        workers += ['--worker', f'{ctl}=flow:{gw}:{STEER_MARK}']
    dlog = tmp_path / 'dispatcher.log'
    ipx = topo.ipx(4)
    start(topo, 'origin', dlog, binary('tcpcp-dispatcher'), '--listen', f'{ipx}:8080',
          '--key', key, *workers, '--switch-back', f'flow:{gw}:0')
    wait_log(dlog, 'listening')
    cap = Capture(topo, 'peer', tmp_path / 'peer.pcap').start()
    seen = []
    for i, name in enumerate(['small.txt', 'big.bin', 'big.bin', 'small.txt']):
        out, hdr = tmp_path / f'out{i}', tmp_path / f'hdr{i}'
        r = topo.run('peer', 'curl', '-sS', '--max-time', '60', '-o', out, '-D', hdr,
                     f'http://{ipx}:8080/{name}', check=False, timeout=90)
        assert r.returncode == 0, f'curl: exit {r.returncode}: {r.stderr.strip()}\n{dlog.read_text()}'
        assert sha256(out) == sha256(files[name])
        head = hdr.read_text()
        assert head.startswith('HTTP/1.1 200'), head
        seen.append([h.split(': ')[1].strip() for h in head.splitlines()
                     if h.startswith('X-Worker')][0])
    assert seen == ['w1', 'w2', 'w1', 'w2'], seen
    assert_no_rst(connection(cap.stop(), (ipx, 8080)))


@pytest.mark.parametrize('client', ['curl', 'wget', 'refused'])
def test_fileserver_sheds_download(topo, tmp_path, client):
    """A 48 MB download is passed after 8 MB with its state (file name,
    offset); the client, reading at a limited rate, never notices.
    refused: dest does not have the file and says so before it creates
    anything, so the origin keeps serving the download itself."""
    root = tmp_path / 'root'
    root.mkdir()
    dest_root = root
    if client == 'refused':
        dest_root = tmp_path / 'empty'
        dest_root.mkdir()
    big = make_file(root / 'big.bin', 48 * MB)
    key = make_key(tmp_path / 'key')
    gw, ipx = topo.ns['router'], topo.ipx(4)
    ctl = f'{topo.addr("dest", 4)}:7100'
    route = 'route:{}:{}'.format
    dlog, olog = tmp_path / 'dest.log', tmp_path / 'origin.log'
    start(topo, 'dest', dlog, binary('tcpcp-fileserver'), '--root', dest_root, '--key', key,
          '--ctl', ctl)
    start(topo, 'origin', olog, binary('tcpcp-fileserver'), '--root', root, '--key', key,
          '--listen', f'{ipx}:8000', '--pass-to', ctl, '--pass-after', 8 * MB,
          '--switch-to', route(gw, topo.addr('dest', 4)),
          '--switch-back', route(gw, topo.addr('origin', 4)))
    wait_log(dlog, 'ready')
    wait_log(olog, 'ready')
    cap = Capture(topo, 'peer', tmp_path / 'peer.pcap').start()
    out = tmp_path / 'out'
    url = f'http://{ipx}:8000/big.bin'
    if client != 'wget':
        argv = ['curl', '-sS', '--fail', '--max-time', '90', '--limit-rate', '16M', '-o', out, url]
    else:
        argv = ['wget', '-q', '--tries=1', '--timeout=30', '--limit-rate=16m', '-O', out, url]
    t0 = time.monotonic()
    r = topo.run('peer', *argv, check=False, timeout=120)
    assert r.returncode == 0, f'{client}: exit {r.returncode}: {r.stderr.strip()}\n' \
        f'origin: {olog.read_text()}\ndest: {dlog.read_text()}'
    assert sha256(out) == sha256(big)
    if client == 'refused':
        assert 'the file is not here; the connection continues here' in olog.read_text(), \
            olog.read_text()
        assert 'continuing' not in dlog.read_text()
        assert_no_rst(connection(cap.stop(), (ipx, 8000)))
        return
    assert 'passed /big.bin at offset' in olog.read_text(), olog.read_text()
    assert 'continuing /big.bin at offset' in dlog.read_text(), dlog.read_text()
    assert time.monotonic() - t0 > 1, 'the download was too quick to be passed mid-transfer'
    assert_no_rst(connection(cap.stop(), (ipx, 8000)))
    # The origin's listener never saw a second connection: only one pass.
    assert not [s for s in cli.established(topo, 'origin') if s['local'][1] == 8000]
