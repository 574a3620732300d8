# SPDX-License-Identifier: GPL-2.0-or-later
"""Congestion carry-over (`tcpcp create --congestion carry`, lib/carry.c):
the recreated connection starts with the window and slow-start threshold
its ICI recorded, only where the host's tcpcp.conf allows it.

They are read at the destination while the connection waits for its
activation (repair mode, gated: nothing moves them), then the stream goes
on and must finish intact, as every pass must."""
import re
import subprocess
import time

import pytest

from lib import build, cli
from lib.capture import Capture
from lib.stream import MB, PORT, Stream
from lib.traffic import Traffic


def conf(tmp_path, text):
    path = tmp_path / 'tcpcp.conf'
    path.write_text(text)
    return path


def congestion(topo, host, port):
    """The congestion window and slow-start threshold (None: none yet,
    slow start) that ss(8) shows for the local end at port."""
    out = topo.run(host, 'ss', '-tinH', 'sport', '=', f':{port}').stdout
    m = re.search(r'\bcwnd:(\d+)', out)
    assert m, f'no cwnd for port {port} in:\n{out}\n' + topo.run(host, 'ss', '-tanie').stdout
    t = re.search(r'\bssthresh:(\d+)', out)
    return int(m.group(1)), int(t.group(1)) if t else None


def grown_stream(topo, tmp_path, family):
    """A bulk stream from a Reno sender (cubic is not in this host's
    tcp_allowed_congestion_control), whose window grows in slow start
    well past the initial ten segments on this loss-free path."""
    topo.sysctl('origin', 'net.ipv4.tcp_congestion_control', 'reno')
    # A narrow path, so that the sender is limited by its window, which
    # then grows (an application-limited one keeps the initial window).
    topo.run('router', 'tc', 'qdisc', 'add', 'dev', 'to-peer', 'root', 'tbf',
             'rate', '20mbit', 'burst', '64kb', 'latency', '50ms')
    s = Stream(topo, tmp_path, family, 8 * MB, rate=None, peer_bytes=512 * 1024,
               peer_args=('--rate', '64K'))
    time.sleep(1.5)
    return s


def create_with(s, img, config, *opts):
    """tcpcp create IMG OPTS -- tcpcp-traffic ..., under config."""
    state_out = s.tmp / f'dest.{s.taken}.state'
    t = Traffic(s.topo, 'dest', '--fd', 3, '--state', s.state, '--state-out', state_out,
                *s._rate(), prefix=['env', f'TCPCP_CONFIG={config}',
                                    *cli.create_prefix(img, *opts)])
    t.state_out = state_out
    t.started()
    return t


@pytest.mark.parametrize('mode', ['carry', 'fresh'])
@pytest.mark.parametrize('family', [4, 6])
def test_window_carried(topo, tmp_path, family, mode):
    s = grown_stream(topo, tmp_path, family)
    img = s.take()
    cc = cli.show(img)['congestion']
    recorded, threshold = cc['snd_cwnd'], cc.get('snd_ssthresh')
    assert recorded > 20, f'the window did not grow before the pass ({recorded})'
    # tbf drops what its queue cannot hold: the origin has left slow start.
    assert threshold and threshold < 0x7fffffff, f'no slow-start threshold yet ({threshold})'
    new = create_with(s, img, conf(tmp_path, 'congestion-carry yes\n'), '--congestion', mode)
    at_dest = congestion(s.topo, 'dest', PORT)
    if mode == 'carry':
        assert at_dest == (recorded, threshold), \
            f'carried (cwnd, ssthresh) {at_dest}, the ICI had {(recorded, threshold)}'
    else:
        assert at_dest == (10, None), f'a fresh connection starts at 10 in slow start, not {at_dest}'
    # The socket has its own algorithm again, not the carry-over's.
    assert ' reno ' in s.topo.run('dest', 'ss', '-tinH', 'sport', '=', f':{PORT}').stdout
    s.hand_over(new, 'dest')
    cli.tcpcp(topo, 'dest', 'activate', '--pid', new.pid, '--fd', 3, '--image', img)
    s.finish()


def registered():
    with open('/proc/sys/net/ipv4/tcp_available_congestion_control') as f:
        return 'tcpcp_carry' in f.read().split()


