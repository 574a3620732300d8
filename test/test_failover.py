# SPDX-License-Identifier: GPL-2.0-or-later
"""Fail-over (paper section 6) on a stock kernel: what a standby learns
from the peer before it resurrects a connection from an old checkpoint.

    peer --- router --- origin (the primary)
                  \\--- dest   (the standby)

A stream runs between the peer and the primary; a checkpoint is taken
(`tcpcp get`, then `tcpcp release`: the connection goes on), both sides
move on, and the primary "dies" (`tcpcp get` again: isolated for good, its
image the truth to check against).  The router sends ipX to the standby,
which probes the peer from the old checkpoint alone (`tcpcp probe`).
"""
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import time

import pytest

from lib import build, cli, pbwire
from lib.capture import (RST, Capture, assert_no_rst, connection, seq_before,
                         tsval_hz, tsval_never_backwards)
from lib.criu import Criu, Task, asan_build
from lib.failover import (fileserver, move_to_dest, peer_port, primary_dies, resume_cmd,
                          standby)
from lib.netns import hostport
from lib.passd import binary, make_key
from lib.traffic import wait_for
from lib.stream import Stream
from lib.traffic import Traffic, assert_hashes_match

MB = 1 << 20
CRIU_PORT = 5001
CAPTURE_REALTIME_NS = 19        # images/ici.proto


def probe(topo, host, *args, timeout_ms=3000, check=True):
    r = cli.tcpcp(topo, host, 'probe', '--timeout', timeout_ms, *args, check=check)
    return r, [json.loads(line) for line in r.stdout.splitlines()]


def takeover(topo, *imgs):
    """The standby's first step: the connections gated here before the
    service address moves here, so that no segment of the peer's meets a
    host without them (a RST); then the address."""
    cli.tcpcp(topo, 'dest', 'gate', 'close', *imgs)
    topo.switch_to('dest')


def between(lo, x, hi):
    """lo <= x <= hi in sequence space."""
    return not seq_before(x, lo) and not seq_before(hi, x)


@pytest.mark.parametrize('family', [4, 6])
def test_probe_tells_where_the_peer_stands(topo, tmp_path, family):
    """From a checkpoint taken a second before the primary's end, the probe
    learns how far the peer has our bytes and how far it has sent its own:
    exactly what the primary had when it died, not what the checkpoint
    says; its clock, and the last TSval of ours it took (the primary's,
    later than the checkpoint's)."""
    s = Stream(topo, tmp_path, family, 8 * MB, rate='1M')
    time.sleep(1)
    ckpt = s.take()
    cli.release(topo, 'origin', s.server.pid, s.fd)
    time.sleep(1)
    dead = s.take()                 # the primary stops here, silently
    a, b = cli.show(ckpt), cli.show(dead)
    takeover(topo, ckpt)
    t0 = time.monotonic()
    r, views = probe(topo, 'dest', ckpt)
    took = time.monotonic() - t0
    v = views[0]
    assert v['answered'], r.stdout
    # Our bytes: the peer has at least what the primary saw acknowledged,
    # at most what it sent.
    assert between(b['snd_una'], v['rcv_nxt'], b['snd_nxt']), (v, b)
    # The peer's bytes: what the primary received, and maybe more that the
    # dead primary's gate dropped (at most a window).
    assert between(b['rcv_nxt'], v['snd_nxt'], (b['rcv_nxt'] + 4 * MB) % (1 << 32)), (v, b)
    # Both moved on since the checkpoint: ~1 MB each way in that second.
    assert v['acked_since'] > 256 * 1024 and v['sent_since'] > 256 * 1024, v
    assert v['acked_since'] == (v['rcv_nxt'] - a['snd_una']) % (1 << 32)
    # Timestamps: the peer's clock, and its ts_recent is a TSval the
    # primary sent after the checkpoint.
    assert v['tsecr'] and seq_before(a['timestamp'], v['tsecr']), (v, a)
    assert not seq_before(b['timestamp'], v['tsecr']), (v, b)
    assert took < 2, f'the first probe is answered at once, not after {took:.1f} s'
    # The answer never reached the standby's TCP: no RST went out.
    assert cli.gate_entries(topo, 'dest') == 1
    pkts = connection(s.cap.stop(), (s.ipx, s.port))
    assert_no_rst(pkts)


