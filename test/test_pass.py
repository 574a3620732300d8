# SPDX-License-Identifier: GPL-2.0-or-later
"""End-to-end passes through the tcpcp CLI.

The peer talks to ipX:PORT; the router first sends ipX to origin.  A pass
takes the origin's socket with `tcpcp get`, recreates it at dest with
`tcpcp create --activate -- tcpcp-traffic --fd 3 --state ...`, moves ipX
to dest at the router and stops the origin process.  The stream must end
exactly as if nothing had happened: both ends verify every byte and their
hashes must agree, and the peer must never see a RST, an early FIN or
TSval going back.

The route moves only after the destination socket exists: in between, a
retransmission from the peer would otherwise reach a host with ipX but no
socket, and its RST would end the connection.
"""
import time

import pytest

from lib import cli
from lib.capture import (Capture, assert_fin_after_data, assert_no_rst, connection,
                         tsval_never_backwards)
from lib.netns import hostport
from lib.traffic import Traffic, assert_hashes_match, read_state, wait_file, wait_for

PORT = 5001
NEW_PORT = 6001             # bound:PORT mode
MB = 1 << 20
SEED_PEER, SEED_SERVER = 22, 11


class Stream:
    """The peer's connection to ipX:PORT and the process serving it."""

    def __init__(self, topo, tmp, family, nbytes, rate='1M', peer_args=(),
                 origin_args=()):
        self.topo, self.tmp, self.family = topo, tmp, family
        self.nbytes, self.rate = nbytes, rate
        self.ipx = topo.ipx(family)
        self.taken = 0
        self.cap = Capture(topo, 'peer', tmp / 'peer.pcap').start()
        self.host = 'origin'
        self.state = tmp / 'origin.state'
        self.server = Traffic(topo, 'origin', '--listen', hostport(self.ipx, PORT),
                              '--bytes', nbytes, '--tx-seed', SEED_SERVER,
                              '--rx-seed', SEED_PEER, '--state-out', self.state,
                              *self._rate(), *origin_args)
        cli.wait_listening(topo, 'origin', PORT)
        ready = tmp / 'peer.ready'
        self.peer = Traffic(topo, 'peer', '--connect', hostport(self.ipx, PORT),
                            '--bytes', nbytes, '--tx-seed', SEED_PEER,
                            '--rx-seed', SEED_SERVER, '--ready', ready,
                            *self._rate(), *peer_args)
        wait_file(ready)
        self.fd = None

    def _rate(self):
        return ('--rate', self.rate) if self.rate else ()

    def take(self):
        """`tcpcp get` on the serving host; returns the image."""
        assert self.server.running(), f'stream over before the pass\n{self.server.describe()}'
        sock = cli.tcp_socket(self.topo, self.host, self.server.pid)
        self.fd = sock['fd']
        img = self.tmp / f'ici{self.taken}.img'
        self.taken += 1
        cli.get(self.topo, self.host, self.server.pid, self.fd, img)
        wait_file(self.state)
        return img

    def create(self, host, img, *opts, state_in=None):
        """`tcpcp create IMG OPTS -- tcpcp-traffic --fd 3 ...` at host."""
        state_out = self.tmp / f'{host}.{self.taken}.state'
        t = Traffic(self.topo, host, '--fd', 3, '--state', state_in or self.state,
                    '--state-out', state_out, *self._rate(),
                    prefix=cli.create_prefix(img, *opts))
        t.state_out = state_out
        t.started()
        return t

    def hand_over(self, new, host, close=False):
        """The route moves to host, the old process goes (silently)."""
        self.topo.switch_to(host)
        if close:
            cli.close(self.topo, self.host, self.server.pid, self.fd)
        old, state = self.server, read_state(self.state)
        old.terminate()
        res = old.expect('taken')
        assert (res['tx'], res['rx']) == (state['tx'], state['rx'])
        self.server, self.host, self.state = new, host, new.state_out

    def finish(self):
        try:
            a = self.peer.expect()
        except AssertionError as e:
            # The other end's story is usually the cause.
            self.server.wait(10)
            raise AssertionError(f'{e}\nserver: {self.server.describe()}') from None
        b = self.server.expect()
        assert a['tx'] == a['rx'] == self.nbytes
        assert_hashes_match(a, b)
        pkts = connection(self.cap.stop(), (self.ipx, PORT))
        assert_no_rst(pkts)
        assert_fin_after_data(pkts, (self.ipx, PORT), self.nbytes)
        peer = [p for p in pkts if p.dst == self.ipx][0]
        assert_fin_after_data(pkts, (peer.src, peer.sport), self.nbytes)
        assert tsval_never_backwards(pkts, (self.ipx, PORT)), 'TSval from ipX went back'
        return pkts


def simple_pass(s, *create_opts):
    img = s.take()
    dest = s.create('dest', img, '--activate', *create_opts)
    s.hand_over(dest, 'dest')
    return img


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
