# SPDX-License-Identifier: GPL-2.0-or-later
"""criu dump / criu restore of a serving process with tcpcp.so.

The process under test is tcpcp-traffic serving ipX:PORT at origin; the
peer streams both ways and verifies every byte.  criu runs inside the
serving host's network namespace (nsenter --net: `ip netns exec` would
give it a private mount namespace, which criu refuses to dump from), so
its nftables network lock lives in the test namespace too.
"""
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from lib import build, cli
from lib.capture import Capture, assert_no_rst
from lib.netns import hostport
from lib.traffic import Traffic, assert_hashes_match, wait_file, wait_for

CRIU = Path(os.environ.get('TCPCP_CRIU', '/opt/tcpcp-criu/sbin/criu'))
REPO = Path(__file__).resolve().parents[1]
PORT = 5001
MB = 1 << 20
SEED_PEER, SEED_SERVER = 22, 11

PLUGIN_DIR = build.build_dir() / 'criu-plugin'

# Checked before the topology fixture builds namespaces for nothing.
pytestmark = [
    pytest.mark.skipif(not CRIU.exists(),
                       reason=f'{CRIU} missing: run scripts/criu/install-criu.sh'),
    pytest.mark.skipif(not (PLUGIN_DIR / 'tcpcp.so').exists(),
                       reason=f'{PLUGIN_DIR}/tcpcp.so not built (make builds it only where '
                              'criu-plugin.h is, and never in sanitizer builds)'),
]


def plugin_dir():
    return PLUGIN_DIR


def nsenter(topo, host, *argv):
    return ['nsenter', f'--net=/run/netns/{topo.ns[host]}', *map(str, argv)]


class Served:
    """tcpcp-traffic serving ipX:PORT at host, detached from us as criu
    wants it: its own session, no terminal, output to files."""

    def __init__(self, topo, tmp, host, *argv):
        self.tmp = tmp
        self.out, self.err = tmp / 'server.out', tmp / 'server.err'
        argv = nsenter(topo, host, *argv)
        with open(self.out, 'w') as o, open(self.err, 'w') as e:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=o, stderr=e,
                                         start_new_session=True, env=build.env())
        topo.procs.append(self.proc)
        self.pid = self.proc.pid

    def alive(self):
        try:
            with open(f'/proc/{self.pid}/stat') as f:
                return f.read().split(') ')[1][0] not in 'ZX'
        except OSError:
            return False

    def results(self, timeout=60):
        """The JSON lines of the (possibly restored, not our child) process."""
        wait_for(lambda: not self.alive(), timeout, f'server pid {self.pid} to end', 0.1)
        self.proc.poll()
        lines = self.out.read_text().strip().splitlines()
        assert lines, f'server printed nothing; stderr: {self.err.read_text()}'
        return [json.loads(ln) for ln in lines]

    def result(self, timeout=60):
        return self.results(timeout)[-1]


def criu_env():
    """criu stops a task leaving its parasite with a hardware breakpoint;
    in VMs that do not deliver them the dump hangs until the task makes
    a syscall on its own.  Fault 130 (FI_NO_BREAKPOINTS) makes criu step
    through syscalls instead, which works everywhere."""
    e = dict(os.environ)
    e.setdefault('CRIU_FAULT', '130')
    return e


def criu(topo, host, *args, check=True, timeout=60):
    r = subprocess.run(nsenter(topo, host, CRIU, *args), capture_output=True, text=True,
                       timeout=timeout, env=criu_env())
    if check and r.returncode:
        raise AssertionError(f'criu {args[0]} at {host}: exit {r.returncode}: {r.stderr.strip()}')
    return r


def dump(topo, host, pid, imgdir, check=True):
    imgdir.mkdir(exist_ok=True)
    return criu(topo, host, 'dump', '-t', pid, '-D', imgdir, '-o', 'dump.log', '-v4',
                '--tcp-established', '--network-lock', 'nftables',
                '-L', plugin_dir(), '--action-script', REPO / 'plugin' / 'criu-action.sh',
                check=check)