def test_probe_without_answer(topo, tmp_path):
    """A peer that has no such connection answers with a RST, which is no
    answer: after the given time, one line and exit 1."""
    s = Stream(topo, tmp_path, 4, 8 * MB, rate='1M')
    time.sleep(0.5)
    img = s.take()
    cli.tcpcp(topo, 'origin', 'edit', '--peer-port', 1, img)
    takeover(topo, img)
    t0 = time.monotonic()
    r, views = probe(topo, 'dest', img, timeout_ms=1500, check=False)
    took = time.monotonic() - t0
    assert r.returncode == 1, r
    assert views == [{'image': str(img), 'answered': False}], views
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and '1 of 1 peer(s) did not answer within 1500 ms' in err[0], err
    assert 1.4 < took < 5, took


def test_probe_many_at_once(topo, tmp_path):
    """Answers are rate-limited per connection, so connections are probed
    in parallel: three checkpoints answered in about the time of one."""
    streams = []
    for i in range(3):
        d = tmp_path / f's{i}'
        d.mkdir()
        streams.append(Stream(topo, d, 4, 8 * MB, rate='1M', port=5001 + i))
    time.sleep(0.5)
    imgs = [st.take() for st in streams]
    takeover(topo, *imgs)
    t0 = time.monotonic()
    r, views = probe(topo, 'dest', *imgs)
    took = time.monotonic() - t0
    assert [v['answered'] for v in views] == [True] * 3, r.stdout
    for img, v in zip(imgs, views):
        b = cli.show(img)
        assert v['rcv_nxt'] == b['snd_nxt'] or between(b['snd_una'], v['rcv_nxt'],
                                                       b['snd_nxt']), (v, b)
    assert took < 2, took


@pytest.mark.parametrize('family', [4, 6])
def test_resurrect_download(topo, tmp_path, family):
    """The whole stock-kernel fail-over of a download: a checkpoint of the
    primary's connection and its application state; the primary sends on
    for a second and dies; the standby probes the peer, brings the
    checkpoint up to it (the peer has bytes the checkpoint never held: the
    application skips them) and recreates the connection.  The peer gets
    every byte once, in order (both hashes agree), sees no RST and no
    TSval going back."""
    # The peer's 1 KB goes out only after the fail-over (5 s): it sends
    # nothing the dead primary could have acknowledged beyond the
    # checkpoint, which without an acknowledgment clamp would be lost.
    s = Stream(topo, tmp_path, family, 12 * MB, rate='1M', peer_bytes=1024,
               peer_args=('--write-stall', '0:5000'))
    time.sleep(1)
    ckpt = s.take()
    ckpt_state = tmp_path / 'ckpt.state'
    shutil.copy(s.state, ckpt_state)       # the application's checkpoint
    cli.release(topo, 'origin', s.server.pid, s.fd)
    time.sleep(1)
    s.take()                               # the primary dies here, silently
    takeover(topo, ckpt)
    out = tmp_path / 'resurrected'
    out.mkdir()
    r, views = probe(topo, 'dest', '--resurrect', out, ckpt)
    v = views[0]
    assert v['answered'] and v['skip'] > 256 * 1024, r.stdout
    img = out / ckpt.name
    assert cli.show(img)['snd_nxt'] == v['rcv_nxt']
    new = Traffic(topo, 'dest', '--fd', 3, '--state', ckpt_state, '--tx-skip', v['skip'],
                  '--rate', '1M', prefix=cli.create_prefix(img, '--activate'))
    assert new.started(), new.describe()
    s.server.terminate()
    s.server.expect('taken')
    s.server = new
    s.finish()


def test_probe_bad_input(topo, tmp_path):
    """A corrupt image, no image, a bad timeout, no CAP_NET_RAW: one line
    each, exit 1 (2 for the command line), nothing sent."""
    bad = tmp_path / 'bad.img'
    bad.write_bytes(b'\x00' * 64)
    r = cli.tcpcp(topo, 'dest', 'probe', bad, check=False)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r
    assert str(bad) in r.stderr, r.stderr
    for args in ((), ('--timeout', 0, bad), ('--timeout', 'x', bad)):
        r = cli.tcpcp(topo, 'dest', 'probe', *args, check=False)
        assert r.returncode == 2, r
    s = Stream(topo, tmp_path, 4, 8 * MB, rate='1M')
    time.sleep(0.3)
    img = s.take()
    r = topo.run('dest', 'setpriv', '--bounding-set=-net_raw', '--inh-caps=-net_raw', '--',
                 build.tcpcp(), 'probe', img, check=False)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r
    assert 'CAP_NET_RAW' in r.stderr, r.stderr
    assert cli.gate_entries(topo, 'dest') == 0, 'a refused probe gated something'


