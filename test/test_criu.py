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
import re
import subprocess
import time

import pytest

from lib import cli
from lib.capture import (Capture, assert_fin_after_data, assert_no_rst, connection,
                         first_fin, tsval_never_backwards)
from lib.criu import Criu, Task, ZdtmPair, asan_build, peer_view, zdtm_bin
from lib.netns import hostport
from lib.traffic import Traffic, assert_hashes_match, wait_file

pytestmark = pytest.mark.skipif(asan_build(), reason='an ASan plugin cannot load into criu')

PORT = 5001
MB = 1 << 20
SEED_PEER, SEED_SERVER = 22, 11


@pytest.fixture
def criu(topo, tmp_path):
    return Criu(topo, tmp_path)


def paced(rate):
    return ('--rate', rate) if rate else ()


def traffic_server(topo, tmp, family, nbytes, rate='1M', peer_bytes=None):
    """nbytes to the peer, peer_bytes (default nbytes) from it."""
    from lib import build
    ipx = topo.ipx(family)
    rx = nbytes if peer_bytes is None else peer_bytes
    t = Task(topo, 'origin', [build.traffic(), '--listen', hostport(ipx, PORT),
                              '--tx-bytes', nbytes, '--rx-bytes', rx, '--tx-seed', SEED_SERVER,
                              '--rx-seed', SEED_PEER, *paced(rate)], tmp, 'server')
    cli.wait_listening(topo, 'origin', PORT)
    return t


# state at dump: bytes to the peer, from it, and the two ends' rates.
HALF_CLOSED = {
    'close-wait': (4 * MB, 256 << 10, '1M', None),   # the peer is done
    'fin-wait-2': (256 << 10, 4 * MB, None, '1M'),   # the service is done
}


@pytest.mark.parametrize('where', ['same', 'other'])
@pytest.mark.parametrize('state', HALF_CLOSED)
def test_half_closed_stream(topo, tmp_path, criu, state, where):
    """Dumped while one side has sent its FIN: the restored process must
    not send its FIN again (it sent it before the dump), and must see the
    peer's again; the peer sees every byte and each FIN once."""
    nbytes, peer_bytes, server_rate, peer_rate = HALF_CLOSED[state]
    cap, server, peer = start_stream(topo, tmp_path, 6, nbytes, peer_bytes, server_rate,
                                     peer_rate)
    cli.tcp_socket(topo, 'origin', server.pid, state=state)
    imgs = dump_stream(criu, server, tmp_path)
    host = 'origin' if where == 'same' else 'dest'
    criu.restore(host, imgs)
    topo.switch_to(host)
    pkts = finish_stream(topo, 6, cap, server, peer, nbytes, peer_bytes)
    service = (topo.ipx(6), PORT)
    end = next((p.src, p.sport) for p in pkts if p.dst == service[0])
    assert_fin_after_data(pkts, end, peer_bytes)
    assert first_fin(pkts, service, end) == (end if state == 'close-wait' else service)


def assert_dump_hook_order(log):
    """CRIU 4.1.1 chains the plugin's CHECKPOINT_DEVICES (hook 11) and runs
    it once the task is seized, before its network lock and before it puts
    any socket in repair mode; the exit hook comes before the kill."""
    def at(what):
        i = log.find(what)
        assert i >= 0, f'{what!r} not in the dump log'
        return i
    assert 'Plugin "tcpcp" (version 512 hooks 12)' in log
    assert re.search(r'^\(\s*[\d.]+\)\s+11 -> 0x', log, re.M), 'hook 11 not chained'
    assert (at('Seized task') < at('locked and captured') < at('net: Lock network')
            < at('Turning repair on') < at('this host drops their segments')
            < at('Dumping finished successfully'))


@pytest.mark.parametrize('where', ['same', 'other'])
@pytest.mark.parametrize('family', [4, 6])
def test_traffic_stream(topo, tmp_path, criu, family, where):
    nbytes = 4 * MB
    cap, server, peer, imgs = dumped_stream(topo, tmp_path, criu, family, nbytes)
    assert list(imgs.glob('tcpcp-*.img')), 'the plugin wrote no image'
    # --network-lock skip: no CRIU table to delete by hand at the origin.
    assert 'CRIU-' not in topo.run('origin', 'nft', 'list', 'tables').stdout
    # The plugin's lock drops the peer's segments at the origin for a while
    # (no RST before the restore) and then goes by itself.
    assert cli.gate_entries(topo, 'origin') >= 1
    assert_dump_hook_order((tmp_path / 'criu-1-dump.log').read_text())
    host = 'origin' if where == 'same' else 'dest'
    criu.restore(host, imgs)
    # The restore opened every gate it closed, and the gate's table went.
    no_lock_left(topo, host)
    # Only now: until dest has the connection, a segment from the peer
    # would draw a RST from there.
    topo.switch_to(host)
    finish_stream(topo, family, cap, server, peer, nbytes)


# ---- zdtm-style programs (test/zdtm) --------------------------------------