def test_unload_unregisters(topo, tmp_path):
    """The carry-over's congestion control is the host's while tcpcp's
    BPF objects are loaded, and `tcpcp gate unload` (refused while a
    namespace has a gate) takes it away with them: nothing left behind
    once the last user is gone."""
    s = grown_stream(topo, tmp_path, 4)
    img = s.take()
    new = create_with(s, img, conf(tmp_path, 'congestion-carry yes\n'), '--congestion', 'carry')
    s.hand_over(new, 'dest')
    cli.tcpcp(topo, 'dest', 'activate', '--pid', new.pid, '--fd', 3, '--image', img)
    s.finish()
    assert registered(), 'the carry-over ran without its congestion control'
    topo.cleanup()
    r = subprocess.run([build.tcpcp(), 'gate', 'unload'], env=build.env(),
                       capture_output=True, text=True)
    if r.returncode and 'still has a gate' in r.stderr:
        pytest.skip(f'another user keeps the gate loaded: {r.stderr.strip()}')
    assert r.returncode == 0, r.stderr
    assert not registered(), 'tcpcp_carry stays registered after the unload'


@pytest.mark.parametrize('text', ['', 'congestion-carry no\n'], ids=['no-line', 'no'])
def test_refused_without_policy(topo, tmp_path, text):
    """Without "congestion-carry yes" the create is refused before anything
    exists, with one line naming the file; the origin takes its
    connection back and the stream finishes as if nothing happened."""
    s = grown_stream(topo, tmp_path, 4)
    img = s.take()
    path = conf(tmp_path, text)
    r = topo.run('dest', 'env', f'TCPCP_CONFIG={path}', build.tcpcp(), 'create', img,
                 '--congestion', 'carry', '--', 'true', check=False)
    assert r.returncode == 1, r
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1 and 'congestion carry-over is not allowed' in err \
        and str(path) in err, err
    assert not re.search(rf':{PORT}\b', topo.run('dest', 'ss', '-tanH').stdout), \
        'a refused create left a socket behind'
    cli.release(topo, 'origin', s.server.pid, s.fd)
    s.finish()


# What the router drops of the destination's first data: a part of its
# first burst (SACK tells the sender at once), or all it sends in its
# first 300 ms (only a timer does); and how soon its first segment must
# go again: within a second, not after the 3 s TCP_TIMEOUT_FALLBACK that
# a connection without an RTT sample might wait (seen: 1 ms for a part,
# 0.43-0.48 s for 300 ms of everything).
LOSSES = {'part': ('quota until 22000 bytes', 1.0), 'burst': ('', 1.0)}


@pytest.mark.parametrize('loss', sorted(LOSSES))
@pytest.mark.parametrize('family', [4, 6])
def test_loss_after_activation_recovered(topo, tmp_path, family, loss):
    """A passed connection knows no round-trip time until its first
    acknowledgment.  The router drops the destination's first data
    segments (nft quota): the first of them must go again within the
    limit above, and the stream finish intact.  The drops and the
    retransmission are read where they happen, on the router's link to
    the destination."""
    quota, limit = LOSSES[loss]
    s = grown_stream(topo, tmp_path, family)
    img = s.take()
    ip = 'ip' if family == 4 else 'ip6'
    length = 'ip length' if family == 4 else 'ip6 length'
    topo.run('router', 'nft', '-f', '-', input=f'''
        table inet tcpcp_test_loss {{
            chain lose {{
                type filter hook forward priority 0;
                iifname "to-dest" {ip} saddr {s.ipx} tcp sport {PORT} {length} > 200 {quota} counter drop
            }}
        }}''')
    cap = Capture(topo, 'router', tmp_path / 'to-dest.pcap', ifname='to-dest').start()
    new = s.create('dest', img)
    s.hand_over(new, 'dest')
    cli.tcpcp(topo, 'dest', 'activate', '--pid', new.pid, '--fd', 3, '--image', img)
    if not quota:
        time.sleep(0.3)
        dropped = topo.run('router', 'nft', 'list', 'table', 'inet', 'tcpcp_test_loss').stdout
        topo.run('router', 'nft', 'delete', 'table', 'inet', 'tcpcp_test_loss')
    time.sleep(4)
    pkts = [p for p in cap.stop() if p.src == s.ipx and p.sport == PORT and p.length]
    if quota:
        dropped = topo.run('router', 'nft', 'list', 'table', 'inet', 'tcpcp_test_loss').stdout
        topo.run('router', 'nft', 'delete', 'table', 'inet', 'tcpcp_test_loss')
    assert pkts, 'the destination sent no data'
    first = pkts[0]
    again = next((p for p in pkts[1:] if p.seq == first.seq), None)
    assert again, f'{first} never sent again:\n' + '\n'.join(map(str, pkts[:30]))
    # The loss happened: a first window's worth at least (the counter
    # counts GSO packets, so bytes).
    lost = int(re.search(r'counter packets \d+ bytes (\d+)', dropped).group(1))
    assert lost >= 10 * 1400, dropped
    took = again.ts - first.ts
    assert took < limit, f'first retransmission after {took:.2f} s\n{first}\n{again}'
    s.finish()