@pytest.mark.parametrize('reset', ['', 'reset'])
def test_resurrect_refuses_stale(topo, tmp_path, reset):
    """A checkpoint older than a maximum segment lifetime (its capture time
    set 200 s back): the peer answers, but nothing is resurrected; one
    line naming the image and the age, exit 1, no image written.  reset
    (--reset-refused): the connection is given up cleanly, the peer
    reset at once by one RST at exactly its rcv_nxt, not left to its
    timeouts."""
    s = Stream(topo, tmp_path, 4, 8 * MB, rate='1M')
    time.sleep(0.3)
    img = s.take()
    old = pbwire.edit(img.read_bytes(), (CAPTURE_REALTIME_NS,),
                      time.time_ns() - 200 * 10**9)
    stale = tmp_path / 'stale.img'
    stale.write_bytes(old)
    takeover(topo, stale)
    out = tmp_path / 'res'
    out.mkdir()
    args = ('--reset-refused',) if reset else ()
    r, views = probe(topo, 'dest', '--resurrect', out, *args, stale, check=False)
    assert r.returncode == 1 and views[0]['answered'] and 'skip' not in views[0], r
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and str(stale) in err[0] and 'maximum segment lifetime' in err[0], err
    assert not list(out.iterdir()), 'a stale checkpoint was resurrected'
    if not reset:
        assert 'reset' not in err[0]
        return
    assert 'the peer was reset' in err[0], err
    assert s.peer.wait(timeout=10) == 4, s.peer.describe()     # EXIT_RESET
    assert 'connection reset' in s.peer.err, s.peer.describe()
    pkts = connection(s.cap.stop(), (s.ipx, s.port))
    rsts = [p for p in pkts if p.flags & RST]
    assert len(rsts) == 1 and rsts[0].src == s.ipx, [str(p) for p in rsts]
    # Exactly where the peer stood: its ACK in the probe's answer.
    assert rsts[0].seq == views[0]['rcv_nxt'], (str(rsts[0]), views[0])


# ---- checkpoints of a live connection: tcpcp_checkpoint() ----

KILLS = int(os.environ.get('TCPCP_FAILOVER_KILLS', '20'))