def assert_peer_saw_nothing(topo, pkts):
    """No RST, and per connection the service's TSval never went back."""
    assert_no_rst(pkts)
    view = peer_view(topo, pkts, PORT)
    assert not view['tsval_backwards'], view


ZDTM = {
    # test: (arguments for both ends, seconds between ready and dump)
    'tcp_unread': (['--conns', 8, '--bytes', '256K', '--hold'], 0.3),
    'tcp_stream': (['--conns', 4, '--bytes', '3M', '--rate', '2M'], 0.8),
    'tcp_half_duplex': (['--conns', 2, '--bytes-c2s', 0, '--bytes-s2c', '2M',
                         '--rate', '1M'], 0.8),
    'tcp_half_closed': (['--conns', 8, '--bytes', '32K', '--hold', '--fin-early'], 0.5),
    'tcp_many': (['--conns', 1000, '--bytes', '4K', '--hold'], 0.3),
}


def run_zdtm(topo, tmp, criu, test, where, capture=True, plugin=True):
    args, settle = ZDTM[test]
    cap = Capture(topo, 'peer', tmp / 'peer.pcap').start() if capture else None
    pair = ZdtmPair(topo, tmp, test, args, PORT)
    time.sleep(settle)
    host = 'origin' if where == 'same' else 'dest'
    dump, restore = pair.checkpoint(criu, tmp / 'img', host=host, plugin=plugin)
    topo.switch_to(host)
    pair.go()
    peer, server = pair.finish()
    assert peer == 'PASS', f'peer: {peer}'
    assert server == 'PASS', f'{test}: {server}'
    if cap:
        assert_peer_saw_nothing(topo, cap.stop())
    return dump, restore


@pytest.mark.parametrize('where', ['same', 'other'])
@pytest.mark.parametrize('test', ZDTM)
def test_zdtm(topo, tmp_path, criu, test, where):
    run_zdtm(topo, tmp_path, criu, test, where, capture=test != 'tcp_many')


CLIENT_ARGS = ['--conns', 8, '--bytes', '3M', '--rate', '2M']
PEER_PORT = 6000


@pytest.mark.parametrize('where', ['same', 'other'])
def test_zdtm_client(topo, tmp_path, criu, where):
    """The dumped process is the client: it connected to the peer from
    ipX (both families) and an ephemeral port."""
    cap = Capture(topo, 'peer', tmp_path / 'peer.pcap').start()
    peer_addrs = [hostport(topo.addr('peer', f), PEER_PORT) for f in (4, 6)]
    sources = [hostport(topo.ipx(f), 0) for f in (4, 6)]
    pready, cready = tmp_path / 'peer.ready', tmp_path / 'client.ready'
    peer = topo.popen('peer', zdtm_bin('tcpcp-zdtm-peer'),
                      *(f'--listen={a}' for a in peer_addrs), *CLIENT_ARGS,
                      '--ready', pready, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                      text=True)
    wait_file(pready, 30)
    client = Task(topo, 'origin', [zdtm_bin('tcp_client'),
                                   *(f'--connect={a}' for a in peer_addrs),
                                   *(f'--source={a}' for a in sources), *CLIENT_ARGS,
                                   '--ready', cready], tmp_path, 'tcp_client')
    wait_file(cready, 30)
    ports = sorted(s['local'] for s in cli.established(topo, 'origin'))
    time.sleep(0.8)
    imgs = tmp_path / 'img'
    criu.dump('origin', client.pid, imgs)
    client.restored()
    host = 'origin' if where == 'same' else 'dest'
    criu.restore(host, imgs)
    assert sorted(s['local'] for s in cli.established(topo, host)) == ports
    topo.switch_to(host)
    out, err = peer.communicate(timeout=120)
    client.wait(120)
    res = client.out.read_text().strip()
    assert peer.returncode == 0 and out.strip() == 'PASS', f'peer: {out} {err}'
    assert res == 'PASS', f'tcp_client: {res} {client.err.read_text()}'
    pkts = cap.stop()
    assert_no_rst(pkts)
    view = peer_view(topo, pkts, port=None)
    assert view['conns'] == 8 and not view['tsval_backwards'], view


# ---- address rewriting: restore behind NAT -------------------------------

def nat_to(topo, family, peer, new_addr, way):
    """Stateless translation at the router for one flow: the peer keeps
    talking to ipX, the router sends it to new_addr at dest ('in') and
    makes the answers come from ipX again ('out'), as a NAT or a flow
    steerer in front of the service would."""
    ip = 'ip' if family == 4 else 'ip6'
    ipx = topo.ipx(family)
    t = 'inet tcpcp-test-nat'
    rules = [f'add table {t}',
             f'add chain {t} pre {{ type filter hook prerouting priority -300; policy accept; }}']
    if way == 'in':
        rules.append(f'add rule {t} pre {ip} saddr {peer[0]} tcp sport {peer[1]} '
                     f'{ip} daddr {ipx} tcp dport {PORT} {ip} daddr set {new_addr}')
    else:
        rules.append(f'add rule {t} pre iifname "to-dest" {ip} saddr {new_addr} '
                     f'tcp sport {PORT} {ip} daddr {peer[0]} tcp dport {peer[1]} '
                     f'{ip} saddr set {ipx}')
    topo.run('router', 'nft', '-f', '-', input='\n'.join(rules) + '\n')


