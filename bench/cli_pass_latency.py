#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Pass latency through the tcpcp CLI, as the peer sees it.

For each pass: `tcpcp get` at the serving host, `tcpcp create` at the
other one, the route moves at the router, `tcpcp activate`, `tcpcp close`
at the old host.  Measured from the ICI's capture time (the origin is
frozen from then on) to, in the peer's capture:
  first seg   the first segment from the destination reaching the peer;
  first data  the first new data byte from the destination that the peer
              acknowledges (streams only).
Each includes starting the CLI processes (about 5 exec's and netns entries
per pass); the library path without them is measured by passd's bench.

    sudo bench/cli_pass_latency.py [--passes N] [--scenario NAME] [--csv FILE]

Needs root and a build (TCPCP_BUILD, default ./build).
"""
import argparse
import csv
import statistics
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'test'))

from lib import build, cli, netns  # noqa: E402
from lib.capture import ACK, Capture, seq_before  # noqa: E402
from lib.netns import hostport  # noqa: E402
from lib.traffic import Traffic, wait_file, wait_for  # noqa: E402

PORT = 5001
MB = 1 << 20

# Socket buffer sysctls (tcp_rmem/tcp_wmem) for the queued scenarios.  A
# reader that stalls never lets autotuning grow its buffer, so the queue
# it can hold is the middle (default) value: 32 MB for '16 MB queued'.
BIG = '4096 4194304 33554432'
HUGE = '4096 33554432 67108864'

SCENARIOS = {
    # name: (tcpcp-traffic args for both ends, buffers, passes per topology)
    'idle': (('--bytes', '1K', '--rate', '1'), None, None),
    'streaming 1 MB/s': (('--bytes', '1G', '--rate', '1M'), None, None),
    # Neither end reads: what the peer sends at the rate for the 1.5 s
    # before the first pass waits in the origin's receive queue.
    '1 MB queued': (('--bytes', '64M', '--read-stall', '0:60000', '--rate', '700K'), BIG, 1),
    '16 MB queued': (('--bytes', '256M', '--read-stall', '0:60000', '--rate', '10500K'), HUGE, 1),
    'full queues': (('--bytes', '64M', '--read-stall', '0:60000'), BIG, 1),
}


def set_buffers(topo, sizes):
    for h in ('peer', 'origin', 'dest'):
        topo.sysctl(h, 'net.ipv4.tcp_rmem', sizes)
        topo.sysctl(h, 'net.ipv4.tcp_wmem', sizes)


class Connection:
    def __init__(self, topo, tmp, args, create=()):
        """create: what goes before `tcpcp create` (e.g. env VAR=...) and
        after its image, as ('env', 'X=1', '--', '--congestion', 'carry')
        would give `env X=1 tcpcp create IMG --congestion carry`."""
        self.topo, self.tmp, self.args = topo, tmp, args
        cut = list(create).index('--') if '--' in create else len(create)
        self.create_env, self.create_opts = list(create[:cut]), list(create[cut + 1:])
        ipx = topo.ipx(4)
        self.cap = Capture(topo, 'peer', tmp / 'peer.pcap').start()
        self.state = tmp / 'state.0'
        self.server = Traffic(topo, 'origin', '--listen', hostport(ipx, PORT), *args,
                              '--state-out', self.state)
        cli.wait_listening(topo, 'origin', PORT)
        self.peer = Traffic(topo, 'peer', '--connect', hostport(ipx, PORT), *args)
        self.host, self.n = 'origin', 0
        self.fd = cli.tcp_socket(topo, 'origin', self.server.pid)['fd']

    def pass_once(self):
        """One pass to the other host; returns the ICI as `tcpcp show` has
        it and the image's size."""
        other = 'dest' if self.host == 'origin' else 'origin'
        img = self.tmp / f'ici.{self.n}'
        cli.get(self.topo, self.host, self.server.pid, self.fd, img)
        wait_file(self.state)
        self.n += 1
        state_out = self.tmp / f'state.{self.n}'
        new = Traffic(self.topo, other, '--fd', 3, '--state', self.state,
                      '--state-out', state_out, *self.args[2:],
                      prefix=self.create_env + cli.create_prefix(img, *self.create_opts))
        new.started()
        self.topo.switch_to(other)
        cli.tcpcp(self.topo, other, 'activate', '--pid', new.pid, '--fd', 3, '--image', img)
        cli.close(self.topo, self.host, self.server.pid, self.fd)
        self.server.terminate()
        self.server.wait()
        self.server, self.host, self.state, self.fd = new, other, state_out, 3
        return cli.show(img), img.stat().st_size

    def stop(self):
        return self.cap.stop()