@pytest.mark.parametrize('family', [4, 6])
def test_checkpointed_download_survives_kill(topo, tmp_path, family):
    """An unmodified curl downloads from a file server that checkpoints
    its connection every 10 ms (tcpcp_checkpoint(), the connection never
    stops) into a directory the standby reads.  At a random point the
    primary dies (links cut, processes killed); the standby takes the
    address, probes the peer, resurrects the connection from the last
    checkpoint and sends the rest from the file offset it held plus the
    probe's skip, which is negative when the peer lacks bytes written
    before the checkpoint.  KILLS rounds (TCPCP_FAILOVER_KILLS, 20): each
    download ends with the file's sha256 and no RST on the wire."""
    root = tmp_path / 'root'
    root.mkdir()
    size = 8 * MB
    data = os.urandom(size)
    (root / 'f.bin').write_bytes(data)
    want = hashlib.sha256(data).hexdigest()
    key = make_key(tmp_path / 'key')
    ck = tmp_path / 'ck'
    ck.mkdir()
    ipx = topo.ipx(family)
    topo.sysctl('origin', 'net.ipv4.tcp_orphan_retries', 1)
    # A 4 MB/s path, so that a download lasts 2 s (curl's --limit-rate
    # lets the first megabytes through at once).
    topo.run('router', 'tc', 'qdisc', 'add', 'dev', 'to-peer', 'root', 'tbf',
             'rate', '32mbit', 'burst', '64kb', 'latency', '100ms')
    cap = Capture(topo, 'peer', tmp_path / 'peer.pcap').start()
    rng = random.Random(os.environ.get('TCPCP_SEED', 1))
    skips = []
    for i in range(KILLS):
        olog, slog = tmp_path / f'primary{i}.log', tmp_path / f'standby{i}.log'
        server = fileserver(topo, 'origin', olog, '--root', root, '--key', key,
                            '--listen', hostport(ipx, 8000), '--checkpoint-dir', ck)
        out = tmp_path / f'out{i}'
        curl = topo.popen('peer', 'curl', '-sS', '--fail', '--max-time', '60', '-o', out,
                          f'http://{hostport(ipx, 8000)}/f.bin', stderr=subprocess.PIPE)
        wait_for(lambda: list(ck.glob('*.img')), 10, f'a first checkpoint in {ck}')
        img = next(ck.glob('*.img'))
        port = int(img.stem)
        time.sleep(rng.uniform(0, 1.2))
        link_back = primary_dies(topo, server, port)
        takeover(topo, img)
        res = tmp_path / f'res{i}'
        res.mkdir()
        r, views = probe(topo, 'dest', '--resurrect', res, img)
        skip = views[0]['skip']
        skips.append(skip)
        standby = topo.popen('dest', *cli.create_prefix(res / img.name, '--activate'),
                             binary('tcpcp-fileserver'), '--root', root,
                             '--resume', res / img.name, '--skip', skip,
                             stderr=open(slog, 'w'))
        _, err = curl.communicate(timeout=60)
        assert curl.returncode == 0, (f'round {i}: curl exit {curl.returncode}: {err}\n'
                                      f'{slog.read_text()}')
        assert hashlib.sha256(out.read_bytes()).hexdigest() == want, f'round {i}'
        assert standby.wait(timeout=10) == 0, slog.read_text()
        link_back()
        topo.switch_to('origin')
        out.unlink()
        img.unlink()
    assert_no_rst(connection(cap.stop(), (ipx, 8000)))
    # Some peers lacked bytes written before the checkpoint: written again.
    assert KILLS < 4 or min(skips) < 0, skips


@pytest.mark.parametrize('family', [4, 6])
def test_standby_takes_over(topo, tmp_path, family):
    """The whole fail-over without a hand in it: each download of
    tcpcp-fileserver --standby sends its checkpoints to `tcpcp standby`
    on the standby host over an authenticated control session and beats
    while it waits.  The primary dies at a random point; the standby hears
    nothing for --timeout, gates the connection, moves the address
    (--takeover), probes, resurrects and runs tcpcp-fileserver --resume
    with the image and the skip.  Unmodified curl finishes with the
    file's sha256, no RST on the wire.  Then a download that ends well
    says bye: nothing is taken over."""
    root = tmp_path / 'root'
    root.mkdir()
    data = os.urandom(8 * MB)
    (root / 'f.bin').write_bytes(data)
    want = hashlib.sha256(data).hexdigest()
    key = make_key(tmp_path / 'key')
    ipx = topo.ipx(family)
    ctl = hostport(topo.addr('dest', family), 7300)
    topo.sysctl('origin', 'net.ipv4.tcp_orphan_retries', 1)
    topo.run('router', 'tc', 'qdisc', 'add', 'dev', 'to-peer', 'root', 'tbf',
             'rate', '32mbit', 'burst', '64kb', 'latency', '100ms')
    cap = Capture(topo, 'peer', tmp_path / 'peer.pcap').start()
    rng = random.Random(os.environ.get('TCPCP_SEED', 2))
    for i in range(3):
        slog, olog = tmp_path / f'standby{i}.log', tmp_path / f'primary{i}.log'
        sb = standby(topo, slog, ctl, key, *resume_cmd(root))
        server = fileserver(topo, 'origin', olog, '--root', root, '--key', key,
                            '--listen', hostport(ipx, 8000), '--standby', ctl)
        out = tmp_path / f'out{i}'
        curl = topo.popen('peer', 'curl', '-sS', '--fail', '--max-time', '60', '-o', out,
                          f'http://{hostport(ipx, 8000)}/f.bin', stderr=subprocess.PIPE)
        time.sleep(rng.uniform(0.3, 1.5))
        link_back = primary_dies(topo, server, peer_port(topo, 8000))
        _, err = curl.communicate(timeout=60)
        log = slog.read_text()
        assert curl.returncode == 0, f'round {i}: curl exit {curl.returncode}: {err}\n{log}'
        assert hashlib.sha256(out.read_bytes()).hexdigest() == want, f'round {i}\n{log}'
        assert 'taking over 1 connection(s)' in log and '1 of 1 connection(s) resurrected' in log, log
        assert sb.wait(timeout=10) == 0, log
        link_back()
        topo.switch_to('origin')
        out.unlink()
    assert_no_rst(connection(cap.stop(), (ipx, 8000)))
    # A primary that finishes says bye: the standby takes nothing over.
    slog = tmp_path / 'standby-bye.log'
    sb = standby(topo, slog, ctl, key, 'true', takeover='false')
    server = fileserver(topo, 'origin', tmp_path / 'primary-bye.log', '--root', root, '--key',
                        key, '--listen', hostport(ipx, 8000), '--standby', ctl)
    topo.run('peer', 'curl', '-sS', '--fail', '--max-time', '60', '-o', tmp_path / 'outbye',
             f'http://{hostport(ipx, 8000)}/f.bin', timeout=90)
    assert hashlib.sha256((tmp_path / 'outbye').read_bytes()).hexdigest() == want
    assert sb.wait(timeout=10) == 0
    log = slog.read_text()
    assert 'bye (0 connection(s) let go)' in log and 'taking over' not in log, log


