# SPDX-License-Identifier: GPL-2.0-or-later
"""End-to-end passes through the tcpcp CLI (the flow: lib/stream.py)."""
import errno
import socket
import subprocess
import time

import pytest

from lib import build, cli
from lib.stream import MB, PORT, NEW_PORT, Stream, simple_pass
from lib.traffic import Traffic, wait_for


OPTIONS = {
    'all': {},
    'no-timestamps': {'timestamps': False},
    'no-sack': {'sack': False},
    'no-wscale': {'window_scaling': False},
    'none': {'timestamps': False, 'sack': False, 'window_scaling': False},
}


@pytest.mark.parametrize('opts', OPTIONS)
@pytest.mark.parametrize('family', [4, 6])
def test_pass(topo, tmp_path, family, opts):
    off = OPTIONS[opts]
    # The peer's SYN decides what the connection uses.
    topo.tcp_options('peer', **off)
    s = Stream(topo, tmp_path, family, 4 * MB)
    time.sleep(1)
    img = simple_pass(s)
    ici = cli.show(img)
    assert ici['local']['addr'] == s.ipx and ici['local']['port'] == PORT
    assert ici['options']['timestamps'] == off.get('timestamps', True)
    assert ici['options']['sack'] == off.get('sack', True)
    assert ici['options']['wscale'] == off.get('window_scaling', True)
    # The peer's last TSval is in the image exactly where the kernel can
    # read it (kernel-patch/ 0001); `tcpcp show` says which.
    has = kernel_has_option(TCP_REPAIR_TS_RECENT) and ici['options']['timestamps']
    assert ('ts_recent' in ici) == has, ici
    text = subprocess.run([build.tcpcp(), 'show', str(img)], capture_output=True, text=True,
                          env=build.env(), timeout=30, check=True).stdout
    if ici['options']['timestamps']:
        want = 'ts_recent   %u' % ici['ts_recent'] if has else 'ts_recent   not captured'
        assert want in text, text
    else:
        assert 'ts_recent' not in text, text
    s.finish()


TCP_REPAIR_TS_RECENT = 47


def kernel_has_option(opt):
    """Whether this kernel knows TCP option @opt (ENOPROTOOPT: no)."""
    with socket.socket() as so:
        try:
            so.getsockopt(socket.IPPROTO_TCP, opt)
        except OSError as e:
            if e.errno == errno.ENOPROTOOPT:
                return False
            raise
    return True


@pytest.mark.parametrize('family', [4, 6])
def test_pass_paced(topo, tmp_path, family):
    """A socket the kernel paces (SO_MAX_PACING_RATE here; BBR or fq do
    the same) stamps each segment with its departure time, up to a
    segment's worth of pacing ahead of its clock: at 16 KB/s, 2 segments
    are ~180 ms.  The destination's clock resumes past the last stamp, or
    the peer's PAWS drops its segments until the clock catches up and
    finish() sees TSval go back.  The service writes slowly enough to
    be still established at the pass."""
    s = Stream(topo, tmp_path, family, 256 * 1024, peer_bytes=4 * MB,
               origin_args=('--rate', '64K', '--max-pacing-rate', 16 * 1024))
    time.sleep(1.5)
    simple_pass(s)
    s.finish()


@pytest.mark.parametrize('family', [4, 6])
def test_pass_buffer_locks(topo, tmp_path, family):
    """A receive buffer the application fixed stays fixed, at its size; a
    send buffer the kernel autotuned at the origin autotunes again at the
    destination (creating forces both sizes, which locks them, and
    SO_BUF_LOCK puts the origin's locks back).  Read back by taking the
    destination's socket again and releasing it."""
    s = Stream(topo, tmp_path, family, 4 * MB, origin_args=('--rcvbuf', 150000))
    time.sleep(1)
    so = cli.show(simple_pass(s))['sockopts']
    assert so['rcvbuf_locked'] and not so['sndbuf_locked'], so
    assert so['rcvbuf'] == 300000, so       # as the kernel reports it: doubled
    again = tmp_path / 'again.img'
    sock = cli.tcp_socket(topo, 'dest', s.server.pid)
    cli.get(topo, 'dest', s.server.pid, sock['fd'], again)
    cli.release(topo, 'dest', s.server.pid, sock['fd'])
    dest = cli.show(again)['sockopts']
    assert dest['rcvbuf_locked'] and not dest['sndbuf_locked'], dest
    assert dest['rcvbuf'] == 300000, dest
    s.finish()


def big_buffers(topo):
    """Buffers that can hold MBs of queued data on every host, as on
    servers tuned for bulk transfer."""
    for h in ('peer', 'origin', 'dest'):
        topo.sysctl(h, 'net.ipv4.tcp_rmem', '4096 4194304 8388608')
        topo.sysctl(h, 'net.ipv4.tcp_wmem', '4096 4194304 8388608')