def start_stream(topo, tmp, family, nbytes, peer_bytes=None, server_rate='1M',
                 peer_rate='1M'):
    ipx = topo.ipx(family)
    cap = Capture(topo, 'peer', tmp / 'peer.pcap').start()
    server = traffic_server(topo, tmp, family, nbytes, server_rate, peer_bytes)
    ready = tmp / 'peer.ready'
    tx = nbytes if peer_bytes is None else peer_bytes
    peer = Traffic(topo, 'peer', '--connect', hostport(ipx, PORT), '--tx-bytes', tx,
                   '--rx-bytes', nbytes, '--tx-seed', SEED_PEER, '--rx-seed', SEED_SERVER,
                   '--ready', ready, *paced(peer_rate))
    wait_file(ready)
    time.sleep(1)
    return cap, server, peer


def dump_stream(criu, server, tmp):
    """Dump the stream's server at origin; from now on server.pid is the
    process CRIU restores."""
    imgs = tmp / 'img'
    criu.dump('origin', server.pid, imgs)
    server.restored()
    return imgs


def dumped_stream(topo, tmp, criu, family, nbytes):
    cap, server, peer = start_stream(topo, tmp, family, nbytes)
    return cap, server, peer, dump_stream(criu, server, tmp)


def finish_stream(topo, family, cap, server, peer, nbytes, peer_bytes=None):
    """Both ends got every byte, the peer saw the service's FIN only after
    all its data, no RST, and no TSval going back."""
    ipx = topo.ipx(family)
    a = peer.expect()
    server.wait()
    b = json.loads(server.out.read_text().strip().splitlines()[-1])
    assert (a['tx'], a['rx']) == (nbytes if peer_bytes is None else peer_bytes, nbytes)
    assert_hashes_match(a, b)
    pkts = connection(cap.stop(), (ipx, PORT))
    assert_no_rst(pkts)
    assert_fin_after_data(pkts, (ipx, PORT), nbytes)
    assert tsval_never_backwards(pkts, (ipx, PORT)), 'TSval from ipX went back'
    return pkts