def restore(topo, host, imgdir, check=True):
    return criu(topo, host, 'restore', '-d', '-D', imgdir, '-o', 'restore.log', '-v4',
                '--tcp-close', '--network-lock', 'nftables', '-L', plugin_dir(),
                check=check)


def listening(topo, host, port):
    wait_for(lambda: 'LISTEN' in topo.run(host, 'ss', '-Htln', f'sport = :{port}').stdout,
             10, f'a listener on port {port} at {host}')


def start(topo, tmp, family, nbytes=4 * MB):
    cap = Capture(topo, 'peer', tmp / 'peer.pcap').start()
    server = Served(topo, tmp, 'origin', build.traffic(),
                    '--listen', hostport(topo.ipx(family), PORT), '--bytes', nbytes,
                    '--tx-seed', SEED_SERVER, '--rx-seed', SEED_PEER, '--rate', '1M')
    listening(topo, 'origin', PORT)
    ready = tmp / 'peer.ready'
    peer = Traffic(topo, 'peer', '--connect', hostport(topo.ipx(family), PORT),
                   '--bytes', nbytes, '--tx-seed', SEED_PEER, '--rx-seed', SEED_SERVER,
                   '--rate', '1M', '--ready', ready)
    wait_file(ready)
    time.sleep(1)
    return cap, server, peer


def silence(pkts, src, sport):
    """The longest time the serving end sent nothing: how long the
    connection was frozen, as the peer sees it."""
    ts = sorted(p.ts for p in pkts if p.src == src and p.sport == sport)
    return max(b - a for a, b in zip(ts, ts[1:]))


def checkpoint(topo, server, imgdir, n=1):
    t0 = time.monotonic()
    dump(topo, 'origin', server.pid, imgdir)
    server.proc.wait(timeout=10)        # reap: restore needs the pid free
    imgs = sorted(p.name for p in imgdir.glob('tcpcp-*.img'))
    assert len(imgs) == n, (imgs, (imgdir / 'dump.log').read_text()[-2000:])
    return t0


@pytest.mark.parametrize('family', [4, 6])
@pytest.mark.parametrize('where', ['same', 'dest'])
def test_dump_restore(topo, tmp_path, family, where):
    """The stream survives a checkpoint and a restore, in place or on
    dest after the service address moved there: both ends' hashes agree
    and the peer never sees a RST."""
    plugin_dir()
    cap, server, peer = start(topo, tmp_path, family)
    imgdir = tmp_path / 'img'
    t0 = checkpoint(topo, server, imgdir)
    host = 'origin' if where == 'same' else 'dest'
    restore(topo, host, imgdir)
    if where == 'dest':
        # Only now: before the restore, dest had no socket for the peer's
        # retransmissions and would have answered them with a RST.
        topo.switch_to('dest')
    frozen = time.monotonic() - t0
    assert server.alive(), (imgdir / 'restore.log').read_text()[-2000:]
    a = peer.expect()
    b = server.result()
    assert b.get('ok'), b
    assert_hashes_match(a, b)
    pkts = cap.stop()
    assert_no_rst(pkts)
    print(f'[{where}-v{family}] dump..restore {frozen:.3f} s, '
          f'server silent {silence(pkts, topo.ipx(family), PORT):.3f} s')


def test_corrupt_image(topo, tmp_path):
    """A damaged image: restore fails with one line naming the connection
    and the cause, the process does not run on, the images stay as they
    were."""
    plugin_dir()
    cap, server, peer = start(topo, tmp_path, 4)
    imgdir = tmp_path / 'img'
    checkpoint(topo, server, imgdir)
    img = next(imgdir.glob('tcpcp-*.img'))
    img.write_bytes(img.read_bytes()[:-7])
    before = {p.name: p.read_bytes() for p in imgdir.iterdir() if p.suffix == '.img'}
    r = restore(topo, 'origin', imgdir, check=False)
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith('tcpcp:')]
    assert len(lines) == 1 and img.name in lines[0] and 'truncated' in lines[0], r.stderr
    wait_for(lambda: not server.alive(), 10, 'the restored task to be killed')
    after = {p.name: p.read_bytes() for p in imgdir.iterdir() if p.suffix == '.img'}
    assert before == after
    peer.proc.kill()
    cap.stop()


