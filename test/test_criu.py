# SPDX-License-Identifier: GPL-2.0-or-later
"""Checkpoint/restore of processes with established TCP connections through
CRIU and the tcpcp plugin (criu --lib build/criu-plugin).

The dumped process lives in origin and serves the peer at ipX; it is
restored in origin again (same host) or in dest (another host: the router
moves ipX there between dump and restore).  The peer streams and checks
every byte both ways, and its capture must show no RST, no early FIN and
no TSval going back.
"""
import json
import os
import signal
import subprocess
import time

import pytest

from lib import cli
from lib.capture import (Capture, assert_fin_after_data, assert_no_rst, connection,
                         tsval_never_backwards)
from lib.criu import Criu, Task, asan_build
from lib.netns import hostport
from lib.traffic import Traffic, assert_hashes_match, wait_file

pytestmark = pytest.mark.skipif(asan_build(), reason='an ASan plugin cannot load into criu')

PORT = 5001
MB = 1 << 20
SEED_PEER, SEED_SERVER = 22, 11


@pytest.fixture
def criu(topo, tmp_path):
    return Criu(topo, tmp_path)


def traffic_server(topo, tmp, family, nbytes, rate='1M'):
    from lib import build
    ipx = topo.ipx(family)
    t = Task(topo, 'origin', [build.traffic(), '--listen', hostport(ipx, PORT),
                              '--bytes', nbytes, '--tx-seed', SEED_SERVER,
                              '--rx-seed', SEED_PEER, '--rate', rate], tmp, 'server')
    cli.wait_listening(topo, 'origin', PORT)
    return t


@pytest.mark.parametrize('where', ['same', 'other'])
@pytest.mark.parametrize('family', [4, 6])
def test_traffic_stream(topo, tmp_path, criu, family, where):
    nbytes = 4 * MB
    ipx = topo.ipx(family)
    cap = Capture(topo, 'peer', tmp_path / 'peer.pcap').start()
    server = traffic_server(topo, tmp_path, family, nbytes)
    ready = tmp_path / 'peer.ready'
    peer = Traffic(topo, 'peer', '--connect', hostport(ipx, PORT), '--bytes', nbytes,
                   '--tx-seed', SEED_PEER, '--rx-seed', SEED_SERVER, '--ready', ready,
                   '--rate', '1M')
    wait_file(ready)
    time.sleep(1)
    imgs = tmp_path / 'img'
    criu.dump('origin', server.pid, imgs)
    server.restored()
    assert list(imgs.glob('tcpcp-*.img')), 'the plugin wrote no image'
    host = 'origin' if where == 'same' else 'dest'
    criu.restore(host, imgs)
    # Only now: until dest has the connection, a segment from the peer
    # would draw a RST from there.
    topo.switch_to(host)
    a = peer.expect()
    server.wait()
    b = json.loads(server.out.read_text().strip().splitlines()[-1])
    assert a['tx'] == a['rx'] == nbytes
    assert_hashes_match(a, b)
    pkts = connection(cap.stop(), (ipx, PORT))
    assert_no_rst(pkts)
    assert_fin_after_data(pkts, (ipx, PORT), nbytes)
    assert tsval_never_backwards(pkts, (ipx, PORT)), 'TSval from ipX went back'


# ---- zdtm-style programs (test/zdtm) --------------------------------------

def zdtm_bin(name):
    from lib import build
    return str(build.build_dir() / 'zdtm' / name)


def addrs(topo):
    """The service on both families at once: IPv4 and IPv6 connections,
    and a listener of each beside them."""
    return [hostport(topo.ipx(4), PORT), hostport(topo.ipx(6), PORT)]


def assert_peer_saw_nothing(topo, pkts):
    """No RST, and per connection the service's TSval never went back."""
    assert_no_rst(pkts)
    for fam in (4, 6):
        ipx = topo.ipx(fam)
        peers = {(p.dst, p.dport) for p in pkts if p.src == ipx and p.sport == PORT}
        for peer in peers:
            conn = connection(pkts, (ipx, PORT), peer)
            assert tsval_never_backwards(conn, (ipx, PORT)), f'TSval went back towards {peer}'


ZDTM = {
    # test: (arguments for both ends, seconds between ready and dump)
    'tcp_unread': (['--conns', 8, '--bytes', '256K', '--hold'], 0.3),
    'tcp_stream': (['--conns', 4, '--bytes', '3M', '--rate', '2M'], 0.8),
    'tcp_half_duplex': (['--conns', 2, '--bytes-c2s', 0, '--bytes-s2c', '2M',
                         '--rate', '1M'], 0.8),
    'tcp_many': (['--conns', 1000, '--bytes', '4K', '--hold'], 0.3),
}


def run_zdtm(topo, tmp, criu, test, where, capture=True):
    args, settle = ZDTM[test]
    cap = Capture(topo, 'peer', tmp / 'peer.pcap').start() if capture else None
    sready, pready = tmp / 'server.ready', tmp / 'peer.ready'
    server = Task(topo, 'origin', [zdtm_bin(test), *(f'--listen={a}' for a in addrs(topo)),
                                   *args, '--ready', sready], tmp, test)
    cli.wait_listening(topo, 'origin', PORT)
    peer = topo.popen('peer', zdtm_bin('tcpcp-zdtm-peer'),
                      *(f'--connect={a}' for a in addrs(topo)), *args, '--ready', pready,
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_file(sready, 60)
    wait_file(pready, 60)
    time.sleep(settle)
    imgs = tmp / 'img'
    dump = criu.dump('origin', server.pid, imgs)
    server.restored()
    host = 'origin' if where == 'same' else 'dest'
    restore = criu.restore(host, imgs)
    topo.switch_to(host)
    for pid in (server.pid, peer.pid):
        os.kill(pid, signal.SIGUSR1)
    out, err = peer.communicate(timeout=120)
    server.wait(120)
    res = server.out.read_text().strip()
    assert peer.returncode == 0 and out.strip() == 'PASS', f'peer: {out} {err}'
    assert res == 'PASS', f'{test}: {res} {server.err.read_text()}'
    if cap:
        assert_peer_saw_nothing(topo, cap.stop())
    return dump, restore


@pytest.mark.parametrize('where', ['same', 'other'])
@pytest.mark.parametrize('test', ZDTM)
def test_zdtm(topo, tmp_path, criu, test, where):
    run_zdtm(topo, tmp_path, criu, test, where, capture=test != 'tcp_many')