def test_standby_refuses_strangers(topo, tmp_path):
    """A client without the key, and one that sends garbage: one line
    each, nothing taken over, no command run, exit 1."""
    key = make_key(tmp_path / 'key')
    other = make_key(tmp_path / 'other')
    ctl = hostport(topo.addr('dest', 4), 7301)
    marker = tmp_path / 'ran'
    for i, send in enumerate(('garbage', 'wrong-key')):
        slog = tmp_path / f'standby{i}.log'
        sb = standby(topo, slog, ctl, key, 'touch', marker, timeout_ms=500,
                     takeover=f'touch {marker}')
        if send == 'garbage':
            topo.run('origin', 'python3', '-c',
                     'import socket,sys; s=socket.create_connection((sys.argv[1], 7301)); '
                     's.sendall(b"\\xff" * 4096); s.close()', topo.addr('dest', 4))
        else:
            # A primary with another key: refused before anything.
            fileserver(topo, 'origin', tmp_path / 'primary.log', '--root', tmp_path, '--key',
                       other, '--listen', hostport(topo.ipx(4), 8000), '--standby', ctl)
            topo.run('peer', 'curl', '-sS', '--max-time', '5', '-o', '/dev/null',
                     f'http://{hostport(topo.ipx(4), 8000)}/key', check=False, timeout=30)
        assert sb.wait(timeout=20) == 1
        lines = [ln for ln in slog.read_text().splitlines() if 'listening' not in ln]
        assert len(lines) == 1 and 'refused' in lines[0], lines
        assert not marker.exists()


