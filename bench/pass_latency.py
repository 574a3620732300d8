#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Pass latency and rate, in the test topology (needs root).

Latency: from the origin isolating the connection (tcpcp_get) to the
first byte from the destination arriving at the peer, taken from the
peer's capture (same wall clock: one kernel) and counted only if the peer
acknowledged it.

  dispatcher  tcpcp-dispatcher passes each HTTP request (curl, one after
              another) to a tcpcp-worker; flow: steering at the gateway.
              The first byte from the destination is the response.
  stream      tcpcp-pass passes a continuous bidirectional stream
              (tcpcp-traffic, 1 MB/s each way) back and forth; route:
              switching.  This includes tcpcp-pass's process start and its
              wait for tcpcp-traffic's state file (50 ms poll tick).

    sudo TCPCP_BUILD=$PWD/build bench/pass_latency.py [-n 200] [--only dispatcher|stream]
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / 'test'))

from lib import netns  # noqa: E402
from lib.capture import ACK, Capture, seq_before  # noqa: E402
from lib.passd import binary, make_key  # noqa: E402
from lib.traffic import wait_for  # noqa: E402

IPX = netns.IPX[4]


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def first_dest_byte(pkts, server, peer, after):
    """Arrival time of the first data segment server -> peer after
    `after` that the peer acknowledged, or None."""
    seg = next((p for p in pkts if (p.src, p.sport) == server and (p.dst, p.dport) == peer
                and p.length and p.ts > after), None)
    if seg is None:
        return None
    end = (seg.seq + seg.length) & 0xffffffff
    acked = any((p.src, p.sport) == peer and p.flags & ACK and p.ts >= seg.ts
                and not seq_before(p.ack, end) for p in pkts)
    return seg.ts if acked else None


def bench_dispatcher(n, tmp):
    topo = netns.Topology()
    try:
        root = tmp / 'root'
        root.mkdir()
        (root / 'f').write_bytes(os.urandom(64 * 1024))
        key = make_key(tmp / 'key')
        gw = topo.ns['router']
        for v in (4,):
            topo.run('router', 'ip', f'-{v}', 'rule', 'add', 'fwmark', 3, 'lookup', 3)
            topo.run('router', 'ip', f'-{v}', 'route', 'add', IPX, 'via',
                     topo.addr('dest', 4), 'table', 3)
        wlog, dlog = tmp / 'worker.log', tmp / 'dispatcher.log'
        ctl = f'{topo.addr("dest", 4)}:7001'
        topo.popen('dest', binary('tcpcp-worker'), '--ctl', ctl, '--key', key, '--name', 'w',
                   '--root', root, stderr=open(wlog, 'w'))
        wait_for(lambda: 'taking' in wlog.read_text(), 10, 'worker')
        env = dict(os.environ, TCPCP_DEMO_TIMES='1')
        env.update({k: v for k, v in __import__('lib.build', fromlist=['env']).env().items()
                    if k == 'LD_LIBRARY_PATH'})
        topo.popen('origin', binary('tcpcp-dispatcher'), '--listen', f'{IPX}:8080',
                   '--key', key, '--worker', f'{ctl}=flow:{gw}:3', '--switch-back',
                   f'flow:{gw}:0', stderr=open(dlog, 'w'), env=env)
        wait_for(lambda: 'listening' in dlog.read_text(), 10, 'dispatcher')
        cap = Capture(topo, 'peer', tmp / 'peer.pcap').start()
        t0 = time.time()
        topo.run('peer', 'sh', '-c', f'for i in $(seq {n}); do curl -sf -o /dev/null '
                 f'http://{IPX}:8080/f || exit 1; done', timeout=600)
        wall = time.time() - t0
        pkts = cap.stop()
        times = [(float(a), float(b)) for a, b, r in re.findall(
            r'isolated=([\d.]+) done=([\d.]+) result=(-?\d+)', dlog.read_text()) if r == '0']
        assert len(times) == n, f'{len(times)} of {n} passes succeeded'
        # Connections in order of their SYN; pass i belongs to connection i.
        syns = [p for p in pkts if p.dst == IPX and p.dport == 8080 and p.flags & 0x02
                and not p.flags & ACK]
        lat = []
        for (iso, _), syn in zip(times, syns):
            t = first_dest_byte(pkts, (IPX, 8080), (syn.src, syn.sport), iso)
            if t is not None:
                lat.append(t - iso)
        return {'passes': n, 'measured': len(lat), 'lat': lat,
                'origin': [b - a for a, b in times], 'rate': n / wall,
                'rate_note': 'requests/s, one pass each, curl started per request'}
    finally:
        topo.cleanup()


def bench_stream(n, tmp):
    import test_passd  # the Live helper of the tests
    topo = netns.Topology()
    try:
        live = test_passd.Live(topo, tmp, 4, 1 << 30, rate='1M')
        live.passd('dest')
        live.passd('origin')
        # The origin may still emit a segment while tcpcp_get closes the
        # gate: what the destination sends is told by the link it uses.
        links = {h: Capture(topo, 'router', tmp / f'{h}.pcap', ifname=f'to-{h}').start()
                 for h in ('origin', 'dest')}
        time.sleep(1)
        res, t0 = [], time.time()
        for i in range(n):
            host = 'dest' if i % 2 == 0 else 'origin'
            r, out = live.pass_to(host)
            assert out['result'] == 'passed', r.stderr
            res.append((host, out))
        wall = time.time() - t0
        pkts = live.s.cap.stop()
        sent = {h: c.stop() for h, c in links.items()}
        peer = next(p for p in pkts if p.dst == IPX and p.dport == 5001)
        lat = []
        for host, out in res:
            t = first_dest_byte(sent[host], (IPX, 5001), (peer.src, peer.sport),
                                out['isolated'])
            if t is None:
                continue
            seg = next(p for p in sent[host] if p.ts == t)
            at_peer = [p.ts for p in pkts if p.src == IPX and p.seq == seg.seq
                       and p.length == seg.length and p.ts >= t]
            if at_peer:
                lat.append(at_peer[0] - out['isolated'])
        res = [out for _, out in res]
        return {'passes': n, 'measured': len(lat), 'lat': lat,
                'origin': [o['done'] - o['isolated'] for o in res], 'rate': n / wall,
                'rate_note': 'passes/s, tcpcp-pass started per pass, stream under load'}
    finally:
        topo.cleanup()


def report(name, r):
    ms = [x * 1000 for x in r['lat']]
    om = [x * 1000 for x in r['origin']]
    print(f'| {name} | {r["passes"]} ({r["measured"]} measured) | {pct(ms, 50):.1f} | '
          f'{pct(ms, 99):.1f} | {pct(om, 50):.1f} | {pct(om, 99):.1f} | '
          f'{r["rate"]:.1f} {r["rate_note"]} |')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('-n', type=int, default=200)
    ap.add_argument('--only', choices=['dispatcher', 'stream'])
    a = ap.parse_args()
    if os.geteuid():
        sys.exit('pass_latency.py: needs root (network namespaces)')
    subprocess.run(['uname', '-r'])
    print('| scenario | passes | isolate→first dest byte at peer p50 ms | p99 ms | '
          'isolate→pass done at origin p50 ms | p99 ms | rate |')
    print('| --- | --- | --- | --- | --- | --- | --- |')
    for name, fn in (('dispatcher', bench_dispatcher), ('stream', bench_stream)):
        if a.only and a.only != name:
            continue
        with tempfile.TemporaryDirectory() as d:
            report(name, fn(a.n, Path(d)))


if __name__ == '__main__':
    main()
