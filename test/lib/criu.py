# SPDX-License-Identifier: GPL-2.0-or-later
"""CRIU with the tcpcp plugin, run inside the test namespaces.

CRIU comes from scripts/criu/install-criu.sh (installed once, then only
checked); $TCPCP_CRIU names another binary.  Processes to be dumped are
started with nsenter --net (not `ip netns exec`), in their own session,
with stdio on files, so that CRIU can dump and restore them as they are.
"""
import os
import signal
import subprocess
import time
from pathlib import Path

from . import build

REPO = build.REPO
_criu = None


def criu_binary():
    global _criu
    if _criu is None:
        _criu = os.environ.get('TCPCP_CRIU')
        if not _criu:
            r = subprocess.run([str(REPO / 'scripts/criu/install-criu.sh')],
                               capture_output=True, text=True)
            assert r.returncode == 0, f'install-criu.sh failed:\n{r.stderr}'
            _criu = r.stdout.strip()
    return _criu


def criu_env():
    """CRIU_FAULT=130 (FI_NO_BREAKPOINTS): compel stops the parasite with
    PTRACE_SYSCALL instead of a hardware breakpoint.  Under some hypervisors
    (this CI's Firecracker VMs) debug-register traps never fire and CRIU
    waits forever for the task to trap after curing the parasite."""
    e = build.env()
    e.setdefault('CRIU_FAULT', '130')
    return e


def plugin_dir():
    return build.build_dir() / 'criu-plugin'


def asan_build():
    """A sanitized plugin cannot be loaded into an uninstrumented criu."""
    r = subprocess.run(['ldd', str(plugin_dir() / 'tcpcp_plugin.so')],
                       capture_output=True, text=True)
    return 'libasan' in r.stdout


def alive(pid):
    try:
        st = Path(f'/proc/{pid}/stat').read_text()
    except OSError:
        return False
    return st.rsplit(')', 1)[1].split()[0] != 'Z'


class Task:
    """A process CRIU may dump: own session, output in files."""

    def __init__(self, topo, host, argv, tmp, name):
        self.out = tmp / f'{name}.out'
        self.err = tmp / f'{name}.err'
        with open(self.out, 'w') as o, open(self.err, 'w') as e:
            p = subprocess.Popen(topo.nsenter(host, *argv), stdin=subprocess.DEVNULL,
                                 stdout=o, stderr=e, env=build.env(),
                                 start_new_session=True)
        topo.procs.append(p)
        self.proc = p
        # Without --fork nsenter execs the program: pid is the program's.
        self.pid = p.pid
        self.argv = argv

    def wait(self, timeout=60):
        """Exit status while it is our child; after a restore it is CRIU's
        (detached), so then only its end can be seen."""
        deadline = time.monotonic() + timeout
        if self.proc is not None:
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                raise AssertionError(f'{self.argv[0]} still running after {timeout}s')
        while alive(self.pid):
            if time.monotonic() > deadline:
                raise AssertionError(f'{self.argv[0]} still running after {timeout}s')
            time.sleep(0.05)
        return None

    def restored(self):
        """The original is gone (killed by the dump); from now on pid is
        the restored process."""
        if self.proc is not None:
            self.proc.wait(10)
            self.proc = None

    def kill(self):
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class Criu:
    def __init__(self, topo, tmp):
        self.topo, self.tmp = topo, tmp
        self.n = 0

    def run(self, host, action, *args, check=True, timeout=120):
        self.n += 1
        log = self.tmp / f'criu-{self.n}-{action}.log'
        argv = self.topo.nsenter(host, criu_binary(), action, '-v4', '-o', log,
                                 '--network-lock', 'nftables', *args)
        t0 = time.monotonic()
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                           env=criu_env())
        r.elapsed = time.monotonic() - t0
        r.log = log.read_text() if log.exists() else ''
        if check and r.returncode:
            errs = '\n'.join(l for l in r.log.splitlines()
                             if 'Error' in l or 'tcpcp:' in l or 'Warn' in l)
            errs += '\n... ' + '\n'.join(r.log.splitlines()[-5:])
            raise AssertionError(f'criu {action} in {host}: exit {r.returncode}\n'
                                 f'{r.stderr}\n{errs[-4000:]}')
        return r

    def dump(self, host, pid, imgdir, plugin=True, tcp='--tcp-established', **kw):
        imgdir.mkdir(exist_ok=True)
        lib = ('--lib', plugin_dir()) if plugin else ()
        return self.run(host, 'dump', '-t', pid, '-D', imgdir, tcp, *lib, **kw)

    def restore(self, host, imgdir, plugin=True, tcp='--tcp-close', **kw):
        lib = ('--lib', plugin_dir()) if plugin else ()
        return self.run(host, 'restore', '-D', imgdir, '-d', tcp, *lib, **kw)
