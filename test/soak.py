#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Soak (issue 11): many passes, nothing lost, nothing left behind.
Needs root and a build (TCPCP_BUILD); `make soak` runs it.

  long    bidirectional streams (tcpcp-traffic, both ends check every
          byte) passed back and forth between origin and dest by
          tcpcp-pass / tcpcp-passd, PASSES times in all (about 100 a
          stream), while the router drops LOSS % of the TCP segments it
          forwards (the control connection's too).  Each stream, at its
          end: both hashes right, no RST, FINs after the data, no TSval
          going back (the tests' rules).
  short   REQUESTS HTTP downloads from tcpcp-dispatcher, each connection
          passed to a tcpcp-worker on dest (flow steering at the gateway)
          and checked by its sha256 at the client.  Each from a port of
          its own: a new connection on the 4-tuple of a passed one fails
          today (the gateway's steering entry outlives the connection;
          docs/pass.md, Limits), one in about a thousand with ports the
          kernel picks.

Afterwards no gate entry is left in either namespace once the passes'
lingers run out, and no namespace of ours pins a BPF folder.  Bounded by
--minutes per part: it stops early, saying how far it got.

    TCPCP_BUILD=$PWD/build test/soak.py [--passes 1000] [--requests 1000] [--loss 5]
"""
import argparse
import hashlib
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from lib import netns  # noqa: E402
from lib.passd import binary, make_key  # noqa: E402
from lib.traffic import wait_for  # noqa: E402
import test_passd  # noqa: E402  (Live, lossy_path, dropped)

IPX = netns.IPX[4]


RATE = 256 * 1024	# bytes/s each way


def soak_long(tmp, passes, loss, minutes, chunk=100):
    """Streams of about `chunk` passes each, one after another: a stream's
    length is set from the pace of the passes so far, so that it ends
    soon after its last pass and finish() checks it whole."""
    done, took, dropped = 0, [], 0
    est, deadline, t0 = 0.15, time.time() + minutes * 60, time.time()
    while done < passes and time.time() < deadline:
        n = min(chunk, passes - done)
        secs = n * est * 1.3 + 4
        topo = netns.Topology()
        try:
            seg = tmp / f'seg{done}'
            seg.mkdir()
            live = test_passd.Live(topo, seg, 4, int(RATE * secs), rate=str(RATE))
            live.passd('dest')
            live.passd('origin')
            test_passd.lossy_path(topo, loss)
            begin = time.time()
            time.sleep(0.5)
            for i in range(n):
                if time.time() - begin > secs - 2 or time.time() > deadline:
                    break
                a = time.time()
                r, res = live.pass_to('dest' if i % 2 == 0 else 'origin')
                assert res['result'] == 'passed', f'pass {done}: {r.stderr}'
                took.append(time.time() - a)
                done += 1
            live.finish()
            dropped += test_passd.dropped(topo)
        finally:
            topo.cleanup()
        est = max(0.05, sum(took[-n:]) / max(1, len(took[-n:])))
    wall = time.time() - t0
    took.sort()
    print(f'long: {done} passes in {wall:.0f} s under {loss} % loss ({dropped} segments '
          f'dropped at the router); tcpcp-pass per pass p50 {took[len(took) // 2] * 1000:.0f} ms, '
          f'max {took[-1] * 1000:.0f} ms; every stream intact both ways, no RST, no TSval back')
    return done


def soak_short(tmp, requests, minutes):
    topo = netns.Topology()
    try:
        root = tmp / 'root'
        root.mkdir()
        body = os.urandom(64 * 1024)
        (root / 'f').write_bytes(body)
        want = hashlib.sha256(body).hexdigest()
        key = make_key(tmp / 'key')
        gw = topo.ns['router']
        topo.run('router', 'ip', '-4', 'rule', 'add', 'fwmark', 3, 'lookup', 3)
        topo.run('router', 'ip', '-4', 'route', 'add', IPX, 'via', topo.addr('dest', 4),
                 'table', 3)
        wlog, dlog = tmp / 'worker.log', tmp / 'dispatcher.log'
        ctl = f'{topo.addr("dest", 4)}:7001'
        topo.popen('dest', binary('tcpcp-worker'), '--ctl', ctl, '--key', key, '--name', 'w',
                   '--root', root, stderr=open(wlog, 'w'))
        wait_for(lambda: 'taking' in wlog.read_text(), 10, 'worker')
        from lib import build
        env = dict(build.env(), TCPCP_DEMO_TIMES='1')   # a line per pass, with its result
        topo.popen('origin', binary('tcpcp-dispatcher'), '--listen', f'{IPX}:8080',
                   '--key', key, '--worker', f'{ctl}=flow:{gw}:3', '--switch-back',
                   f'flow:{gw}:0', stderr=open(dlog, 'w'), env=env)
        wait_for(lambda: 'listening' in dlog.read_text(), 10, 'dispatcher')
        t0 = time.time()
        r = topo.run('peer', 'sh', '-c',
                     f'end=$(($(date +%s) + {int(minutes * 60)})); ok=0; '
                     f'for i in $(seq {requests}); do '
                     f'[ $(date +%s) -lt $end ] || break; '
                     f'h=$(curl -sf --max-time 20 --local-port $((20000 + i)) http://{IPX}:8080/f '
                     f'| sha256sum | cut -c1-64); '
                     f'[ "$h" = {want} ] || {{ echo "request $i: got $h"; exit 1; }}; '
                     f'ok=$((ok + 1)); done; echo ok=$ok',
                     timeout=minutes * 60 + 60, check=False)
        assert r.returncode == 0, (r.stdout + r.stderr + '\ndispatcher: ' +
                                   dlog.read_text()[-1500:] + '\nworker: ' +
                                   wlog.read_text()[-1500:])
        done = int(r.stdout.split('ok=')[-1])
        wall = time.time() - t0
        passed = dlog.read_text().count('result=0')
        assert passed == done, f'{passed} passes logged for {done} requests'
        print(f'short: {done} connections, each passed once and checked by sha256, '
              f'in {wall:.0f} s ({done / wall:.1f}/s)')
        return done
    finally:
        topo.cleanup()


def leftovers():
    pins = [p.name for p in Path('/run/tcpcp/bpf').glob('net-*')]
    ours = [n for n in os.popen('ip netns list').read().split() if n.startswith('tcpcp-')]
    return pins, ours


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--passes', type=int, default=1000)
    ap.add_argument('--requests', type=int, default=1000)
    ap.add_argument('--loss', type=int, default=5)
    ap.add_argument('--minutes', type=float, default=20, help='bound of each part')
    a = ap.parse_args()
    import tempfile
    before = leftovers()[0]
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / 'long').mkdir()
        (Path(d) / 'short').mkdir()
        n_long = soak_long(Path(d) / 'long', a.passes, a.loss, a.minutes) if a.passes else 0
        n_short = soak_short(Path(d) / 'short', a.requests, a.minutes)
    pins, ours = leftovers()
    assert set(pins) <= set(before), f'BPF folders left: {sorted(set(pins) - set(before))}'
    assert not ours, f'namespaces left: {ours}'
    print(f'left behind: nothing (no namespace, no BPF folder); '
          f'{n_long}/{a.passes} long passes, {n_short}/{a.requests} short ones')
    return 0 if n_long == a.passes and n_short == a.requests else 1


if __name__ == '__main__':
    sys.exit(main())
