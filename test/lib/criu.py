# SPDX-License-Identifier: GPL-2.0-or-later
"""CRIU with the tcpcp plugin, run inside the test namespaces.

CRIU comes from scripts/criu/install-criu.sh (installed once, then only
checked); $TCPCP_CRIU names another binary.  Processes to be dumped are
started with nsenter --net (not `ip netns exec`), in their own session,
with stdio on files, so that CRIU can dump and restore them as they are.
"""
import os
import re
import signal
import subprocess
import time
from pathlib import Path

from . import build, cli
from .capture import ACK, FIN, RST, seq_before
from .netns import hostport
from .traffic import wait_file

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


def default_plugin_dir():
    """Where this criu loads plugins when given no --lib (its --help says)."""
    r = subprocess.run([criu_binary(), '--help'], capture_output=True, text=True)
    m = re.search(r'plugin directory \(by default (\S+)\)', r.stdout + r.stderr)
    assert m, 'criu --help names no plugin directory'
    return Path(m.group(1))


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

    def run(self, host, action, *args, check=True, timeout=120, env=None):
        """env: variables added to CRIU's environment (the plugin's)."""
        self.n += 1
        log = self.tmp / f'criu-{self.n}-{action}.log'
        argv = self.topo.nsenter(host, criu_binary(), action, '-v4', '-o', log, *args)
        t0 = time.monotonic()
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                           env=dict(criu_env(), **(env or {})))
        r.elapsed = time.monotonic() - t0
        r.log = log.read_text() if log.exists() else ''
        if check and r.returncode:
            errs = '\n'.join(l for l in r.log.splitlines()
                             if 'Error' in l or 'tcpcp:' in l or 'Warn' in l)
            errs += '\n... ' + '\n'.join(r.log.splitlines()[-5:])
            raise AssertionError(f'criu {action} in {host}: exit {r.returncode}\n'
                                 f'{r.stderr}\n{errs[-4000:]}')
        return r

    def dump(self, host, pid, imgdir, plugin=True, tcp='--tcp-established', lock=None,
             extra=(), **kw):
        """With the plugin CRIU locks nothing (the plugin's gate does, in
        one batch); alone it takes its own nftables lock.  A restore uses
        the dump's lock method (CRIU ignores --network-lock there)."""
        imgdir.mkdir(exist_ok=True)
        lib = ('--lib', plugin_dir()) if plugin is True else ()
        lock = lock or ('skip' if plugin else 'nftables')
        return self.run(host, 'dump', '-t', pid, '-D', imgdir, tcp, '--network-lock', lock,
                        *lib, *extra, **kw)

    def restore(self, host, imgdir, plugin=True, tcp='--tcp-close', extra=(), **kw):
        """plugin: True, through --lib; 'installed', from CRIU's own plugin
        directory (no --lib, as runc and podman run it); False, none."""
        lib = ('--lib', plugin_dir()) if plugin is True else ()
        return self.run(host, 'restore', '-D', imgdir, '-d', tcp, *lib, *extra, **kw)


# ---- zdtm-style programs (test/zdtm) --------------------------------------

def zdtm_bin(name):
    return str(build.build_dir() / 'zdtm' / name)