@pytest.mark.parametrize('family', [4, 6])
def test_pass_full_queues(topo, tmp_path, family):
    """MBs of unacked send data and unread receive data at the origin."""
    big_buffers(topo)
    stall = ('--read-stall', '1M:4000')
    s = Stream(topo, tmp_path, family, 16 * MB, rate=None,
               peer_args=stall, origin_args=stall)

    def queues_full():
        socks = cli.established(topo, 'origin')
        return socks and socks[0]['sendq'] >= MB and socks[0]['recvq'] >= MB
    wait_for(queues_full, 3, 'MBs queued at the origin')
    img = simple_pass(s)
    ici = cli.show(img)
    assert ici['sendq_len'] >= MB and ici['recvq_len'] >= MB, \
        (ici['sendq_len'], ici['recvq_len'])
    s.finish()


def refuse_absent_address(topo, s, img):
    return (img, '--local', '10.77.99.1' if s.family == 4 else 'fd77:99::1'), \
        'is not on this host'


def refuse_truncated(topo, s, img):
    bad = img.with_suffix('.truncated')
    bad.write_bytes(img.read_bytes()[:-7])
    return (bad,), 'truncated'


def refuse_tuple_in_use(topo, s, img):
    """dest already holds the connection (an earlier try that was not
    cleaned up): the 4-tuple is taken, a second socket must not join it."""
    first = Traffic(topo, 'dest', '--fd', 3, '--state', s.state,
                    prefix=cli.create_prefix(img))
    assert first.started(), first.describe()
    return (img,), 'already exists here'


REFUSALS = {'absent-address': refuse_absent_address,
            'truncated-image': refuse_truncated,
            'tuple-in-use': refuse_tuple_in_use}


@pytest.mark.parametrize('why', REFUSALS)
@pytest.mark.parametrize('family', [4, 6])
def test_rollback(topo, tmp_path, family, why):
    """dest refuses the ICI, so the origin releases and goes on: the
    stream ends intact at the origin and the peer never notices."""
    s = Stream(topo, tmp_path, family, 3 * MB)
    time.sleep(1)
    img = s.take()
    args, message = REFUSALS[why](topo, s, img)
    r = cli.tcpcp(topo, 'dest', 'create', *args, '--activate', '--', 'true', check=False)
    assert r.returncode == 1, (r.returncode, r.stderr)
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    cli.release(topo, 'origin', s.server.pid, s.fd)
    s.finish()


@pytest.mark.parametrize('family', [4, 6])
def test_pass_back(topo, tmp_path, family):
    """origin -> dest -> origin.  The first hop ends with `tcpcp close`,
    whose lingering gate at the origin must not block the way back."""
    s = Stream(topo, tmp_path, family, 6 * MB)
    time.sleep(1)
    img = s.take()
    s.hand_over(s.create('dest', img, '--activate'), 'dest', close=True)
    time.sleep(1)
    img = s.take()
    s.hand_over(s.create('origin', img, '--activate'), 'origin')
    s.finish()


def xlate(topo, family, s, new_port=None):
    """Stateless port translation at the router for the passed flow: the
    peer keeps talking to ipX:PORT while dest uses new_port.  Without
    new_port (not known yet) only the way out is rewritten, from whatever
    port dest picks: that must hold from the first segment dest sends."""
    ip = 'ip' if family == 4 else 'ip6'
    peer = cli.tcp_socket(topo, 'peer', s.peer.pid)['local']
    out_match = f'tcp sport {new_port}' if new_port else f'tcp sport != {PORT}'
    rules = [f'add table inet tcpcp-test-xlate',
             f'add chain inet tcpcp-test-xlate out '
             f'{{ type filter hook prerouting priority -300; policy accept; }}',
             f'add rule inet tcpcp-test-xlate out iifname "to-dest" '
             f'{ip} saddr {s.ipx} {ip} daddr {peer[0]} tcp dport {peer[1]} '
             f'{out_match} tcp sport set {PORT}']
    topo.run('router', 'nft', '-f', '-', input='\n'.join(rules) + '\n')
    if new_port:
        xlate_in(topo, family, s, peer, new_port)
    return peer


def xlate_in(topo, family, s, peer, new_port):
    ip = 'ip' if family == 4 else 'ip6'
    rules = [f'add chain inet tcpcp-test-xlate in '
             f'{{ type filter hook postrouting priority -300; policy accept; }}',
             f'add rule inet tcpcp-test-xlate in oifname "to-dest" '
             f'{ip} saddr {peer[0]} tcp sport {peer[1]} {ip} daddr {s.ipx} '
             f'tcp dport {PORT} tcp dport set {new_port}']
    topo.run('router', 'nft', '-f', '-', input='\n'.join(rules) + '\n')


@pytest.mark.parametrize('mode', ['any', 'bound'])
@pytest.mark.parametrize('family', [4, 6])
def test_pass_port_mode(topo, tmp_path, family, mode):
    s = Stream(topo, tmp_path, family, 4 * MB)
    time.sleep(1)
    if mode == 'bound':
        xlate(topo, family, s, NEW_PORT)
        port_mode = f'bound:{NEW_PORT}'
    else:
        peer = xlate(topo, family, s)
        port_mode = 'any'
    img = s.take()
    dest = s.create('dest', img, '--activate', '--port-mode', port_mode, '--local', s.ipx)
    port = cli.tcp_socket(topo, 'dest', dest.pid)['local'][1]
    if mode == 'bound':
        assert port == NEW_PORT
    else:
        xlate_in(topo, family, s, peer, port)
    s.hand_over(dest, 'dest')
    s.finish()
