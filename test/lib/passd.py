# SPDX-License-Identifier: GPL-2.0-or-later
"""Live passes through tcpcp-passd (destination) and tcpcp-pass (origin).

A pass moves the serving end of a Stream (see test_pass.py) to a host
running tcpcp-passd, whose handler continues the stream with
tcpcp-traffic --fd 3 --state {state}.  Handlers are not our children
(the daemon forks them), so they report through files: pid, stdout, rc.
"""
import json
import os
import secrets
import time
from pathlib import Path

from . import build
from .netns import hostport
from .traffic import wait_for

CTL_PORT = 7000


def binary(name):
    return str(build.build_dir() / name)


def make_key(path):
    Path(path).write_text(secrets.token_hex(32) + '\n')
    os.chmod(path, 0o600)
    return path


def ctl_addr(topo, host, family=4):
    return hostport(topo.addr(host, family), CTL_PORT)


class Handler:
    """A tcpcp-traffic started by tcpcp-passd, known by its files."""

    def __init__(self, prefix):
        self.prefix = Path(prefix)
        self.state_out = Path(f'{prefix}.state')
        self._pid = None

    @property
    def pid(self):
        if self._pid is None:
            path = Path(f'{self.prefix}.pid')
            wait_for(lambda: path.exists() and path.read_text().strip(), 10,
                     f'handler {path}')
            self._pid = int(path.read_text())
        return self._pid

    def running(self):
        return os.path.exists(f'/proc/{self.pid}')

    def terminate(self):
        try:
            os.kill(self.pid, 15)
        except ProcessLookupError:
            pass

    def wait(self, timeout=60):
        """Like Traffic.wait(): until it has ended, or timeout seconds."""
        try:
            wait_for(lambda: not self.running(), timeout, f'{self.prefix} to end', 0.05)
        except AssertionError:
            pass

    def describe(self):
        out = Path(f'{self.prefix}.out')
        err = Path(f'{self.prefix}.err')
        return (f'handler {self.prefix}: stdout {out.read_text() if out.exists() else "-"} '
                f'stderr {err.read_text() if err.exists() else "-"}')

    def result(self, timeout=60):
        wait_for(lambda: not self.running(), timeout, f'{self.prefix} to end', 0.05)
        lines = Path(f'{self.prefix}.out').read_text().strip().splitlines()
        assert lines, self.describe()
        return json.loads(lines[-1])

    def expect(self, status='ok', timeout=60):
        res = self.result(timeout)
        assert res.get(status), f'expected "{status}": {self.describe()}'
        return res


class Passd:
    """tcpcp-passd on host, continuing tcpcp-traffic streams it is given."""

    def __init__(self, topo, host, key, tmp, family=4, traffic_args=(), args=(), env=None):
        self.topo, self.host, self.tmp = topo, host, Path(tmp)
        self.dir = self.tmp / f'passd-{host}'
        self.dir.mkdir(exist_ok=True)
        self.log = self.dir / 'passd.log'
        self.addr = ctl_addr(topo, host, family)
        d = self.dir
        handler = (f'echo $$ > {d}/{{id}}.pid; exec {build.traffic()} --fd 3 '
                   f'--state {{state}} --state-out {d}/{{id}}.state '
                   f'{" ".join(map(str, traffic_args))} > {d}/{{id}}.out 2> {d}/{{id}}.err')
        self.proc = topo.popen(host, binary('tcpcp-passd'), '--listen', self.addr,
                               '--key', key, '--state-dir', d, *args, '--', 'sh', '-c', handler,
                               stderr=open(self.log, 'w'), env=env or build.env())
        wait_for(lambda: 'listening' in self.log.read_text(), 10, 'tcpcp-passd')

    def handler(self, n):
        return Handler(self.dir / str(n))

    def log_text(self):
        return self.log.read_text()


def pass_conn(topo, host, pid, fd, to, key, state_file=None, switch_to=None,
              switch_back=None, check=True, timeout=60, extra=()):
    """tcpcp-pass on host; returns (CompletedProcess, JSON result or None)."""
    args = [binary('tcpcp-pass'), '--to', to, '--key', key, '--pid', pid, '--fd', fd,
            *extra]
    if state_file:
        args += ['--state-file', state_file]
    if switch_to:
        args += ['--switch-to', switch_to]
    if switch_back:
        args += ['--switch-back', switch_back]
    r = topo.run(host, *args, check=False, timeout=timeout)
    if check:
        assert r.returncode == 0, f'tcpcp-pass: exit {r.returncode}: {r.stderr.strip()}'
    res = json.loads(r.stdout.strip().splitlines()[-1]) if r.stdout.strip() else None
    return r, res


def route_switch(topo, host):
    """route:GATEWAY:VIA4,VIA6 that sends ipX to host."""
    return f'route:{topo.ns["router"]}:{topo.addr(host, 4)},{topo.addr(host, 6)}'


def wait_gone(pid, timeout=10):
    wait_for(lambda: not os.path.exists(f'/proc/{pid}'), timeout, f'pid {pid} to end')


def sleep_until(t):
    d = t - time.monotonic()
    if d > 0:
        time.sleep(d)


EDT_SLACK = 10     # ticks: 10 ms at Linux's 1 kHz TSval clock


def tsval_regressions(pkts, src):
    """Pairs (earlier, later) from src where TSval went back although the
    later segment was not generated earlier.  Two segments of one sender
    can swap on the way (veth hands them to per-CPU backlogs); then the
    later-arriving one also acknowledges less, and that is reordering, not
    a clock going back.  A new endpoint whose clock resumed too early
    acknowledges at least as much as its predecessor did.

    Linux itself stamps a data segment with its earliest departure time,
    which pacing may put a little ahead of the clock, and a pure ACK with
    the clock: such an ACK right after the data may be a tick or so older
    (seen: 1 tick, 0.1 ms later).  A retransmission of earlier bytes is
    stamped with the clock too (seen under 5 % loss: 2 ticks older than
    the new data sent 26 us before it, same ACK, same sender).  Up to
    EDT_SLACK ticks of either pass."""
    from .capture import MASK32, sent_by, seq_before
    bad, last = [], None
    for p in sent_by(pkts, src):
        if 'ts' not in p.opts:
            continue
        edt = last is not None and last.length > 0 and \
            (p.length == 0 or seq_before(p.seq, last.seq)) and \
            (last.opts['ts'][0] - p.opts['ts'][0]) & MASK32 <= EDT_SLACK
        if last is not None and seq_before(p.opts['ts'][0], last.opts['ts'][0]) \
                and not seq_before(p.ack, last.ack) and not edt:
            bad.append((last, p))
        if last is None or not seq_before(p.opts['ts'][0], last.opts['ts'][0]):
            last = p
    return bad
