# SPDX-License-Identifier: GPL-2.0-or-later
"""Containers run by runc (Debian 12's 1.1.5), as a user runs them.

runc runs in the host namespace, as it normally does; each container's
network namespace is one the test made (config.json's "path"), with a veth
to its "host" (origin or dest of the topology).  The rootfs is
busybox-static.  runc keeps its state under the test's own directory
(--root), and cleanup() kills and deletes every container it started, by
id, so nothing is left in /run/runc or in the cgroup trees.

CRIU is the one in PATH (scripts/criu/install-criu.sh links it into
/usr/local/sbin), run by runc over RPC; the plugin is loaded from CRIU's
plugin directory (no --lib: runc passes none), and CRIU's options come
from the configuration file that `make install` ships (plugin/criu.conf),
named to runc by the org.criu.config annotation.
"""
import json
import shutil
import subprocess
import time
from pathlib import Path

from . import build
from .criu import criu_env

BUSYBOX = Path('/bin/busybox')
APPLETS = ('sh', 'httpd', 'wget', 'sleep', 'cat', 'nc')
CRIU_CONF = build.REPO / 'plugin' / 'criu.conf'


def available():
    """runc and a static busybox, or why not."""
    if not shutil.which('runc'):
        return 'runc is not installed (scripts/install-deps.sh installs it)'
    if not BUSYBOX.exists():
        return f'{BUSYBOX} is missing (scripts/install-deps.sh installs busybox-static)'
    r = subprocess.run(['ldd', str(BUSYBOX)], capture_output=True, text=True)
    if 'not a dynamic executable' not in r.stdout + r.stderr:
        return f'{BUSYBOX} is not busybox-static'
    return None


def add_container_netns(topo, host, name, v4='10.77.5', v6='fd77:5:'):
    """A network namespace `name` for a container of host, with a veth to
    it; ipX moves from host's lo into the container's, and host routes it
    there.  Removed by topo.cleanup() like the others."""
    ns = topo.ns['origin'].rsplit('-', 1)[0] + '-' + name
    subprocess.run(['ip', 'netns', 'add', ns], check=True)
    topo._created.append(ns)
    topo.ns[name] = ns
    topo.sysctl(name, 'net.ipv6.conf.all.accept_dad', 0)
    topo.sysctl(name, 'net.ipv6.conf.default.accept_dad', 0)
    topo.run(name, 'ip', 'link', 'set', 'lo', 'up')
    topo.run(host, 'ip', 'link', 'add', 'ct0', 'type', 'veth', 'peer', 'name', 'eth0',
             'netns', ns)
    for h, dev, n in ((host, 'ct0', 1), (name, 'eth0', 2)):
        topo.run(h, 'ip', 'addr', 'add', f'{v4}.{n}/24', 'dev', dev)
        topo.run(h, 'ip', 'addr', 'add', f'{v6}:{n}/64', 'dev', dev, 'nodad')
        topo.run(h, 'ip', 'link', 'set', dev, 'up')
    topo.run(name, 'ip', 'route', 'add', 'default', 'via', f'{v4}.1')
    topo.run(name, 'ip', '-6', 'route', 'add', 'default', 'via', f'{v6}:1')
    for f, ip, plen, via in ((4, topo.ipx(4), 32, f'{v4}.2'), (6, topo.ipx(6), 128, f'{v6}:2')):
        topo.run(host, 'ip', f'-{f}', 'addr', 'del', f'{ip}/{plen}', 'dev', 'lo')
        extra = ('nodad',) if f == 6 else ()
        topo.run(name, 'ip', f'-{f}', 'addr', 'add', f'{ip}/{plen}', 'dev', 'lo', *extra)
        topo.run(host, 'ip', f'-{f}', 'route', 'add', f'{ip}/{plen}', 'via', via)
    topo.sysctl(host, 'net.ipv4.ip_forward', 1)
    topo.sysctl(host, 'net.ipv6.conf.all.forwarding', 1)
    return ns


def make_rootfs(root):
    for d in ('bin', 'proc', 'dev', 'sys', 'tmp', 'www', 'data'):
        (root / d).mkdir(parents=True, exist_ok=True)
    shutil.copy(BUSYBOX, root / 'bin' / 'busybox')
    for a in APPLETS:
        (root / 'bin' / a).symlink_to('busybox')