def tcpcp_edit(*args):
    from lib import build
    r = subprocess.run([build.tcpcp(), 'edit', *map(str, args)], capture_output=True,
                       text=True, env=build.env(), timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.mark.parametrize('family', [4, 6])
def test_restore_behind_nat(topo, tmp_path, criu, family):
    """Restored at dest under dest's own address: `tcpcp edit` rewrites the
    images, the router translates, the peer never learns of it."""
    nbytes = 4 * MB
    cap, server, peer, imgs = dumped_stream(topo, tmp_path, criu, family, nbytes)
    peer_end = cli.tcp_socket(topo, 'peer', peer.pid)['local']
    new = topo.addr('dest', family)
    out = tcpcp_edit('--local', new, *imgs.glob('tcpcp-*.img'))
    assert f'-> {hostport(new, PORT)}' in out, out
    # Outbound first: the restored endpoint's first segment (its window
    # probe) must reach the peer as coming from ipX.  Inbound only once
    # the endpoint exists, or the peer's retransmission would draw a RST.
    nat_to(topo, family, peer_end, new, 'out')
    criu.restore('dest', imgs)
    nat_to(topo, family, peer_end, new, 'in')
    local = [s['local'] for s in cli.established(topo, 'dest')]
    assert (new, PORT) in local, local
    finish_stream(topo, family, cap, server, peer, nbytes)


# ---- failures: a clear message naming the connection, images intact -------

def snapshot(imgs):
    return {p.name: p.read_bytes() for p in imgs.iterdir()}


def absent_address(topo, family, imgs):
    tcpcp_edit('--local', '10.77.99.1' if family == 4 else 'fd77:99::1',
               *imgs.glob('tcpcp-*.img'))
    return 'is not on this host', lambda: tcpcp_edit('--local', topo.ipx(family),
                                                     *imgs.glob('tcpcp-*.img'))


def tuple_taken(topo, family, imgs):
    """dest already has this very connection (a stale earlier copy)."""
    from lib import build
    img = next(imgs.glob('tcpcp-*.img'))
    holder = topo.popen('dest', build.tcpcp(), 'create', img, '--', 'sleep', '600')
    from lib.traffic import wait_for
    wait_for(lambda: cli.established(topo, 'dest') or holder.poll() is not None, 10,
             'the stale copy at dest')
    assert holder.poll() is None, 'tcpcp create failed'

    def fix():
        holder.kill()
        holder.wait()
    return 'already exists here', fix


def corrupt_image(topo, family, imgs):
    img = next(imgs.glob('tcpcp-*.img'))
    good = img.read_bytes()
    img.write_bytes(good[:-9])
    return 'is unusable', lambda: img.write_bytes(good)


def dump_failed(topo, family, imgs):
    """What the plugin leaves when a capture failed at dump time."""
    marker = imgs / 'tcpcp-FAILED'
    marker.write_text('cannot capture connection X (pid 1 fd 3): simulated\n')
    return 'did not capture every connection (cannot capture connection X', marker.unlink


FAILURES = {'absent-address': absent_address, 'tuple-taken': tuple_taken,
            'corrupt-image': corrupt_image, 'dump-failed': dump_failed}


@pytest.mark.parametrize('why', FAILURES)
@pytest.mark.parametrize('family', [4, 6])
def test_restore_failure_then_retry(topo, tmp_path, criu, family, why):
    """A restore that cannot recreate the connection fails, names it and
    the cause, leaves the images as they were; fixed, the same images
    restore and the stream goes on as if nothing happened."""
    nbytes = 3 * MB
    cap, server, peer = start_stream(topo, tmp_path, family, nbytes)
    peer_end = cli.tcp_socket(topo, 'peer', peer.pid)['local']
    imgs = dump_stream(criu, server, tmp_path)
    message, fix = FAILURES[why](topo, family, imgs)
    before = snapshot(imgs)
    r = criu.restore('dest', imgs, check=False)
    assert r.returncode != 0, 'restore succeeded'
    errs = [l for l in r.log.splitlines() if 'tcpcp: Error' in l]
    assert errs and message in errs[0], errs
    if why in ('absent-address', 'tuple-taken'):
        assert f':{peer_end[1]}' in errs[0], f'connection not named: {errs[0]}'
    elif why == 'corrupt-image':
        assert 'tcpcp-' in errs[0], errs[0]
    assert snapshot(imgs) == before, 'the failed restore changed the images'
    if why != 'tuple-taken':
        assert not cli.established(topo, 'dest'), 'a connection was left behind'
    fix()
    # CRIU restores the same pid: the killed try must be gone first.
    from lib.traffic import wait_for
    wait_for(lambda: not os.path.exists(f'/proc/{server.pid}'), 20,
             f'pid {server.pid} to be reaped')
    criu.restore('dest', imgs)
    topo.switch_to('dest')
    finish_stream(topo, family, cap, server, peer, nbytes)


def test_restore_carries_congestion(topo, tmp_path, criu):
    """TCPCP_CONGESTION=carry in CRIU's environment: without
    "congestion-carry yes" in tcpcp.conf the restore refuses in init with
    one line naming the file, and the images stay as they were; with it,
    the task's connections get their windows in one pass (the plugin says
    how many) and the stream finishes intact."""
    nbytes = 4 * MB
    cap, server, peer, imgs = dumped_stream(topo, tmp_path, criu, 4, nbytes)
    conf = tmp_path / 'tcpcp.conf'
    conf.write_text('create-needs-net-raw no\n')
    env = {'TCPCP_CONGESTION': 'carry', 'TCPCP_CONFIG': str(conf)}
    before = snapshot(imgs)
    r = criu.restore('dest', imgs, check=False, env=env)
    assert r.returncode != 0, 'restored without the policy'
    errs = [l for l in r.log.splitlines() if 'tcpcp: Error' in l]
    assert len(errs) == 1 and 'congestion carry-over is not allowed' in errs[0] \
        and str(conf) in errs[0], errs
    assert snapshot(imgs) == before, 'a refused restore changed the images'
    conf.write_text('create-needs-net-raw no\ncongestion-carry yes\n')
    r = criu.restore('dest', imgs, env=env)
    assert re.search(r'the congestion windows of 1 connection\(s\) carried over', r.log), \
        [l for l in r.log.splitlines() if 'tcpcp' in l]
    topo.switch_to('dest')
    finish_stream(topo, 4, cap, server, peer, nbytes)


# The plugin's switches in CRIU's environment, each with a value it does
# not know: (variable, value, the action that reads it, words of the line).
BAD_SWITCH = {'clamp': ('TCPCP_CLAMP', 'yes', 'dump', '"yes": 1 (clamp acknowledgments'),
              'resurrect': ('TCPCP_RESURRECT', 'on', 'restore', '"on": 1 ('),
              'congestion': ('TCPCP_CONGESTION', 'carried', 'restore',
                             '"carried": carry (the images\' congestion windows) or fresh')}


@pytest.mark.parametrize('which', BAD_SWITCH)
def test_bad_switch_value(topo, tmp_path, criu, which):
    """A misspelt switch (TCPCP_CLAMP, TCPCP_RESURRECT, TCPCP_CONGESTION)
    fails the dump or the restore with one line naming the variable, its
    value and the values it takes, before anything is touched: the dump
    leaves the connection running, the restore leaves the images as they
    were, and the same command without the typo then works."""
    var, bad, action, words = BAD_SWITCH[which]
    nbytes = 4 * MB
    env = {var: bad}
    if action == 'dump':
        cap, server, peer = start_stream(topo, tmp_path, 4, nbytes)
        r = criu.dump('origin', server.pid, tmp_path / 'img-refused', check=False, env=env)
    else:
        cap, server, peer, imgs = dumped_stream(topo, tmp_path, criu, 4, nbytes)
        before = snapshot(imgs)
        r = criu.restore('dest', imgs, check=False, env=env)
    assert r.returncode != 0, f'the {action} succeeded'
    errs = tcpcp_errors(r)
    assert len(errs) == 1 and var in errs[0] and words in errs[0], errs
    if action == 'dump':
        assert 'locked and captured' not in r.log
        no_lock_left(topo, 'origin')
        imgs = dump_stream(criu, server, tmp_path)
    else:
        assert snapshot(imgs) == before, 'a refused restore changed the images'
    criu.restore('dest', imgs)
    topo.switch_to('dest')
    finish_stream(topo, 4, cap, server, peer, nbytes)


def no_lock_left(topo, host):
    """Neither the tcpcp gate nor a CRIU lock table is left in host."""
    tables = topo.run(host, 'nft', 'list', 'tables').stdout
    assert 'CRIU-' not in tables, tables
    assert cli.gate_entries(topo, host) == 0


def tcpcp_errors(r):
    return [l for l in r.log.splitlines() if 'tcpcp: Error' in l]


def post_dump_fails(tmp, imgs, server, fd):
    script = tmp / 'post-dump.sh'
    script.write_text('#!/bin/sh\n[ "$CRTOOLS_SCRIPT_ACTION" = post-dump ] && exit 7\nexit 0\n')
    script.chmod(0o755)
    return ('--action-script', script), None


def criu_image_fails(tmp, imgs, server, fd):
    """CRIU's last image cannot be written: it fails after dumping every
    socket (in repair mode) and takes them out again."""
    (imgs / 'inventory.img').mkdir(parents=True)
    return (), 'inventory.img'


def capture_fails(tmp, imgs, server, fd):
    """The plugin's capture fails after its lock (a directory stands where
    it must write the image), before CRIU touched a socket."""
    name = f'tcpcp-{server.pid}-{fd}.img'
    (imgs / name).mkdir(parents=True)
    return (), name


DUMP_FAILURES = {'capture': capture_fails, 'criu-image': criu_image_fails,
                 'post-dump-script': post_dump_fails}


@pytest.mark.parametrize('why', DUMP_FAILURES)
def test_dump_fails_after_lock(topo, tmp_path, criu, why):
    """The plugin has locked (and captured) every connection when the dump
    fails: CRIU resumes the task, the plugin opens the gate again, and the
    stream goes on at origin, every byte, no RST; nothing is left behind."""
    nbytes = 3 * MB
    cap, server, peer = start_stream(topo, tmp_path, 4, nbytes)
    fd = cli.tcp_socket(topo, 'origin', server.pid)['fd']
    imgs = tmp_path / 'img'
    extra, name = DUMP_FAILURES[why](tmp_path, imgs, server, fd)
    r = criu.dump('origin', server.pid, imgs, extra=extra, check=False)
    assert r.returncode != 0, 'the dump succeeded'
    assert 'locked and captured' in r.log or why == 'capture', r.log[-2000:]
    assert 'tcpcp: the tasks run on' in r.log, r.log[-2000:]
    if why == 'capture':
        errs = tcpcp_errors(r)
        assert name in errs[0] and 'Is a directory' in errs[0], errs
        assert name in (imgs / 'tcpcp-FAILED').read_text()
    finish_stream(topo, 4, cap, server, peer, nbytes)
    no_lock_left(topo, 'origin')


def test_dump_leave_running(topo, tmp_path, criu):
    """--leave-running: the images are written (the connection's too) and
    the task goes on with its connection."""
    nbytes = 3 * MB
    cap, server, peer = start_stream(topo, tmp_path, 6, nbytes)
    imgs = tmp_path / 'img'
    r = criu.dump('origin', server.pid, imgs, extra=('--leave-running',))
    assert 'tcpcp: the tasks run on (--leave-running' in r.log, r.log[-2000:]
    assert list(imgs.glob('tcpcp-*.img'))
    finish_stream(topo, 6, cap, server, peer, nbytes)
    no_lock_left(topo, 'origin')


@pytest.mark.parametrize('where', ['same', 'other'])
def test_dump_tcp_close(topo, tmp_path, criu, where):
    """--tcp-close at dump and at restore, as one configuration file gives
    both (runc, podman): CRIU leaves the connection to the plugin, which
    carries it; every byte both ways, no RST."""
    nbytes = 3 * MB
    cap, server, peer = start_stream(topo, tmp_path, 4, nbytes)
    imgs = tmp_path / 'img'
    d = criu.dump('origin', server.pid, imgs, tcp='--tcp-close')
    server.restored()
    assert 'locked and captured' in d.log and 'dumped; this host drops' in d.log, d.log[-2000:]
    host = 'origin' if where == 'same' else 'dest'
    r = criu.restore(host, imgs)
    assert 'restored 1 connection(s)' in r.log, r.log[-2000:]
    topo.switch_to(host)
    finish_stream(topo, 4, cap, server, peer, nbytes)
    no_lock_left(topo, host)


def test_dump_tcp_close_leave_running(topo, tmp_path, criu):
    """--tcp-close --leave-running: CRIU never touches the sockets, so only
    its final state (read from CRIU) tells the plugin that the task runs
    on; the connection goes on at origin."""
    nbytes = 3 * MB
    cap, server, peer = start_stream(topo, tmp_path, 6, nbytes)
    imgs = tmp_path / 'img'
    r = criu.dump('origin', server.pid, imgs, tcp='--tcp-close', extra=('--leave-running',))
    assert 'tcpcp: the tasks run on (--leave-running' in r.log, r.log[-2000:]
    finish_stream(topo, 6, cap, server, peer, nbytes)
    no_lock_left(topo, 'origin')


REFUSED = {'no-tcp-flag': {'tcp': '--ext-unix-sk'},
           'iptables-lock': {'lock': 'iptables'}}


@pytest.mark.parametrize('flags', REFUSED)
def test_dump_refused_flags(topo, tmp_path, criu, flags):
    """Flags the plugin cannot serve: one line in CRIU's log says which and
    what to use, the dump fails, and the connection was never touched."""
    nbytes = 3 * MB
    cap, server, peer = start_stream(topo, tmp_path, 4, nbytes)
    r = criu.dump('origin', server.pid, tmp_path / 'img', check=False, **REFUSED[flags])
    assert r.returncode != 0, 'the dump succeeded'
    errs = tcpcp_errors(r)
    assert len(errs) == 1, errs
    assert 'refusing to dump 1 TCP connection(s)' in errs[0], errs
    assert '--tcp-established --network-lock skip' in errs[0], errs
    assert 'locked and captured' not in r.log
    finish_stream(topo, 4, cap, server, peer, nbytes)
    no_lock_left(topo, 'origin')


# ---- the plugin against CRIU's own --tcp-established ----------------------

def compare_one(topo, tmp, criu, plugin, args):
    cap = Capture(topo, 'peer', tmp / 'peer.pcap').start()
    pair = ZdtmPair(topo, tmp, 'tcp_stream', args, PORT)
    time.sleep(1.5)
    dump, restore = pair.checkpoint(criu, tmp / 'img', plugin=plugin)
    peer, server = pair.finish()
    view = peer_view(topo, cap.stop(), PORT)
    view.update(dump_s=round(dump.elapsed, 2), restore_s=round(restore.elapsed, 2),
                peer=peer, server=server)
    return view


# 4 MB/s in all, so that the capture keeps up with every segment.
COMPARE = {100: ['--conns', 100, '--bytes', '512K', '--rate', '4M'],
           1000: ['--conns', 1000, '--bytes', '48K', '--rate', '4M']}


@pytest.mark.parametrize('conns', COMPARE)
def test_compare_with_criu_tcp_established(topo, tmp_path, criu, conns):
    """The same workload (connections over IPv4 and IPv6, streaming both
    ways) checkpointed and restored on the same host, once by CRIU alone
    (--tcp-established both ways) and once with the plugin.  Both must
    deliver every byte; the numbers go to docs/criu.md (and, with -s, to
    stdout; $TCPCP_COMPARE_OUT collects them as JSON)."""
    res = {}
    for name, plugin in (('criu', False), ('plugin', True)):
        d = tmp_path / name
        d.mkdir()
        res[name] = compare_one(topo, d, Criu(topo, d), plugin, COMPARE[conns])
    print('\n' + json.dumps(res, indent=1))
    out = os.environ.get('TCPCP_COMPARE_OUT')
    if out:
        with open(f'{out}.{conns}', 'w') as f:
            json.dump(res, f, indent=1)
    for name, v in res.items():
        assert v['peer'] == 'PASS' and v['server'] == 'PASS', (name, v)
        assert v['conns'] == conns, (name, v)
    assert res['plugin']['rst'] == 0 and res['plugin']['tsval_backwards'] == 0, res


def test_restore_forgot_tcp_close(topo, tmp_path, criu):
    """Restored with --tcp-established by mistake: CRIU brings the
    connection back itself (same host, same address); the plugin must leave
    that live connection alone, open its gate and say so."""
    nbytes = 3 * MB
    cap, server, peer, imgs = dumped_stream(topo, tmp_path, criu, 4, nbytes)
    r = criu.restore('origin', imgs, tcp='--tcp-established')
    assert 'was restored by CRIU itself' in r.log
    finish_stream(topo, 4, cap, server, peer, nbytes)


def test_installed_plugin(topo, tmp_path, criu, installed):
    """Installed, the plugin serves a plain `criu dump` / `criu restore`
    (no --lib) to another host; and a tree without a TCP connection, a
    listener only, dumps and restores without --tcp-established, with
    not a word from the plugin and no image of its."""
    conns = tmp_path / 'conns'
    conns.mkdir()
    dump, restore = run_zdtm(topo, conns, criu, 'tcp_stream', 'other', plugin='installed')
    assert list((conns / 'img').glob('tcpcp-*.img')), 'the plugin was not loaded'
    assert 'locked and captured' in dump.log and 'restored' in restore.log

    from lib import build
    idle = tmp_path / 'idle'
    idle.mkdir()
    lst = Task(topo, 'origin', [build.traffic(), '--listen', hostport(topo.ipx(4), 7001),
                                '--bytes', 1], idle, 'listener')
    cli.wait_listening(topo, 'origin', 7001)
    (idle / 'img').mkdir()
    d = criu.run('origin', 'dump', '-t', lst.pid, '-D', idle / 'img')
    lst.restored()
    r = criu.run('origin', 'restore', '-D', idle / 'img', '-d')
    assert not list((idle / 'img').glob('tcpcp-*')), 'an image of the plugin\'s'
    for log in (d.log, r.log):
        said = [line for line in log.splitlines() if 'tcpcp: ' in line]
        assert not said, said
    cli.wait_listening(topo, 'origin', 7001)    # the restored listener


# ---- a tree in its own network namespace ----------------------------------

CT = ('10.77.5', 'fd77:5:')


def bridge_for_tree(topo, host):
    """host keeps a bridge for the tree's veth and routes ipX to the tree's
    address behind it (ipX leaves host's lo: it lives in the tree's
    namespace)."""
    v4, v6 = CT
    topo.run(host, 'ip', 'link', 'add', 'br0', 'type', 'bridge')
    topo.run(host, 'ip', 'addr', 'add', f'{v4}.1/24', 'dev', 'br0')
    topo.run(host, 'ip', 'addr', 'add', f'{v6}:1/64', 'dev', 'br0', 'nodad')
    topo.run(host, 'ip', 'link', 'set', 'br0', 'up')
    for f, plen, via in ((4, 32, f'{v4}.2'), (6, 128, f'{v6}:2')):
        ip = topo.ipx(f)
        topo.run(host, 'ip', f'-{f}', 'addr', 'del', f'{ip}/{plen}', 'dev', 'lo')
        topo.run(host, 'ip', f'-{f}', 'route', 'add', f'{ip}/{plen}', 'via', via)
    topo.sysctl(host, 'net.ipv4.ip_forward', 1)
    topo.sysctl(host, 'net.ipv6.conf.all.forwarding', 1)


def tree_in_own_netns(topo, tmp, family, nbytes):
    """The stream's server started by `unshare --net` in origin: its
    namespace gets a veth (eth0 inside, ct0 on origin's br0), addresses,
    routes and ipX, and only then does the server start listening."""
    from lib import build
    v4, v6 = CT
    go = tmp / 'go'
    script = (f'while [ ! -e {go} ]; do sleep 0.02; done; exec {build.traffic()} '
              f'--listen {hostport(topo.ipx(family), PORT)} --tx-bytes {nbytes} '
              f'--rx-bytes {nbytes} --tx-seed {SEED_SERVER} --rx-seed {SEED_PEER} --rate 1M')
    server = Task(topo, 'origin', ['unshare', '--net', '--', 'sh', '-c', script], tmp, 'server')
    inside = ['nsenter', '-t', server.pid, '-n']
    # The process starts in the test's own namespace, moves to origin's
    # (`ip netns exec`), then to its own (`unshare --net`): wait for a
    # namespace that is neither, or the veth below could land in the
    # host's (seen once: "File exists", the host has an eth0).
    known = (os.stat(f'/run/netns/{topo.ns["origin"]}').st_ino, os.stat('/proc/self/ns/net').st_ino)
    deadline = time.monotonic() + 10
    while os.stat(f'/proc/{server.pid}/ns/net').st_ino in known:
        assert time.monotonic() < deadline, 'unshare --net did not happen'
        time.sleep(0.01)
    topo.run('origin', 'ip', 'link', 'add', 'ct0', 'type', 'veth', 'peer', 'name', 'eth0',
             'netns', f'/proc/{server.pid}/ns/net')
    topo.run('origin', 'ip', 'link', 'set', 'ct0', 'master', 'br0', 'up')
    for argv in (['ip', 'link', 'set', 'lo', 'up'],
                 ['sysctl', '-qw', 'net.ipv6.conf.all.accept_dad=0'],
                 ['sysctl', '-qw', 'net.ipv6.conf.eth0.accept_dad=0'],
                 ['ip', 'addr', 'add', f'{v4}.2/24', 'dev', 'eth0'],
                 ['ip', 'addr', 'add', f'{v6}:2/64', 'dev', 'eth0', 'nodad'],
                 ['ip', 'link', 'set', 'eth0', 'up'],
                 ['ip', 'route', 'add', 'default', 'via', f'{v4}.1'],
                 ['ip', '-6', 'route', 'add', 'default', 'via', f'{v6}:1'],
                 ['ip', 'addr', 'add', f'{topo.ipx(4)}/32', 'dev', 'lo'],
                 ['ip', 'addr', 'add', f'{topo.ipx(6)}/128', 'dev', 'lo', 'nodad']):
        topo.run('origin', *inside, *argv)
    go.touch()
    deadline = time.monotonic() + 10
    while True:
        r = topo.run('origin', *inside, 'ss', '-Htln', 'sport', f'= :{PORT}')
        if r.stdout.strip():
            break
        assert time.monotonic() < deadline, 'the server in its own netns does not listen'
        time.sleep(0.05)
    return server


@pytest.mark.parametrize('family', [4, 6])
@pytest.mark.parametrize('where', ['same', 'other'])
def test_tree_in_own_netns(topo, tmp_path, criu, family, where):
    """The dumped tree owns its network namespace: CRIU dumps and restores
    the namespace itself (veth, addresses, routes: --veth-pair puts the
    outer end on the restoring host's bridge), the plugin carries the
    connection inside it; the stream completes both ways, no RST, and
    nothing of the plugin's is left on either host."""
    nbytes = 4 * MB
    host = 'origin' if where == 'same' else 'dest'
    for h in {'origin', host}:
        bridge_for_tree(topo, h)
    cap = Capture(topo, 'peer', tmp_path / 'peer.pcap').start()
    server = tree_in_own_netns(topo, tmp_path, family, nbytes)
    ready = tmp_path / 'peer.ready'
    peer = Traffic(topo, 'peer', '--connect', hostport(topo.ipx(family), PORT),
                   '--tx-bytes', nbytes, '--rx-bytes', nbytes, '--tx-seed', SEED_PEER,
                   '--rx-seed', SEED_SERVER, '--ready', ready, '--rate', '1M')
    wait_file(ready)
    time.sleep(1)
    imgs = tmp_path / 'img'
    d = criu.dump('origin', server.pid, imgs, tcp='--tcp-close')
    server.restored()
    assert 'locked and captured' in d.log, d.log[-2000:]
    assert 'its gate is removed once they have exited' in d.log, d.log[-2000:]
    # The old namespace, its veth and its gate go with the tasks: nothing
    # of the plugin's keeps them (a restore here would find ct0 taken).
    deadline = time.monotonic() + 10
    while 'ct0' in topo.run('origin', 'ip', '-br', 'link').stdout:
        assert time.monotonic() < deadline, 'the dumped tree\'s namespace lives on'
        time.sleep(0.05)
    # The lock went into the namespace's own ruleset, which CRIU dumped:
    # the restored namespace comes up dropping the connection.
    rules = b''.join(p.read_bytes() for p in imgs.glob('nftables-*.img'))
    ipx = topo.ipx(family)
    assert b'table inet tcpcp-criu' in rules and ipx.encode() in rules, rules[:2000]
    r = criu.restore(host, imgs, extra=('--veth-pair', 'eth0=ct0@br0'))
    assert 'restored 1 connection(s)' in r.log, r.log[-2000:]
    # ... and the plugin removed it once the connection was rebuilt.
    tables = topo.run(host, 'nsenter', '-t', server.pid, '-n', 'nft', 'list', 'tables').stdout
    assert 'tcpcp-criu' not in tables, tables
    topo.switch_to(host)
    finish_stream(topo, family, cap, server, peer, nbytes)
    no_lock_left(topo, host)


def test_tree_in_own_netns_leave_running(topo, tmp_path, criu):
    """--leave-running with a tree in its own namespace: the lock in its
    ruleset goes again with the gate, the stream goes on there."""
    nbytes = 3 * MB
    bridge_for_tree(topo, 'origin')
    cap = Capture(topo, 'peer', tmp_path / 'peer.pcap').start()
    server = tree_in_own_netns(topo, tmp_path, 4, nbytes)
    ready = tmp_path / 'peer.ready'
    peer = Traffic(topo, 'peer', '--connect', hostport(topo.ipx(4), PORT),
                   '--tx-bytes', nbytes, '--rx-bytes', nbytes, '--tx-seed', SEED_PEER,
                   '--rx-seed', SEED_SERVER, '--ready', ready, '--rate', '1M')
    wait_file(ready)
    time.sleep(1)
    r = criu.dump('origin', server.pid, tmp_path / 'img', tcp='--tcp-close',
                  extra=('--leave-running',))
    assert 'tcpcp: the tasks run on (--leave-running' in r.log, r.log[-2000:]
    tables = topo.run('origin', 'nsenter', '-t', server.pid, '-n', 'nft', 'list',
                      'tables').stdout
    assert 'tcpcp-criu' not in tables, tables
    finish_stream(topo, 4, cap, server, peer, nbytes)
