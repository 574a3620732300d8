# SPDX-License-Identifier: GPL-2.0-or-later
"""Four network namespaces for pass tests.

    peer --- router --- origin
                  \\--- dest

The service address ipX lives on lo of both origin and dest; the router
decides which of them gets it (static-route model of the paper, 2.2).
Everything a test creates is named tcpcp-<pid>-<n>-<host> and removed by
cleanup(), which also runs at exit should a finalizer be skipped.
"""
import atexit
import ipaddress
import itertools
import os
import signal
import subprocess
import time

from . import build

HOSTS = ('peer', 'router', 'origin', 'dest')
IPX = {4: '10.77.9.1', 6: 'fd77:9::1'}
# host -> (IPv4 /24, IPv6 /64) of its link to the router; router is .1/::1
NETS = {
    'peer': ('10.77.1', 'fd77:1:'),
    'origin': ('10.77.2', 'fd77:2:'),
    'dest': ('10.77.3', 'fd77:3:'),
}
IFNAME = 'eth0'         # the router side is named to-<host>

_count = itertools.count()
_live = set()


def addr(host, family):
    """Address of a host on its link to the router (router: the peer link)."""
    if host == 'router':
        v4, v6 = NETS['peer']
        return f'{v4}.1' if family == 4 else f'{v6}:1'
    v4, v6 = NETS[host]
    return f'{v4}.2' if family == 4 else f'{v6}:2'


def hostport(address, port):
    """ADDR:PORT as tcpcp-traffic takes it: IPv6 in brackets."""
    if ipaddress.ip_address(address).version == 6:
        return f'[{address}]:{port}'
    return f'{address}:{port}'


# segment=True: origin and dest share one L2 segment with the router (a
# bridge there), and ipX sits on eth0 of both; the router reaches ipX
# on-link, so the neighbour entry decides who gets it (gratuitous ARP /
# unsolicited NA model).
SEGMENT = ('10.77.4', 'fd77:4:')
SEGMENT_HOST = {'origin': 2, 'dest': 3}
BRIDGE = 'br0'


def mac(host):
    """Fixed MACs on the shared segment, so tests can name them."""
    return f'02:77:00:00:00:{SEGMENT_HOST[host]:02x}'


