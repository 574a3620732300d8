#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Throughput recovery after a pass, on a rate-limited path.

The router shapes the way to the peer with tbf; the serving end streams
to the peer as fast as that allows.  After a steady state the connection
is passed (bench/cli_pass_latency.py's flow).  From the peer's capture:
bytes it acknowledged in the second before the freeze, in the first
100 ms and 1 s after the destination's first segment reached it, and in
the sixth second after it (the steady state: buffers locked or not).
Each run passes once with a fresh congestion state at the destination
and once carrying the origin's window over (`--congestion carry`, allowed
by a tcpcp.conf of the run's own), side by side.

    sudo bench/throughput_recovery.py [--runs N] [--rate 20mbit] [--png F] [--csv F]
"""
import argparse
import csv
import statistics
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / 'test'))
sys.path.insert(0, str(HERE))

from cli_pass_latency import Connection  # noqa: E402
from lib import build, netns  # noqa: E402
from lib.capture import seq_before  # noqa: E402

MB = 1 << 20


def acked_series(pkts, ipx):
    """[(time, bytes acknowledged so far)] from the peer's ACKs."""
    out, first, top = [], None, None
    for p in pkts:
        if p.dst != ipx or not p.flags & 0x10:
            continue
        if first is None:
            first = p.ack
        if top is None or seq_before(top, p.ack):
            top = p.ack
        out.append((p.ts, (top - first) & 0xffffffff))
    return out


def acked_between(series, t0, t1):
    before = [b for t, b in series if t <= t0]
    upto = [b for t, b in series if t <= t1]
    return (upto[-1] if upto else 0) - (before[-1] if before else 0)


MODES = ('fresh', 'carry')


def dest_first(pkts, ipx, freeze, snd_una):
    """When the destination's first segment reached the peer: its window
    probe (seq snd_una - 1, no payload; what leaving repair mode sends).
    Segments from ipX right after the freeze may still be the origin's,
    in flight or queued at the router (measured from those, a slow pass
    looked like a stall)."""
    probe = (snd_una - 1) % (1 << 32)
    return next((p.ts for p in pkts if p.ts > freeze and p.src == ipx and p.seq == probe and
                 not p.length),
                next(p.ts for p in pkts if p.ts > freeze and p.src == ipx))


def one_run(rate, mode):
    topo = netns.Topology()
    try:
        with TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            conf = tmp / 'tcpcp.conf'
            conf.write_text('congestion-carry yes\n')
            topo.run('router', 'tc', 'qdisc', 'add', 'dev', 'to-peer', 'root', 'tbf',
                     'rate', rate, 'burst', '64kb', 'latency', '50ms')
            conn = Connection(topo, tmp, ('--bytes', '1G', '--rate', '1G'),
                              create=('env', f'TCPCP_CONFIG={conf}', '--',
                                      '--congestion', mode))
            time.sleep(3)
            ici, _ = conn.pass_once()
            time.sleep(6.5)
            pkts = conn.stop()
            ipx = topo.ipx(4)
            freeze = ici['capture_realtime_ns'] / 1e9
            first = dest_first(pkts, ipx, freeze, ici['snd_una'])
            series = acked_series(pkts, ipx)
            return {'before_1s': acked_between(series, freeze - 1, freeze),
                    'after_100ms': acked_between(series, first, first + 0.1),
                    'after_1s': acked_between(series, first, first + 1),
                    'steady_5s': acked_between(series, first + 5, first + 6),
                    'cwnd_at_origin': ici.get('congestion', {}).get('snd_cwnd'),
                    'series': [(t - first, b) for t, b in series if freeze - 2 < t < first + 2]}
    finally:
        topo.cleanup()


def plot(runs, path):
    runs = runs['carry'] + runs['fresh']
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, r in enumerate(runs):
        t = [x for x, _ in r['series']]
        b = [y / MB for _, y in r['series']]
        ax.plot(t, [y - b[0] for y in b], label=f'{r["mode"]} {i + 1}')
    ax.axvline(0, color='grey', linestyle=':')
    ax.set_xlabel('seconds from the first segment of the destination')
    ax.set_ylabel('MB acknowledged by the peer')
    ax.set_title('Throughput across a pass (tbf-shaped path)')
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--runs', type=int, default=3)
    ap.add_argument('--rate', default='20mbit')
    ap.add_argument('--png', type=Path)
    ap.add_argument('--csv', type=Path)
    a = ap.parse_args()
    build.make_traffic()
    runs = {m: [] for m in MODES}
    for _ in range(a.runs):        # interleaved: both modes see the same machine
        for m in MODES:
            runs[m].append(dict(one_run(a.rate, m), mode=m))
    med = lambda m, k: statistics.median(r[k] for r in runs[m])
    print(f'path {a.rate}, {a.runs} runs per mode, medians')
    print(f'{"window":<24}' + ''.join(f'{m + " MB/s":>13} {"vs before":>10}' for m in MODES))
    for key, secs, label in (('before_1s', 1.0, '1 s before the freeze'),
                             ('after_100ms', 0.1, 'first 100 ms after'),
                             ('after_1s', 1.0, 'first 1 s after'),
                             ('steady_5s', 1.0, '6th second after')):
        row = f'{label:<24}'
        for m in MODES:
            v, before = med(m, key), med(m, 'before_1s')
            row += f'{v / MB / secs:>13.2f} {100 * v / secs / before if before else 0:>9.0f}%'
        print(row)
    print(f'{"window at the freeze":<24}' +
          ''.join(f'{med(m, "cwnd_at_origin") or 0:>13.0f} {"segments":>10}' for m in MODES))
    if a.csv:
        with open(a.csv, 'w', newline='') as f:
            w = csv.writer(f)
            w.writerow(['mode', 'run', 'before_1s', 'after_100ms', 'after_1s', 'steady_5s',
                        'cwnd_at_origin'])
            for m in MODES:
                for i, r in enumerate(runs[m]):
                    w.writerow([m, i, r['before_1s'], r['after_100ms'], r['after_1s'],
                                r['steady_5s'], r['cwnd_at_origin']])
    if a.png:
        plot(runs, a.png)


if __name__ == '__main__':
    main()