def latencies(pkts, ipx, freeze_ns):
    """(first seg, first data) in ms after freeze_ns, from the peer's capture."""
    freeze = freeze_ns / 1e9
    before = [p for p in pkts if p.ts < freeze and p.src == ipx and p.length]
    top = None
    for p in before:
        end = (p.seq + p.length) & 0xffffffff
        if top is None or seq_before(top, end):
            top = end
    after = [p for p in pkts if p.ts >= freeze]
    first_seg = next((p for p in after if p.src == ipx), None)
    first_data = None
    for i, p in enumerate(after):
        if p.src != ipx or not p.length:
            continue
        end = (p.seq + p.length) & 0xffffffff
        if top is not None and not seq_before(top, end):
            continue                # a retransmission of old data
        acked = any(q.dst == ipx and q.flags & ACK and not seq_before(q.ack, end)
                    for q in after[i + 1:])
        if acked:
            first_data = p
            break
    ms = lambda p: None if p is None else (p.ts - freeze) * 1000
    return ms(first_seg), ms(first_data)


def run(name, passes):
    args, buffers, per_topo = SCENARIOS[name]
    per_topo = per_topo or passes
    rows = []
    while len(rows) < passes:
        topo = netns.Topology()
        try:
            with TemporaryDirectory() as tmp:
                tmp = Path(tmp)
                if buffers:
                    set_buffers(topo, buffers)
                conn = Connection(topo, tmp, args)
                time.sleep(1.5)
                icis = []
                for _ in range(min(per_topo, passes - len(rows))):
                    icis.append(conn.pass_once())
                    time.sleep(0.5)
                pkts = conn.stop()
                for ici, size in icis:
                    seg, data = latencies(pkts, topo.ipx(4), ici['capture_realtime_ns'])
                    rows.append({'scenario': name, 'first_seg_ms': seg, 'first_data_ms': data,
                                 'sendq': ici['sendq_len'], 'recvq': ici['recvq_len'],
                                 'ici_bytes': size})
        finally:
            topo.cleanup()
    return rows


def pct(vals, q):
    vals = sorted(v for v in vals if v is not None)
    if not vals:
        return None
    return vals[min(len(vals) - 1, int(round(q / 100 * (len(vals) - 1))))]


def fmt(v, unit=''):
    return '-' if v is None else f'{v:.1f}{unit}'


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--passes', type=int, default=20, help='passes per scenario (queued: /4)')
    ap.add_argument('--csv', type=Path)
    ap.add_argument('--png', type=Path, help='latency CDF per scenario')
    ap.add_argument('--scenario', action='append', choices=list(SCENARIOS),
                    help='only this one (repeatable; default: all)')
    a = ap.parse_args()
    names = a.scenario or list(SCENARIOS)
    build.make_traffic()
    rows = []
    for name in names:
        n = a.passes if SCENARIOS[name][2] is None else max(3, a.passes // 4)
        rows += run(name, n)
    print(f'{"scenario":<18} {"passes":>6} {"queued (snd/rcv)":>18} {"ICI bytes":>10} '
          f'{"first seg p50/p99 ms":>22} {"first data p50/p99 ms":>22}')
    for name in names:
        r = [x for x in rows if x['scenario'] == name]
        seg = [x['first_seg_ms'] for x in r]
        data = [x['first_data_ms'] for x in r]
        q = f'{statistics.median(x["sendq"] for x in r) / MB:.1f}/' \
            f'{statistics.median(x["recvq"] for x in r) / MB:.1f} MB'
        print(f'{name:<18} {len(r):>6} {q:>18} {int(statistics.median(x["ici_bytes"] for x in r)):>10} '
              f'{fmt(pct(seg, 50)) + " / " + fmt(pct(seg, 99)):>22} '
              f'{fmt(pct(data, 50)) + " / " + fmt(pct(data, 99)):>22}')
    if a.csv:
        with open(a.csv, 'w', newline='') as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    if a.png:
        plot(rows, a.png)


def plot(rows, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    for name in SCENARIOS:
        v = sorted(x['first_seg_ms'] for x in rows
                   if x['scenario'] == name and x['first_seg_ms'] is not None)
        if v:
            ax.step(v, [(i + 1) / len(v) for i in range(len(v))], where='post', label=name)
    ax.set_xlabel('ms from the freeze to the first segment of the destination at the peer')
    ax.set_ylabel('fraction of passes')
    ax.set_title('Pass latency through the tcpcp CLI')
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)


if __name__ == '__main__':
    main()