class ZdtmPair:
    """A zdtm test program serving in origin (the process CRIU dumps) and
    tcpcp-zdtm-peer connected to it from peer, over both families at once:
    IPv4 and IPv6 connections, and a listener of each beside them."""

    def __init__(self, topo, tmp, test, args, port, ready_timeout=60):
        addrs = [hostport(topo.ipx(f), port) for f in (4, 6)]
        sready, pready = tmp / 'server.ready', tmp / 'peer.ready'
        self.server = Task(topo, 'origin', [zdtm_bin(test), *(f'--listen={a}' for a in addrs),
                                            *args, '--ready', sready], tmp, test)
        cli.wait_listening(topo, 'origin', port)
        self.peer = topo.popen('peer', zdtm_bin('tcpcp-zdtm-peer'),
                               *(f'--connect={a}' for a in addrs), *args, '--ready', pready,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_file(sready, ready_timeout)
        wait_file(pready, ready_timeout)

    def checkpoint(self, criu, imgs, plugin=True, host='origin', timeout=120,
                   dump_tcp='--tcp-established'):
        """Dump the server, restore it at host: through the plugin (CRIU
        closes its own copy at restore), or by CRIU alone
        (--tcp-established both ways; same host only)."""
        dump = criu.dump('origin', self.server.pid, imgs, plugin=plugin, tcp=dump_tcp,
                         timeout=timeout)
        self.server.restored()
        restore = criu.restore(host, imgs, plugin=plugin, timeout=timeout,
                               tcp='--tcp-close' if plugin else '--tcp-established')
        return dump, restore

    def go(self):
        """A side holding its reads (--hold) starts reading."""
        for pid in (self.server.pid, self.peer.pid):
            os.kill(pid, signal.SIGUSR1)

    def finish(self, timeout=120):
        """Both ends' verdicts, (peer, server): "PASS" or why not."""
        out, err = self.peer.communicate(timeout=timeout)
        self.server.wait(timeout)
        res = self.server.out.read_text().strip()
        if self.peer.returncode or out.strip() != 'PASS':
            out = f'{out.strip()} {err.strip()}'.strip()
        return out.strip(), res or self.server.err.read_text().strip()


# Linux itself stamps a pure ACK now and then with a TSval a few ms older
# than the data segment just before it (a cached per-socket clock), most
# visibly with a thousand busy connections.  A restore gone wrong moves the
# clock back by the dump's duration or to a random value: allow 100 ticks.
TS_SLACK = 100


def peer_view(topo, pkts, port):
    """What the peer saw of the service: how long it heard nothing at all
    from it (the time the connections were frozen, as the peer lives it),
    RSTs, and connections whose TSval went back.  One pass: a capture of
    1000 connections holds a lot of segments.  port=None: any port of ipX."""
    ipxs = (topo.ipx(4), topo.ipx(6))
    closed = closes(pkts, ipxs)
    last_ts, backwards, times = {}, set(), []
    for p in pkts:
        if p.src not in ipxs or (port is not None and p.sport != port):
            continue
        times.append(p.ts)
        key = (p.src, p.sport, p.dst, p.dport)
        val = p.opts.get('ts', (None,))[0]
        if val is not None:
            top = last_ts.get(key)
            if top is not None and seq_before((val + TS_SLACK) & 0xffffffff, top):
                backwards.add(key)
            if top is None or seq_before(top, val):
                last_ts[key] = val
        else:
            last_ts.setdefault(key, None)
    times.sort()
    silence = max((b - a for a, b in zip(times, times[1:])), default=0)
    rst = sum(1 for p in pkts if p.flags & RST and not after_close(p, closed))
    return {'conns': len(last_ts), 'frozen_ms': round(silence * 1000), 'rst': rst,
            'tsval_backwards': len(backwards)}


def closes(pkts, ipxs):
    """(peer addr, peer port) -> when the peer's side was closed for good:
    both FINs sent and each acknowledged (the peer is then in TIME_WAIT
    or CLOSED)."""
    fin = {}                    # (conn, sender is ipX) -> seq just past its FIN
    acked = {}
    done = {}
    for p in pkts:
        ours = p.src in ipxs
        peer = (p.dst, p.dport) if ours else (p.src, p.sport)
        if p.flags & FIN:
            fin[(peer, ours)] = (p.seq + p.length + 1) & 0xffffffff
        other = fin.get((peer, not ours))
        if p.flags & ACK and other is not None and not seq_before(p.ack, other):
            acked[(peer, not ours)] = True
        if peer not in done and acked.get((peer, True)) and acked.get((peer, False)):
            done[peer] = p.ts
    return done


def after_close(p, closed):
    """An RST from the peer answering a segment of ipX's that arrived
    after the peer's side had closed: a retransmission of the service's
    FIN that crossed the peer's last ACK (seen in both the CRIU-only and
    the plugin restores under load: the FIN resent 19 ms after the first,
    stamped one tick before the ACK it crossed; the peer, closed, resets).
    The byte streams were complete; the peer saw nothing of the pass."""
    t = closed.get((p.src, p.sport))
    return t is not None and p.ts >= t