@pytest.mark.parametrize('family', [4, 6])
def test_upload_survives_kill(topo, tmp_path, family):
    """The inbound direction: curl uploads (PUT) 8 MB to tcpcp-fileserver
    --standby, which writes each chunk to the file, checkpoints every
    10 ms, and clamps its acknowledgments to what the standby holds
    (tcpcp_ckpt_clamp(): a tc program rewrites every ACK beyond the last
    checkpoint the standby's host has).  The primary dies at a random
    point; the standby resurrects the connection, whose peer sends again
    from the clamped ACK, and a new tcpcp-fileserver writes the rest.
    The file is byte-exact, curl gets its 201, no RST on the wire."""
    root = tmp_path / 'root'
    root.mkdir()
    data = os.urandom(8 * MB)
    src = tmp_path / 'src.bin'
    src.write_bytes(data)
    key = make_key(tmp_path / 'key')
    ipx = topo.ipx(family)
    ctl = hostport(topo.addr('dest', family), 7300)
    topo.sysctl('origin', 'net.ipv4.tcp_orphan_retries', 1)
    for dev in ('to-origin', 'to-dest'):
        topo.run('router', 'tc', 'qdisc', 'add', 'dev', dev, 'root', 'tbf',
                 'rate', '32mbit', 'burst', '64kb', 'latency', '100ms')
    cap = Capture(topo, 'peer', tmp_path / 'peer.pcap').start()
    rng = random.Random(os.environ.get('TCPCP_SEED', 3))
    offsets = []
    for i in range(3):
        slog, olog = tmp_path / f'standby{i}.log', tmp_path / f'primary{i}.log'
        sb = standby(topo, slog, ctl, key, *resume_cmd(root))
        server = fileserver(topo, 'origin', olog, '--root', root, '--key', key,
                            '--listen', hostport(ipx, 8000), '--standby', ctl)
        # No "Expect: 100-continue": the body goes at once.
        curl = topo.popen('peer', 'curl', '-sS', '--fail', '--max-time', '60', '-H', 'Expect:',
                          '-T', src,
                          '-o', tmp_path / 'answer', f'http://{hostport(ipx, 8000)}/up{i}.bin',
                          stderr=subprocess.PIPE)
        time.sleep(rng.uniform(0.3, 1.5))
        link_back = primary_dies(topo, server, peer_port(topo, 8000))
        _, err = curl.communicate(timeout=60)
        log = slog.read_text()
        assert curl.returncode == 0, f'round {i}: curl exit {curl.returncode}: {err}\n{log}'
        got = (root / f'up{i}.bin').read_bytes()
        assert len(got) == len(data) and got == data, \
            f'round {i}: {len(got)} bytes, first difference at ' \
            f'{next((j for j in range(min(len(got), len(data))) if got[j] != data[j]), None)}\n{log}'
        assert '1 of 1 connection(s) resurrected' in log, log
        # A stock kernel has no TCP_ACK_HOLD (kernel-patch/): the BPF clamp.
        assert 'acknowledgments clamped (BPF)' in olog.read_text(), olog.read_text()
        offsets.append(int(re.search(r'at offset (\d+) of', log).group(1)))
        assert sb.wait(timeout=10) == 0, log
        link_back()
        topo.switch_to('origin')
    assert_no_rst(connection(cap.stop(), (ipx, 8000)))
    # The standby went on from the middle of the body, not its start.
    assert max(offsets) > 128 * 1024, offsets


@pytest.mark.skipif(asan_build(), reason='an ASan plugin cannot load into criu')
@pytest.mark.parametrize('family', [4, 6])
@pytest.mark.parametrize('both', [False, True], ids=['download', 'both-ways'])
def test_criu_speculative_dump_survives_kill(topo, tmp_path, family, both):
    """Whole processes, unmodified: tcpcp-traffic streams to the peer (and,
    both-ways, the peer to it) and CRIU dumps it now and then with the
    plugin (--leave-running: it runs on; both-ways with TCPCP_CLAMP=1, so
    that the host acknowledges none of the peer's bytes the last dump does
    not hold); the streams move on past the last dump, and the primary
    dies (links cut, SIGKILL, the kernel's socket removed).  At the
    standby `criu restore` of the last dump with TCPCP_RESURRECT=1 probes
    the peer, rebuilds the connection where the peer stands, and drops the
    bytes the restored process writes again that the peer already has.
    Every byte arrives once both ways (hashes at both ends), no RST, no
    TSval going back."""
    nbytes = 6 * MB
    up = 3 * MB if both else 1
    ipx = topo.ipx(family)
    criu = Criu(topo, tmp_path)
    cap = Capture(topo, 'peer', tmp_path / 'peer.pcap').start()
    server = Task(topo, 'origin', [build.traffic(), '--listen', hostport(ipx, CRIU_PORT),
                                   '--tx-bytes', nbytes, '--rx-bytes', up, '--tx-seed', 11,
                                   '--rx-seed', 22, '--rate', '1M'], tmp_path, 'server')
    cli.wait_listening(topo, 'origin', CRIU_PORT)
    ready = tmp_path / 'peer.ready'
    # Download only: the peer's one byte (and its FIN) only after the
    # fail-over, as no clamp keeps the primary from acknowledging it (and
    # half-closed connections are not resurrected yet).
    up_args = ('--rate', '512K') if both else ('--write-stall', '0:9000')
    peer = Traffic(topo, 'peer', '--connect', hostport(ipx, CRIU_PORT), '--tx-bytes', up,
                   *up_args, '--rx-bytes', nbytes, '--tx-seed', 22, '--rx-seed', 11,
                   '--ready', ready)
    wait_for(ready.exists, 10, 'the peer connected')
    rng = random.Random(f"{os.environ.get('TCPCP_SEED', 1)}-{family}-{both}")
    env = {'TCPCP_CLAMP': '1'} if both else None
    for k in range(3):
        time.sleep(0.3)
        d = criu.dump('origin', server.pid, tmp_path / f'img{k}', extra=('--leave-running',),
                      env=env)
        assert 'tcpcp: the tasks run on' in d.log, d.log[-2000:]
        assert both == ('clamped to this dump' in d.log), d.log[-2000:]
    time.sleep(rng.uniform(0.3, 1.0))       # the streams move on past the dump
    link_back = primary_dies(topo, server, peer_port(topo, CRIU_PORT))
    server.restored()
    # The address moves once the restore has gated the connections here.
    t_restore = time.time()
    r = criu.restore('dest', tmp_path / 'img2',
                     env={'TCPCP_RESURRECT': '1', 'TCPCP_TAKEOVER': move_to_dest(topo)})
    assert 'TCPCP_TAKEOVER done' in r.log, r.log[-3000:]
    assert 'brought up to their peers' in r.log, r.log[-3000:]
    assert re.search(r'the first \d+ byte\(s\) the task writes are dropped', r.log), \
        r.log[-3000:]
    a = peer.expect(timeout=90)
    server.wait(60)
    b = json.loads(server.out.read_text().strip().splitlines()[-1])
    assert (a['tx'], a['rx']) == (up, nbytes)
    assert_hashes_match(a, b)
    pkts = connection(cap.stop(), (ipx, CRIU_PORT))
    assert_no_rst(pkts)
    assert tsval_never_backwards(pkts, (ipx, CRIU_PORT)), 'TSval from ipX went back'
    # The resurrected clock ticks in milliseconds, as the original did.
    hz = tsval_hz(pkts, (ipx, CRIU_PORT), after=t_restore)
    assert hz is not None and 500 < hz < 2000, hz
    link_back()


