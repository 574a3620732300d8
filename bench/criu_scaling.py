#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Checkpoint/restore scaling: CRIU's --tcp-established against the tcpcp plugin.

For each N, a process with N established connections (test/zdtm/tcp_stream,
half IPv4, half IPv6, streaming both ways) is dumped and restored on the
same host twice, each time in a fresh topology with a fresh server/peer
pair:
  criu    dump --tcp-established --network-lock nftables, restore
          --tcp-established (CRIU alone, locking each connection itself);
  plugin  dump --tcp-established --network-lock skip --lib, restore
          --tcp-close --lib (the plugin locks them all in one batch; the
          connections come back from the tcpcp images);
  plugin-close  dump --tcp-close --lib, restore --tcp-close --lib (the
          same, and CRIU does not dump the repaired sockets a second time:
          the plugin's images are the only copy).
Both ends verify every byte and must end with PASS.

  frozen ms   the longest time the peer heard nothing from the service (its
              capture); for N > 200 the capture keeps a sample of about 100
              connections (by peer port) plus every FIN and RST
  stall p50/max ms   per connection (of the sample), its longest silence
              that ends after the dump started: how long that connection
              was cut off (CRIU alone locks them one by one during its dump,
              the plugin all at once: the first measure sees only the last
              locked, this one sees each)
  dump s / restore s   wall time of the criu commands
  img B/conn  all of the image directory, divided by N (at small N the
              process's memory pages dominate)
  tcpcp B/conn  the plugin's tcpcp-*.img alone, divided by N
  peer RST    RSTs the peer sent or received while a connection was open
  RST after FINs  RSTs answering a late ACK after both FINs (harmless)

    sudo TCPCP_BUILD=$PWD/build bench/criu_scaling.py [--conns 1,10,100,1000,10000]
        [--csv F] [--png F] [--keep DIR] [--runs R] [--modes criu,plugin,...]

With --runs R each N and mode runs R times, the modes interleaved, and
every column is the median of its R values (ratios: of the medians).

Needs root, a build (TCPCP_BUILD, default ./build) and CRIU from
scripts/criu/install-criu.sh.
"""
import argparse
import csv
import shutil
import signal
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from tempfile import TemporaryDirectory

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'test'))

from lib import netns  # noqa: E402
from lib.capture import FIN, RST, Capture  # noqa: E402
from lib.criu import Criu, ZdtmPair, asan_build, peer_view  # noqa: E402

PORT = 5001
# mode -> (plugin, the dump's TCP flag)
MODES = (('criu', False, '--tcp-established'), ('plugin', True, '--tcp-established'),
         ('plugin-close', True, '--tcp-close'))
SETTLE_S = 1.5          # streaming before the dump
AFTER_S = 2.0           # of the planned transfer left for after the restore
SAMPLE = 100            # connections the capture follows at large N
KEYS = ('frozen_ms', 'stall_p50_ms', 'stall_max_ms', 'dump_s', 'restore_s', 'img_per_conn',
        'tcpcp_per_conn')


def workload(n, rate):
    """tcp_stream's arguments: `rate` bytes/s in all, each way, and enough
    bytes that the streams go on after the restore (the rate budget
    catches up after the freeze, so the dump's length does not matter)."""
    per_conn = max(64, int(rate * (SETTLE_S + AFTER_S) / n))
    return ['--conns', n, '--bytes', per_conn, '--rate', rate, '--timeout', 600 + n // 10]


def sample_mask(n):
    """Mask on the peer's port bits 1.. (connect() may pick ports of one
    parity only): 0, or one connection in 2^k."""
    k = 0
    while n >> k > 2 * SAMPLE:
        k += 1
    return ((1 << k) - 1) << 1


def capture_filter(mask):
    """The service's segments of the sampled connections, and every FIN and
    RST (to tell a RST after a connection's close from one that broke it).
    libpcap's tcp[] does not look into IPv6: ip6[] at the fixed offsets
    (no extension headers here)."""
    v4 = f'(ip and tcp src port {PORT} and tcp[2:2] & {mask} == 0)'
    v6 = f'(ip6 and ip6[6] == 6 and ip6[40:2] == {PORT} and ip6[42:2] & {mask} == 0)'
    fin_rst = '(tcp[tcpflags] & 5 != 0) or (ip6 and ip6[6] == 6 and ip6[53] & 5 != 0)'
    return f'{v4} or {v6} or {fin_rst}'


def rsts(pkts):
    """(RSTs while the connection was open, RSTs after both ends' FIN).
    The latter answer a late ACK that crossed the last FIN (a delayed ACK
    of the other side's last data): the connection had already ended
    cleanly.  With thousands of connections on 2 busy cores a few dozen
    do that, with or without CRIU."""
    fins, live, late = {}, 0, 0
    for p in pkts:
        key = frozenset(((p.src, p.sport), (p.dst, p.dport)))
        if p.flags & FIN:
            fins.setdefault(key, set()).add(p.src)
        if p.flags & RST:
            if len(fins.get(key, ())) == 2:
                late += 1
            else:
                live += 1
    return live, late


def conn_stalls(topo, pkts, since, mask):
    """(median, max) over the sampled connections (`mask`: the others show
    only their FINs and RSTs) of the longest gap between two segments of
    the service on that connection that ends after `since` (wall clock,
    as the capture's timestamps)."""
    ipxs = (topo.ipx(4), topo.ipx(6))
    times = {}
    for p in pkts:
        if p.src in ipxs and p.sport == PORT and not p.dport & mask:
            times.setdefault((p.src, p.dst, p.dport), []).append(p.ts)
    stalls = []
    for ts in times.values():
        ts.sort()
        gaps = [b - a for a, b in zip(ts, ts[1:]) if b > since]
        if gaps:
            stalls.append(max(gaps) * 1000)
    if not stalls:
        return None, None
    stalls.sort()
    return stalls[len(stalls) // 2], stalls[-1]


def image_bytes(imgs):
    files = [p for p in imgs.iterdir() if p.is_file()]
    total = sum(p.stat().st_size for p in files)
    tcpcp = sum(p.stat().st_size for p in files if p.name.startswith('tcpcp-'))
    return total, tcpcp


def reason(e):
    """One line: what failed (Criu.run's first line) and why: CRIU's
    stderr if it died, else its last error (the first ones can be
    harmless, as "Can't setup RLIMIT_NOFILE" without CAP_SYS_RESOURCE)."""
    lines = [l.strip() for l in str(e).splitlines() if l.strip()] or [type(e).__name__]
    died = [l for l in lines[1:2] if not l.startswith(('(', 'Warn', 'Error'))]
    errs = [l for l in lines if 'Error' in l and 'FAILED' not in l]
    return ' '.join([lines[0], *(died or errs[-1:])])[:240]


def run_once(n, plugin, dump_tcp, rate, tmp):
    topo = netns.Topology()
    try:
        cap = Capture(topo, 'peer', tmp / 'peer.pcap', expr=capture_filter(sample_mask(n)))
        cap.start()
        pair = ZdtmPair(topo, tmp, 'tcp_stream', workload(n, rate), PORT,
                        ready_timeout=60 + n // 50)
        time.sleep(SETTLE_S)
        imgs = tmp / 'img'
        t_dump = time.time()
        dump, restore = pair.checkpoint(Criu(topo, tmp), imgs, plugin=plugin,
                                        dump_tcp=dump_tcp, timeout=120 + n // 20)
        peer, server = pair.finish(timeout=120 + n // 20)
        pkts = cap.stop()
        view = peer_view(topo, pkts, PORT)
        stall_p50, stall_max = conn_stalls(topo, pkts, t_dump, sample_mask(n))
        live_rst, late_rst = rsts(pkts)
        total, tcpcp = image_bytes(imgs)
        return {'frozen_ms': view['frozen_ms'], 'stall_p50_ms': stall_p50,
                'stall_max_ms': stall_max, 'dump_s': dump.elapsed,
                'restore_s': restore.elapsed, 'img_per_conn': total / n,
                'tcpcp_per_conn': tcpcp / n if plugin else None, 'rst': live_rst,
                'rst_after_close': late_rst, 'tsval_backwards': view['tsval_backwards'],
                'ok': peer == 'PASS' and server == 'PASS',
                'why': '' if peer == server == 'PASS' else f'peer: {peer}; server: {server}'}
    finally:
        topo.cleanup()


def workdir(keep, n, mode):
    """Logs, capture and images of one run: kept under `keep` if given."""
    if keep is None:
        return TemporaryDirectory(prefix=f'criu-scaling-{n}-{mode}-')
    d = keep / f'{n}-{mode}'
    # A directory of an earlier run would mix its images and capture in.
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    return nullcontext(d)


def median_of(runs):
    """One row for R runs of a mode: each measure's median (lower middle
    for an even R); ok only if every run was, counts summed."""
    if len(runs) == 1:
        return runs[0]
    out = {'ok': all(r['ok'] for r in runs),
           'why': '; '.join(r['why'] for r in runs if r.get('why'))}
    for k in KEYS:
        vals = sorted(r[k] for r in runs if r.get(k) is not None)
        out[k] = vals[(len(vals) - 1) // 2] if vals else None
    for k in ('rst', 'rst_after_close', 'tsval_backwards'):
        out[k] = sum(r.get(k) or 0 for r in runs)
    return out


def run_n(n, rate, keep, modes, repeat):
    """Each mode @repeat times, the modes interleaved run by run, so that
    a slow minute of the VM falls on all of them alike."""
    got = {m[0]: [] for m in modes}
    for k in range(repeat):
        for mode, plugin, dump_tcp in modes:
            with workdir(keep, n, mode if repeat == 1 else f'{mode}-{k}') as tmp:
                try:
                    r = run_once(n, plugin, dump_tcp, rate, Path(tmp))
                except Exception as e:      # one N failing must not end the table
                    r = {'ok': False, 'why': reason(e)}
                    (Path(tmp) / 'error.txt').write_text(f'{e}\n')
            got[mode].append(r)
            print(f'  N={n} {mode}: {"ok" if r["ok"] else "FAILED: " + r["why"]}',
                  file=sys.stderr, flush=True)
    rows = []
    for mode, _, _ in modes:
        r = median_of(got[mode])
        r.update(n=n, mode=mode)
        rows.append(r)
    return rows


def ratio(a, b):
    """b / a (a plugin mode / criu) for each measure both runs have."""
    out = {'n': a['n'], 'mode': f'{b["mode"]}/criu', 'ratio': True,
           'ok': a['ok'] and b['ok']}
    for k in KEYS[:-1]:
        if a.get(k) and b.get(k) is not None:
            out[k] = b[k] / a[k]
    return out


def fmt(v, spec):
    return '-' if v is None else format(v, spec)


def print_table(rows):
    print(f'{"N":>6} {"mode":<18} {"frozen ms":>10} {"stall p50/max ms":>17} '
          f'{"dump s":>8} {"restore s":>10} '
          f'{"img B/conn":>11} {"tcpcp B/conn":>13} {"peer RST":>9} {"RST after FINs":>15} {"ok":>4}')
    for r in rows:
        is_ratio = r.get('ratio', False)
        num = '.2f' if is_ratio else None
        print(f'{r["n"]:>6} {r["mode"]:<18} '
              f'{fmt(r.get("frozen_ms"), num or ".0f"):>10} '
              f'{fmt(r.get("stall_p50_ms"), num or ".0f") + "/" + fmt(r.get("stall_max_ms"), num or ".0f"):>17} '
              f'{fmt(r.get("dump_s"), num or ".2f"):>8} '
              f'{fmt(r.get("restore_s"), num or ".2f"):>10} '
              f'{fmt(r.get("img_per_conn"), num or ".0f"):>11} '
              f'{fmt(r.get("tcpcp_per_conn"), ".0f"):>13} '
              f'{"" if is_ratio else fmt(r.get("rst"), "d"):>9} '
              f'{"" if is_ratio else fmt(r.get("rst_after_close"), "d"):>15} '
              f'{"" if is_ratio else ("yes" if r["ok"] else "NO"):>4}'
              + ('' if r['ok'] or is_ratio else f'  {r["why"]}'))


def write_csv(rows, path):
    cols = ['n', 'mode', *KEYS, 'rst', 'rst_after_close', 'tsval_backwards', 'ok', 'why']
    with open(path, 'w', newline='') as f:
        w = csv.DictWriter(f, cols, extrasaction='ignore')
        w.writeheader()
        w.writerows(rows)


def plot(rows, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for mode, _, _ in MODES:
        mine = [r for r in rows if r['mode'] == mode and r['ok']]
        ns = [r['n'] for r in mine]
        style = {'criu': '--', 'plugin': '-'}.get(mode, ':')
        for key, label, scale, color in (('frozen_ms', 'frozen (peer)', 1e-3, 'C0'),
                                         ('dump_s', 'criu dump', 1, 'C1'),
                                         ('restore_s', 'criu restore', 1, 'C2')):
            ax.plot(ns, [r[key] * scale for r in mine], style, marker='o', color=color,
                    label=f'{mode}: {label}')
    ax.set_xscale('log')
    ax.set_yscale('log')
    ax.set_xlabel('established connections (N)')
    ax.set_ylabel('seconds')
    ax.set_title('Same-host checkpoint/restore: CRIU --tcp-established vs tcpcp plugin')
    ax.grid(True, which='both', alpha=0.3)
    ax.legend(fontsize='small')
    fig.tight_layout()
    fig.savefig(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--conns', default='1,10,100,1000,10000',
                    help='comma-separated N list (10000: about 40 s for both runs)')
    ap.add_argument('--rate', type=int, default=4 << 20,
                    help='bytes/s each way, all connections together')
    ap.add_argument('--csv', type=Path)
    ap.add_argument('--png', type=Path)
    ap.add_argument('--keep', type=Path, help='keep logs, captures and images here')
    ap.add_argument('--runs', type=int, default=1,
                    help='runs per N and mode, interleaved; the table shows medians')
    ap.add_argument('--modes', default=','.join(m[0] for m in MODES),
                    help='comma-separated subset of ' + ', '.join(m[0] for m in MODES)
                    + ' (criu first: the ratios are against it)')
    a = ap.parse_args()
    # Killed, still clean up: namespaces, processes, criu's leftovers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if asan_build():
        sys.exit('an ASan build: the plugin cannot load into criu')
    want = a.modes.split(',')
    modes = [m for m in MODES if m[0] in want]
    if len(modes) != len(want):
        sys.exit(f'--modes: unknown mode in {a.modes!r}')
    rows = []
    for n in (int(x) for x in a.conns.split(',')):
        runs = run_n(n, a.rate, a.keep, modes, max(1, a.runs))
        base = [r for r in runs if r['mode'] == 'criu']
        rows += [*runs, *(ratio(base[0], r) for r in runs if base and r is not base[0])]
    print_table(rows)
    if a.csv:
        write_csv(rows, a.csv)
    if a.png:
        plot(rows, a.png)


if __name__ == '__main__':
    main()