class Topology:
    def __init__(self, segment=False):
        self.segment = segment
        prefix = f'tcpcp-{os.getpid()}-{next(_count)}-'
        self.ns = {h: prefix + h for h in HOSTS}
        self.procs = []
        self._created = []
        _live.add(self)
        try:
            self._build()
        except BaseException:
            self.cleanup()
            raise

    # ---- running things in a namespace ----

    def cmd(self, host, *argv):
        return ['ip', 'netns', 'exec', self.ns[host], *map(str, argv)]

    def nsenter(self, host, *argv):
        """Only the network namespace, unlike `ip netns exec`, whose
        private mount namespace makes CRIU's dump fail (\"unreachable
        sharing\"): for CRIU and the processes it dumps."""
        return ['nsenter', f'--net=/run/netns/{self.ns[host]}', *map(str, argv)]

    def run(self, host, *argv, check=True, timeout=60, **kw):
        r = subprocess.run(self.cmd(host, *argv), capture_output=True, text=True,
                           timeout=timeout, env=build.env(), **kw)
        if check and r.returncode:
            raise AssertionError(f'{host}: {" ".join(map(str, argv))}: exit {r.returncode}: '
                                 f'{r.stderr.strip()}')
        return r

    def popen(self, host, *argv, **kw):
        """A long-running process; `ip netns exec` execs, so .pid is its own."""
        kw.setdefault('env', build.env())
        p = subprocess.Popen(self.cmd(host, *argv), **kw)
        self.procs.append(p)
        return p

    def sysctl(self, host, key, value):
        self.run(host, 'sysctl', '-qw', f'{key}={value}')

    def tcp_options(self, host, timestamps=True, sack=True, window_scaling=True):
        """What this host offers in its SYN (peer: decides the connection)."""
        self.sysctl(host, 'net.ipv4.tcp_timestamps', int(timestamps))
        self.sysctl(host, 'net.ipv4.tcp_sack', int(sack))
        self.sysctl(host, 'net.ipv4.tcp_window_scaling', int(window_scaling))

    # ---- topology ----

    def ipx(self, family):
        return IPX[family]

    def addr(self, host, family):
        if self.segment and host in SEGMENT_HOST:
            v4, v6 = SEGMENT
            n = SEGMENT_HOST[host]
            return f'{v4}.{n}' if family == 4 else f'{v6}:{n}'
        return addr(host, family)

    def switch_to(self, host):
        """Route ipX to origin or dest, as a load balancer would."""
        if self.segment:
            for v, ip in ((4, IPX[4]), (6, IPX[6])):
                self.run('router', 'ip', f'-{v}', 'neigh', 'replace', ip, 'lladdr', mac(host),
                         'dev', BRIDGE, 'nud', 'reachable')
            return
        self.run('router', 'ip', 'route', 'replace', f'{IPX[4]}/32',
                 'via', addr(host, 4))
        self.run('router', 'ip', '-6', 'route', 'replace', f'{IPX[6]}/128',
                 'via', addr(host, 6))

    def _build(self):
        for h in HOSTS:
            subprocess.run(['ip', 'netns', 'add', self.ns[h]], check=True)
            self._created.append(self.ns[h])
            # Before any link exists, so every new interface inherits it.
            self.sysctl(h, 'net.ipv6.conf.all.accept_dad', 0)
            self.sysctl(h, 'net.ipv6.conf.default.accept_dad', 0)
            self.run(h, 'ip', 'link', 'set', 'lo', 'up')
        for h in NETS:
            if self.segment and h in SEGMENT_HOST:
                self._segment_link(h)
            else:
                self._link(h)
        self.sysctl('router', 'net.ipv4.ip_forward', 1)
        self.sysctl('router', 'net.ipv6.conf.all.forwarding', 1)
        # After a switch, ipX arrives from dest: no reverse-path check.
        self.sysctl('router', 'net.ipv4.conf.all.rp_filter', 0)
        self.sysctl('router', 'net.ipv4.conf.default.rp_filter', 0)
        ipx_dev = IFNAME if self.segment else 'lo'
        for h in ('origin', 'dest'):
            self.run(h, 'ip', 'addr', 'add', f'{IPX[4]}/32', 'dev', ipx_dev)
            self.run(h, 'ip', 'addr', 'add', f'{IPX[6]}/128', 'dev', ipx_dev, 'nodad')
        if self.segment:
            self.run('router', 'ip', 'route', 'add', f'{IPX[4]}/32', 'dev', BRIDGE)
            self.run('router', 'ip', '-6', 'route', 'add', f'{IPX[6]}/128', 'dev', BRIDGE)
        self.switch_to('origin')

    def _link(self, h):
        v4, v6 = NETS[h]
        rif = f'to-{h}'
        # Created from inside the router: neither end ever exists in the
        # host namespace.
        self.run('router', 'ip', 'link', 'add', rif, 'type', 'veth',
                 'peer', 'name', IFNAME, 'netns', self.ns[h])
        for host, dev, n in (('router', rif, 1), (h, IFNAME, 2)):
            self.run(host, 'ip', 'addr', 'add', f'{v4}.{n}/24', 'dev', dev)
            self.run(host, 'ip', 'addr', 'add', f'{v6}:{n}/64', 'dev', dev, 'nodad')
            self.run(host, 'ip', 'link', 'set', dev, 'up')
        self.run(h, 'ip', 'route', 'add', 'default', 'via', f'{v4}.1')
        self.run(h, 'ip', '-6', 'route', 'add', 'default', 'via', f'{v6}:1')

    def _segment_link(self, h):
        v4, v6 = SEGMENT
        if not self._bridge_up():
            self.run('router', 'ip', 'link', 'add', BRIDGE, 'type', 'bridge')
            self.run('router', 'ip', 'addr', 'add', f'{v4}.1/24', 'dev', BRIDGE)
            self.run('router', 'ip', 'addr', 'add', f'{v6}:1/64', 'dev', BRIDGE, 'nodad')
            self.run('router', 'ip', 'link', 'set', BRIDGE, 'up')
        rif = f'to-{h}'
        self.run('router', 'ip', 'link', 'add', rif, 'type', 'veth',
                 'peer', 'name', IFNAME, 'netns', self.ns[h])
        self.run('router', 'ip', 'link', 'set', rif, 'master', BRIDGE, 'up')
        n = SEGMENT_HOST[h]
        self.run(h, 'ip', 'link', 'set', IFNAME, 'address', mac(h))
        self.run(h, 'ip', 'addr', 'add', f'{v4}.{n}/24', 'dev', IFNAME)
        self.run(h, 'ip', 'addr', 'add', f'{v6}:{n}/64', 'dev', IFNAME, 'nodad')
        self.run(h, 'ip', 'link', 'set', IFNAME, 'up')
        self.run(h, 'ip', 'route', 'add', 'default', 'via', f'{v4}.1')
        self.run(h, 'ip', '-6', 'route', 'add', 'default', 'via', f'{v6}:1')

    def _bridge_up(self):
        return self.run('router', 'ip', 'link', 'show', BRIDGE, check=False).returncode == 0

    # ---- cleanup ----

    def cleanup(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            try:
                p.communicate(timeout=10)
            except (subprocess.TimeoutExpired, ValueError, OSError):
                pass
        self.procs = []
        for name in self._created:
            self._kill_inside(name)
            self._flush_gate(name)
        for name in reversed(self._created):
            subprocess.run(['ip', 'netns', 'del', name], stderr=subprocess.DEVNULL)
        self._created = []
        _live.discard(self)

    @staticmethod
    def _flush_gate(name):
        """tcpcp's BPF gate is pinned outside the namespace and holds it:
        a lingering entry would keep a deleted namespace alive."""
        subprocess.run(['nsenter', f'--net=/run/netns/{name}', build.tcpcp(), 'gate', 'flush'],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=build.env(),
                       timeout=30)

    @staticmethod
    def _kill_inside(name):
        """Anything still in our namespace is ours (a forked child)."""
        for _ in range(50):
            r = subprocess.run(['ip', 'netns', 'pids', name], capture_output=True,
                               text=True)
            pids = [int(p) for p in r.stdout.split()]
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)


def _cleanup_all():
    for t in list(_live):
        t.cleanup()


atexit.register(_cleanup_all)