@pytest.mark.parametrize('where', ['same', 'dest'])
def test_multi(topo, tmp_path, where):
    """zdtm-style: one process with four connections -- accepted and
    connected, IPv4 and IPv6, listeners open beside them -- and data
    queued both ways at the checkpoint.  After the restore every stream
    ends intact at both ends and the peer sees no RST."""
    plugin_dir()
    nbytes = 2 * MB
    # A peer that buffers little: with it not reading, most of what we
    # send before the checkpoint stays in our send queues.
    topo.sysctl('peer', 'net.ipv4.tcp_rmem', '4096 65536 65536')
    cap = Capture(topo, 'peer', tmp_path / 'peer.pcap').start()
    conns = [('accept', 4), ('accept', 6), ('connect', 4), ('connect', 6)]
    specs, peers = [], {}

    def seeds(i):
        # The peer stops reading for a while: our sends queue up here.
        return ('--tx-seed', 200 + i, '--rx-seed', 100 + i, '--bytes', nbytes, '--rate', '1M',
                '--read-stall', '64K:3000')
    # Every side listens before the other connects: no setup RST.
    for i, (kind, fam) in enumerate(conns):
        if kind == 'accept':
            specs.append(f'accept,{topo.ipx(fam)},{PORT + i}')
        else:
            specs.append(f'connect,{topo.ipx(fam)},{topo.addr("peer", fam)},{PORT + i}')
            peers[i] = Traffic(topo, 'peer', '--listen',
                               hostport(topo.addr('peer', fam), PORT + i), *seeds(i))
            listening(topo, 'peer', PORT + i)
    ready = tmp_path / 'ready'
    prog = Served(topo, tmp_path, 'origin', build.build_dir() / 'zdtm' / 'tcp_multi',
                  '--bytes', nbytes, '--ready', ready, *specs)
    for i, (kind, fam) in enumerate(conns):
        if kind == 'accept':
            listening(topo, 'origin', PORT + i)
            peers[i] = Traffic(topo, 'peer', '--connect', hostport(topo.ipx(fam), PORT + i),
                               *seeds(i))
    peers = [peers[i] for i in range(len(conns))]
    wait_file(ready, 20)
    time.sleep(0.5)
    imgdir = tmp_path / 'img'
    checkpoint(topo, prog, imgdir, n=4)
    queues = [(ici['sendq_len'], ici['recvq_len'])
              for ici in map(cli.show, sorted(imgdir.glob('tcpcp-*.img')))]
    assert all(s > 0 and r > 0 for s, r in queues), queues
    host = 'origin' if where == 'same' else 'dest'
    restore(topo, host, imgdir)
    if where == 'dest':
        topo.switch_to('dest')
    os.kill(prog.pid, signal.SIGUSR1)
    mine = prog.results()
    assert len(mine) == 4, (mine, prog.err.read_text())
    for m, p in zip(mine, peers):
        assert_hashes_match(m, p.expect())
    assert_no_rst(cap.stop())