@pytest.mark.skipif(asan_build(), reason='an ASan plugin cannot load into criu')
def test_criu_resurrect_gives_up_without_answer(topo, tmp_path):
    """The peer went away with the primary: the restore's probe gets no
    answer, and after its 3 s the connection is given up with one line
    naming it; the restore itself succeeds, and the restored process
    finds its connection closed (and says so) instead of hanging."""
    ipx = topo.ipx(4)
    criu = Criu(topo, tmp_path)
    server = Task(topo, 'origin', [build.traffic(), '--listen', hostport(ipx, CRIU_PORT),
                                   '--tx-bytes', 6 * MB, '--rx-bytes', 1, '--tx-seed', 11,
                                   '--rx-seed', 22, '--rate', '1M'], tmp_path, 'server')
    cli.wait_listening(topo, 'origin', CRIU_PORT)
    ready = tmp_path / 'peer.ready'
    peer = Traffic(topo, 'peer', '--connect', hostport(ipx, CRIU_PORT), '--tx-bytes', 1,
                   '--write-stall', '0:9000', '--rx-bytes', 6 * MB, '--tx-seed', 22,
                   '--rx-seed', 11, '--ready', ready)
    wait_for(ready.exists, 10, 'the peer connected')
    time.sleep(0.3)
    criu.dump('origin', server.pid, tmp_path / 'img', extra=('--leave-running',))
    link_back = primary_dies(topo, server, peer_port(topo, CRIU_PORT))
    server.restored()
    peer.proc.kill()
    peer.wait(10)
    # What its kernel kept of the connection (FIN_WAIT1 towards the dead
    # primary) goes too: the peer has no such connection any more.
    topo.run('peer', 'ss', '-K', 'dport', '=', f':{CRIU_PORT}', check=False)
    t0 = time.monotonic()
    r = criu.restore('dest', tmp_path / 'img',
                     env={'TCPCP_RESURRECT': '1', 'TCPCP_TAKEOVER': move_to_dest(topo)})
    took = time.monotonic() - t0
    gave_up = [l for l in r.log.splitlines() if 'given up' in l]
    assert len(gave_up) == 1 and f'{ipx}:{CRIU_PORT}' in gave_up[0] and \
        'did not answer in 3000 ms' in gave_up[0], r.log[-3000:]
    assert 3 <= took < 15, took
    server.wait(30)
    err = server.err.read_text()
    assert 'tcpcp-traffic' in err and ('reset' in err or 'EOF' in err or 'closed' in err), err
    link_back()