class Runc:
    def __init__(self, tmp):
        self.tmp = tmp
        self.root = tmp / 'runc-state'
        self.ids = []
        self.n = 0

    def run(self, *args, check=True, timeout=120):
        r = subprocess.run(['runc', '--root', str(self.root), *map(str, args)],
                           capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL, env=criu_env())
        if check and r.returncode:
            raise AssertionError(f'runc {" ".join(map(str, args))}: exit {r.returncode}: '
                                 f'{r.stderr.strip()}')
        return r

    def bundle(self, path, args, netns, conf=CRIU_CONF):
        """A bundle at path: busybox rootfs, `args` run with stdio on the
        container's own /dev/null, in the network namespace netns."""
        make_rootfs(path / 'rootfs')
        subprocess.run(['runc', 'spec'], cwd=path, check=True)
        self.configure(path, args, netns, conf)
        return path

    @staticmethod
    def configure(path, args, netns, conf=CRIU_CONF):
        cfg = json.loads((path / 'config.json').read_text())
        p = cfg['process']
        p['terminal'] = False
        p['args'] = ['sh', '-c', 'exec </dev/null >/dev/null 2>&1; exec ' + args]
        cfg['root']['readonly'] = False
        cfg['hostname'] = 'tcpcp-ct'
        if conf:
            cfg.setdefault('annotations', {})['org.criu.config'] = str(conf)
        (path / 'config.json').write_text(json.dumps(cfg, indent=1))
        Runc.set_netns(path, netns)

    @staticmethod
    def set_netns(path, netns):
        cfg = json.loads((path / 'config.json').read_text())
        for ns in cfg['linux']['namespaces']:
            if ns['type'] == 'network':
                ns['path'] = f'/run/netns/{netns}'
        (path / 'config.json').write_text(json.dumps(cfg, indent=1))

    @staticmethod
    def copy(src, dst, netns):
        """The bundle as it is now (the rootfs with what the container
        wrote), for another host's network namespace: what a migration
        copies besides the images."""
        shutil.copytree(src, dst, symlinks=True)
        Runc.set_netns(dst, netns)
        return dst

    def new_id(self):
        self.n += 1
        cid = f'tcpcp-{self.tmp.name[-20:]}-{self.n}'
        self.ids.append(cid)
        return cid

    def start(self, bundle):
        cid = self.new_id()
        self.run('run', '-d', '--bundle', bundle, cid)
        return cid

    def checkpoint(self, cid, imgs, work, extra=()):
        """`runc checkpoint --tcp-established`, as a user types it."""
        r = self.run('checkpoint', '--tcp-established', '--image-path', imgs,
                     '--work-path', work, *extra, cid, check=False)
        r.log = (work / 'dump.log').read_text() if (work / 'dump.log').exists() else ''
        assert r.returncode == 0, f'runc checkpoint: {r.stderr}\n{tail(r.log)}'
        return r

    def restore(self, bundle, imgs, work):
        cid = self.new_id()
        r = self.run('restore', '-d', '--tcp-established', '--image-path', imgs,
                     '--work-path', work, '--bundle', bundle, cid, check=False)
        r.log = (work / 'restore.log').read_text() if (work / 'restore.log').exists() else ''
        assert r.returncode == 0, f'runc restore: {r.stderr}\n{tail(r.log)}'
        r.cid = cid
        return r

    def status(self, cid):
        r = self.run('state', cid, check=False)
        return json.loads(r.stdout)['status'] if r.returncode == 0 else None

    def wait_stopped(self, cid, timeout=120):
        deadline = time.monotonic() + timeout
        while self.status(cid) == 'running':
            assert time.monotonic() < deadline, f'container {cid} still running'
            time.sleep(0.1)

    def cleanup(self):
        for cid in self.ids:
            if self.status(cid) is not None:
                self.run('kill', cid, 'KILL', check=False)
                for _ in range(50):
                    if self.status(cid) != 'running':
                        break
                    time.sleep(0.1)
                self.run('delete', '-f', cid, check=False)
        self.ids = []


def tail(log, n=15):
    lines = log.splitlines()
    errs = [l for l in lines if 'Error' in l or 'tcpcp' in l]
    return '\n'.join(errs[-n:] + ['...'] + lines[-5:])