def test_dump_failure(topo, tmp_path):
    """The plugin cannot write an image (a directory is in the way).  The
    dump says so in one line and leaves tcpcp-failed.  Where criu runs the
    plugin's exit hook before the post-dump action script, the script
    fails the dump and criu rolls back: the stream goes on intact.  criu
    4.1.1 runs the script first and kills the process anyway; then the
    restore must refuse, naming the cause, rather than hand the process a
    dead socket."""
    plugin_dir()
    cap, server, peer = start(topo, tmp_path, 4)
    fd = next(int(f) for f in os.listdir(f'/proc/{server.pid}/fd')
              if os.readlink(f'/proc/{server.pid}/fd/{f}').startswith('socket:')
              and int(f) > 3)
    imgdir = tmp_path / 'img'
    imgdir.mkdir()
    name = f'tcpcp-{server.pid}-{fd}.img'
    (imgdir / name).mkdir()
    r = dump(topo, 'origin', server.pid, imgdir, check=False)
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith('tcpcp:')]
    assert len(lines) == 1 and name in lines[0] and 'Is a directory' in lines[0], r.stderr
    assert name in (imgdir / 'tcpcp-failed').read_text()
    if r.returncode:
        assert server.alive()
        a = peer.expect()
        b = server.result()
        assert b.get('ok'), b
        assert_hashes_match(a, b)
        assert_no_rst(cap.stop())
        return
    server.proc.wait(timeout=10)
    r = restore(topo, 'origin', imgdir, check=False)
    assert r.returncode
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith('tcpcp:')]
    assert len(lines) == 1 and 'refusing' in lines[0] and name in lines[0], r.stderr
    assert not server.alive()
    peer.proc.kill()
    cap.stop()


@pytest.mark.parametrize('tool', ['tcpcp', 'criu'])
def test_frozen_time(topo, tmp_path, tool):
    """The same checkpoint and restore in place, the connection carried
    by tcpcp.so (--tcp-close) or by criu itself (--tcp-established): both
    keep the stream intact; the printed silences compare them."""
    plugin_dir()
    cap, server, peer = start(topo, tmp_path, 4)
    imgdir = tmp_path / 'img'
    checkpoint(topo, server, imgdir)
    if tool == 'tcpcp':
        restore(topo, 'origin', imgdir)
    else:
        criu(topo, 'origin', 'restore', '-d', '-D', imgdir, '-o', 'restore.log', '-v4',
             '--tcp-established', '--network-lock', 'nftables')
    a = peer.expect()
    b = server.result()
    assert_hashes_match(a, b)
    pkts = cap.stop()
    assert_no_rst(pkts)
    print(f'[{tool}] server silent {silence(pkts, topo.ipx(4), PORT):.3f} s')


def test_restore_rewritten(topo, tmp_path):
    """`tcpcp rewrite` gives the connection dest's own address before the
    restore; the router translates (statelessly) between it and ipX, the
    only address the peer knows.  The stream ends intact, no RST."""
    plugin_dir()
    cap, server, peer = start(topo, tmp_path, 4)
    imgdir = tmp_path / 'img'
    checkpoint(topo, server, imgdir)
    img = next(imgdir.glob('tcpcp-*.img'))
    new = topo.addr('dest', 4)
    r = subprocess.run([build.tcpcp(), 'rewrite', img, '--local', new], capture_output=True,
                       text=True, env=build.env())
    assert r.returncode == 0, r.stderr
    assert cli.show(img)['local']['addr'] == new
    ipx = topo.ipx(4)
    # Replies from dest are translated from the start: the restore's
    # activation sends at once.  Towards dest only after the restore, as
    # with the route in test_dump_restore.
    topo.run('router', 'nft', '-f', '-', input=f"""
        table ip tcpcp_test_nat {{
            chain pre {{
                type filter hook prerouting priority raw; policy accept;
                ip saddr {new} tcp sport {PORT} notrack ip saddr set {ipx}
            }}
        }}""")
    restore(topo, 'dest', imgdir)
    topo.run('router', 'nft', 'add', 'rule', 'ip', 'tcpcp_test_nat', 'pre', 'ip', 'daddr', ipx,
             'tcp', 'dport', PORT, 'notrack', 'ip', 'daddr', 'set', new)
    a = peer.expect()
    b = server.result()
    assert b.get('ok'), b
    assert_hashes_match(a, b)
    assert_no_rst(cap.stop())
