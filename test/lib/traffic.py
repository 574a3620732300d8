# SPDX-License-Identifier: GPL-2.0-or-later
"""Running tcpcp-traffic in a namespace and reading what it reports."""
import json
import os
import signal
import subprocess
import time
from pathlib import Path

from . import build


def wait_for(pred, timeout=10, what='condition', interval=0.02):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f'timed out after {timeout}s waiting for {what}')
        time.sleep(interval)


def wait_file(path, timeout=10):
    return wait_for(Path(path).exists, timeout, f'{path}')


def read_state(path):
    """A --state-out file as a dict of ints (hashes stay hex strings)."""
    out = {}
    for line in Path(path).read_text().splitlines():
        key, val = line.split('=', 1)
        out[key] = val if 'hash' in key else int(val)
    return out


class Traffic:
    """One tcpcp-traffic process; prefix runs it under another command,
    e.g. `tcpcp create IMG --activate --`."""

    def __init__(self, topo, host, *args, prefix=()):
        self.host = host
        self.argv = [*prefix, build.traffic(), *map(str, args)]
        self.proc = topo.popen(host, *self.argv, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        self.rc = self.out = self.err = None

    @property
    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc.poll() is None

    def started(self, timeout=10):
        """Under a prefix: wait until it exec'd tcpcp-traffic, or exited."""
        def execd():
            try:
                return os.readlink(f'/proc/{self.pid}/exe') == build.traffic()
            except OSError:
                return False
        wait_for(lambda: not self.running() or execd(), timeout,
                 f'{self.argv[0]} to exec tcpcp-traffic')
        return self.running()

    def terminate(self):
        self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout=60):
        if self.rc is None:
            try:
                self.out, self.err = self.proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.out, self.err = self.proc.communicate()
                self.err += f'\n(killed after {timeout}s)'
            self.rc = self.proc.returncode
        return self.rc

    def describe(self):
        return (f'{self.host}: {" ".join(self.argv)}\n  exit {self.rc}\n'
                f'  stdout: {self.out.strip()}\n  stderr: {self.err.strip()}')

    def result(self, timeout=60):
        """The JSON line, after the process ended."""
        self.wait(timeout)
        lines = self.out.strip().splitlines()
        assert lines, f'no result line\n{self.describe()}'
        return json.loads(lines[-1])

    def expect(self, status='ok', timeout=60):
        """Wait for a clean exit reporting status ('ok' or 'taken')."""
        self.wait(timeout)
        assert self.rc == 0, f'failed\n{self.describe()}'
        res = self.result()
        assert res.get(status), f'expected "{status}"\n{self.describe()}'
        return res


def assert_hashes_match(a, b):
    """a and b are the results of the two ends of one stream."""
    assert a['tx'] == b['rx'] and a['rx'] == b['tx'], f'{a} vs {b}'
    assert a['tx_hash'] == b['rx_hash'], f'{a} vs {b}'
    assert a['rx_hash'] == b['tx_hash'], f'{a} vs {b}'
