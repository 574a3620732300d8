#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Fail-over on a stock kernel, in the test topology (needs root).

  first byte  one download (tcpcp-traffic, 1 MB/s) checkpointed, the
              primary dead a second later; from the standby's first step
              (`tcpcp gate close` of the checkpoint) to the first byte from
              the resurrected connection that the peer acknowledged (its
              capture; one kernel, one clock): takeover, `tcpcp probe
              --resurrect`, `tcpcp create --activate`.
  standby     the same with no hand in it: curl downloads from
              tcpcp-fileserver --standby, which checkpoints every 10 ms and
              beats every 100 ms to `tcpcp standby --timeout 300`; the
              primary dies (links cut, processes killed) and the standby
              takes over by itself.  From the death, and from the end of
              the timeout (the earliest the standby can know), to the first
              byte from the standby that the peer acknowledged.
  upload      curl uploads 8 MB (PUT) over a 32 mbit path to tcpcp-fileserver,
              plain, and with --standby: checkpoints every 10 ms (or as
              soon as the standby's host has the last one) and the
              acknowledgment clamp; what the clamp costs the peer.
  probe       N connections (test/zdtm tcp_many, idle) checkpointed and the
              primary dead: the standby's `tcpcp gate close` and `tcpcp
              probe --resurrect` for all N, as whole commands.  Peers answer
              in parallel, so the probe's time should not grow with N.
  criu        a whole process with N connections (test/zdtm tcp_stream,
              streaming both ways, 4 MB/s in all each way) dumped by CRIU
              with --leave-running and TCPCP_CLAMP=1; half a second later
              the primary dies, and `criu restore` of that dump with
              TCPCP_RESURRECT=1 runs at the standby: the restore's time,
              the plugin's steps (probe and resurrect all, rebuild, open,
              start), and from the restore's start to the first segment
              of each connection at the peer (p50 and the last, on a
              sample of about 100 at large N).  Both ends must PASS.

    sudo TCPCP_BUILD=$PWD/build bench/failover.py [--runs 5] [--conns 1,10,100,1000]
        [--only first,standby,upload,probe,criu]
"""
import argparse
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / 'test'))

from lib import cli, netns  # noqa: E402
from lib.capture import ACK, Capture, seq_before  # noqa: E402
from lib.criu import Criu, ZdtmPair  # noqa: E402
import criu_scaling  # noqa: E402
from lib.failover import (fileserver, move_to_dest, peer_port, primary_dies,  # noqa: E402
                          resume_cmd, standby)
from lib.passd import make_key  # noqa: E402
from lib.stream import Stream  # noqa: E402
from lib.traffic import Traffic  # noqa: E402

MB = 1 << 20


def first_acked_byte(pkts, ipx, port, after):
    """Arrival of the first data segment from ipX:port after `after` that
    the peer acknowledged, or None."""
    seg = next((p for p in pkts if p.src == ipx and p.sport == port and p.length
                and p.ts > after), None)
    if seg is None:
        return None
    end = (seg.seq + seg.length) & 0xffffffff
    ok = any(p.dst == ipx and p.dport == port and p.flags & ACK and p.ts >= seg.ts
             and not seq_before(p.ack, end) for p in pkts)
    return seg.ts if ok else None


def one_failover(tmp):
    topo = netns.Topology()
    try:
        s = Stream(topo, tmp, 4, 64 * MB, rate='1M', peer_bytes=1024,
                   peer_args=('--write-stall', '0:60000'))
        time.sleep(1)
        ckpt = s.take()
        state = tmp / 'ckpt.state'
        shutil.copy(s.state, state)
        cli.release(topo, 'origin', s.server.pid, s.fd)
        time.sleep(1)
        s.take()                        # the primary dies
        out = tmp / 'res'
        out.mkdir()
        t0 = time.time()
        cli.tcpcp(topo, 'dest', 'gate', 'close', ckpt)
        topo.switch_to('dest')
        t1 = time.time()
        r = cli.tcpcp(topo, 'dest', 'probe', '--resurrect', out, ckpt)
        t2 = time.time()
        skip = __import__('json').loads(r.stdout)['skip']
        new = Traffic(topo, 'dest', '--fd', 3, '--state', state, '--tx-skip', skip,
                      '--rate', '1M', prefix=cli.create_prefix(out / ckpt.name, '--activate'))
        new.started()
        time.sleep(1)
        pkts = s.cap.stop()
        t = first_acked_byte(pkts, s.ipx, s.port, t0)
        return {'takeover': t1 - t0, 'probe': t2 - t1,
                'first_byte': (t - t0) if t else None}
    finally:
        topo.cleanup()


TIMEOUT_MS = 300


def standby_failover(tmp):
    topo = netns.Topology()
    try:
        root = tmp / 'root'
        root.mkdir()
        (root / 'f.bin').write_bytes(b'\x5a' * (16 * MB))
        key = make_key(tmp / 'key')
        ipx = topo.ipx(4)
        ctl = f'{topo.addr("dest", 4)}:7300'
        topo.sysctl('origin', 'net.ipv4.tcp_orphan_retries', 1)
        topo.run('router', 'tc', 'qdisc', 'add', 'dev', 'to-peer', 'root', 'tbf',
                 'rate', '32mbit', 'burst', '64kb', 'latency', '100ms')
        standby(topo, tmp / 'standby.log', ctl, key, *resume_cmd(root), timeout_ms=TIMEOUT_MS)
        server = fileserver(topo, 'origin', tmp / 'primary.log', '--root', root, '--key', key,
                            '--listen', f'{ipx}:8000', '--standby', ctl)
        cap = Capture(topo, 'peer', tmp / 'peer.pcap').start()
        curl = topo.popen('peer', 'curl', '-sS', '-o', '/dev/null', f'http://{ipx}:8000/f.bin')
        time.sleep(1)
        port = peer_port(topo, 8000)
        t0 = time.time()
        primary_dies(topo, server, port)
        curl.wait(timeout=60)
        pkts = cap.stop()
        # The primary's own last segments drain from the path's 100 ms
        # queue before the standby can know: look past the timeout.
        t = first_acked_byte(pkts, ipx, 8000, t0 + TIMEOUT_MS / 1000)
        return {'death': (t - t0) if t else None,
                'detect': (t - t0 - TIMEOUT_MS / 1000) if t else None}
    finally:
        topo.cleanup()


def upload(tmp, clamp):
    topo = netns.Topology()
    try:
        root = tmp / 'root'
        root.mkdir()
        src = tmp / 'src.bin'
        src.write_bytes(b'\xa5' * (8 * MB))
        key = make_key(tmp / 'key')
        ipx = topo.ipx(4)
        ctl = f'{topo.addr("dest", 4)}:7300'
        for dev in ('to-origin', 'to-dest'):
            topo.run('router', 'tc', 'qdisc', 'add', 'dev', dev, 'root', 'tbf',
                     'rate', '32mbit', 'burst', '64kb', 'latency', '100ms')
        args = ()
        if clamp:
            standby(topo, tmp / 'standby.log', ctl, key, 'true', timeout_ms=5000,
                    takeover='true')
            args = ('--standby', ctl)
        fileserver(topo, 'origin', tmp / 'primary.log', '--root', root, '--key', key,
                   '--listen', f'{ipx}:8000', *args)
        t0 = time.time()
        topo.run('peer', 'curl', '-sS', '--fail', '-H', 'Expect:', '-T', src, '-o', '/dev/null',
                 f'http://{ipx}:8000/up.bin', timeout=300)
        return time.time() - t0
    finally:
        topo.cleanup()


def probe_scaling(n, tmp):
    topo = netns.Topology()
    try:
        # tcp_many takes --conns 1 for its default (1000): 2, one probed.
        pair = ZdtmPair(topo, tmp, 'tcp_many', ['--conns', max(n, 2), '--bytes', '4K',
                                                '--hold'], 5001)
        fds = cli.socket_fds(pair.server.pid)
        conns = [s for s in cli.connected(topo, 'origin') if s['inode'] in fds]
        imgs = []
        for i, c in enumerate(conns[:n]):
            img = tmp / f'c{i}.img'
            cli.get(topo, 'origin', pair.server.pid, fds[c['inode']], img)
            imgs.append(img)
        out = tmp / 'res'
        out.mkdir()
        t0 = time.time()
        cli.tcpcp(topo, 'dest', 'gate', 'close', *imgs)
        t1 = time.time()
        topo.switch_to('dest')
        t4 = time.time()
        r = cli.tcpcp(topo, 'dest', 'probe', '--resurrect', out, *imgs, timeout=300)
        t5 = time.time()
        answered = r.stdout.count('"answered": true')
        time.sleep(0.6)                 # past the peers' rate limit
        t2 = time.time()
        cli.tcpcp(topo, 'dest', 'probe', *imgs, timeout=300)
        t3 = time.time()
        return {'conns': len(imgs), 'gate_close': t1 - t0, 'probe': t3 - t2,
                'resurrect': t5 - t4, 'answered': answered}
    finally:
        topo.cleanup()


CRIU_RATE = 4 << 20      # bytes/s each way, all connections together


def plugin_ms(log, pattern):
    m = re.search(pattern, log)
    return [float(x) for x in m.groups()] if m else None


def criu_failover(n, tmp):
    """One whole-process fail-over with N connections (see the top)."""
    topo = netns.Topology()
    port = criu_scaling.PORT
    try:
        mask = criu_scaling.sample_mask(n)
        cap = Capture(topo, 'peer', tmp / 'peer.pcap',
                      expr=criu_scaling.capture_filter(mask)).start()
        per_conn = max(64, int(CRIU_RATE * 4 / n))
        pair = ZdtmPair(topo, tmp, 'tcp_stream',
                        ['--conns', n, '--bytes', per_conn, '--rate', CRIU_RATE,
                         '--timeout', 600 + n // 10], port, ready_timeout=60 + n // 50)
        time.sleep(1.0)
        criu = Criu(topo, tmp)
        criu.dump('origin', pair.server.pid, tmp / 'img', extra=('--leave-running',),
                  env={'TCPCP_CLAMP': '1'}, timeout=120 + n // 20)
        time.sleep(0.5)
        primary_dies(topo, pair.server, port, side='sport')
        pair.server.restored()
        t0 = time.time()
        r = criu.restore('dest', tmp / 'img',
                         env={'TCPCP_RESURRECT': '1', 'TCPCP_TAKEOVER': move_to_dest(topo)},
                         timeout=120 + n // 20)
        t1 = time.time()
        peer, server = pair.finish(timeout=120 + n // 10)
        pkts = cap.stop()
        ipx = {topo.ipx(4), topo.ipx(6)}
        first, data = {}, {}
        for p in pkts:
            # Not the probe (one byte, window 0, no options), which is
            # not the connection.
            probe = p.length == 1 and p.win == 0 and not p.opts
            if (p.src in ipx and p.sport == port and p.ts > t0 and not p.dport & mask
                    and not probe):
                first.setdefault((p.src, p.dport), p.ts - t0)
                if p.length:
                    data.setdefault((p.src, p.dport), p.ts - t0)
        delays = sorted(first.values())
        ddelays = sorted(data.values())
        res = plugin_ms(r.log, r'brought up to their peers in ([\d.]+) ms')
        steps = plugin_ms(r.log, r'rebuilt in ([\d.]+) ms, unlocked in ([\d.]+) ms, '
                                 r'started in ([\d.]+) ms')
        return {'n': n, 'restore': t1 - t0, 'resurrect': res and res[0],
                'rebuild': steps and steps[0], 'start': steps and steps[1] + steps[2],
                'p50': delays[len(delays) // 2] if delays else None,
                'last': delays[-1] if delays else None, 'sampled': len(delays),
                'data_p50': ddelays[len(ddelays) // 2] if ddelays else None,
                'data_last': ddelays[-1] if ddelays else None,
                'skips': len(re.findall(r'the task writes are dropped', r.log)),
                'ok': peer == 'PASS' and server == 'PASS',
                'why': '' if peer == server == 'PASS' else f'peer: {peer}; server: {server}'}
    finally:
        topo.cleanup()


def print_criu(rows):
    print('a whole process with N connections: speculative dump (TCPCP_CLAMP=1), death, '
          '`criu restore` with TCPCP_RESURRECT=1 (one run each)')
    print(f'{"N":>6} {"restore ms":>11} {"probe+res ms":>13} {"rebuild ms":>11} '
          f'{"open+start ms":>14} {"1st seg p50/last ms":>20} {"1st data p50/last ms":>21} '
          f'{"sampled":>8} {"skipping":>9} {"ok":>4}')
    for r in rows:
        f = (lambda v: '-' if v is None else f'{v:.1f}')
        ms = (lambda v: '-' if v is None else f'{v * 1000:.1f}')
        print(f'{r["n"]:>6} {ms(r["restore"]):>11} {f(r["resurrect"]):>13} '
              f'{f(r["rebuild"]):>11} {f(r["start"]):>14} '
              f'{ms(r["p50"]) + "/" + ms(r["last"]):>20} '
              f'{ms(r["data_p50"]) + "/" + ms(r["data_last"]):>21} '
              f'{r["sampled"]:>8} {r["skips"]:>9} '
              f'{"yes" if r["ok"] else "NO":>4}' + ('' if r['ok'] else f'  {r["why"]}'))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--runs', type=int, default=5)
    ap.add_argument('--conns', default='1,10,100,1000')
    ap.add_argument('--only', default=','.join(SECTIONS),
                    help='comma-separated sections: ' + ', '.join(SECTIONS))
    a = ap.parse_args()
    only = a.only.split(',')
    if set(only) - set(SECTIONS):
        sys.exit(f'--only: unknown section in {a.only!r}')
    with tempfile.TemporaryDirectory(prefix='tcpcp-bench-fo-') as d:
        for name in only:
            SECTIONS[name](a, d)
            print(flush=True)


def runs_table(a, d, prefix, one, title, steps):
    """`a.runs` runs of one(tmp dir), then each step's median [min-max] in ms."""
    rows = []
    for i in range(a.runs):
        t = Path(d) / f'{prefix}{i}'
        t.mkdir()
        rows.append(one(t))
    print(title)
    print(f'{"step":<48} {"median":>8} {"min":>8} {"max":>8}')
    for k, name in steps:
        xs = [r[k] * 1000 for r in rows if r[k] is not None]
        if xs:
            print(f'{name:<48} {statistics.median(xs):8.1f} {min(xs):8.1f} {max(xs):8.1f}')


def section_first(a, d):
    runs_table(a, d, 'fo', one_failover,
               'fail-over of one download, standby steps as whole commands '
               f'({a.runs} runs, median [min-max], ms)',
               (('takeover', 'gate close + route to the standby'),
                ('probe', 'tcpcp probe --resurrect (1 connection)'),
                ('first_byte', 'takeover start -> first byte acked by the peer')))


def section_standby(a, d):
    runs_table(a, d, 'sb', standby_failover,
               f'tcpcp standby, one download, --timeout {TIMEOUT_MS} ms ({a.runs} runs, ms)',
               (('death', 'primary death -> first byte acked by the peer'),
                ('detect', '  of which after the timeout ran out')))


def section_upload(a, d):
    times = {False: [], True: []}
    for i in range(a.runs):
        for clamp in (False, True):
            t = Path(d) / f'up{i}{int(clamp)}'
            t.mkdir()
            times[clamp].append(upload(t, clamp))
    print(f'upload of 8 MB over 32 mbit ({a.runs} runs, s; MB/s of the median)')
    print(f'{"mode":<48} {"median":>8} {"min":>8} {"max":>8} {"MB/s":>8}')
    for clamp, name in ((False, 'plain'), (True, 'checkpointed + clamped, --standby')):
        xs = times[clamp]
        print(f'{name:<48} {statistics.median(xs):8.2f} {min(xs):8.2f} {max(xs):8.2f} '
              f'{8 / statistics.median(xs):8.2f}')


def section_probe(a, d):
    print('the standby\'s steps for N checkpointed connections (one run each, ms)')
    print(f'{"N":>6} {"gate close":>12} {"probe":>10} {"per conn":>10} '
          f'{"probe --resurrect":>18} {"per conn":>10} {"answered":>9}')
    for n in (int(x) for x in a.conns.split(',')):
        t = Path(d) / f'n{n}'
        t.mkdir()
        r = probe_scaling(n, t)
        print(f'{r["conns"]:>6} {r["gate_close"] * 1000:12.1f} {r["probe"] * 1000:10.1f} '
              f'{r["probe"] * 1000 / r["conns"]:10.2f} {r["resurrect"] * 1000:18.1f} '
              f'{r["resurrect"] * 1000 / r["conns"]:10.2f} {r["answered"]:>9}')


def section_criu(a, d):
    rows = []
    for n in (int(x) for x in a.conns.split(',')):
        t = Path(d) / f'criu{n}'
        t.mkdir()
        rows.append(criu_failover(n, t))
    print_criu(rows)


SECTIONS = {'first': section_first, 'standby': section_standby, 'upload': section_upload,
            'probe': section_probe, 'criu': section_criu}

if __name__ == '__main__':
    main()
