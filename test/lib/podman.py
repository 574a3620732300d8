# SPDX-License-Identifier: GPL-2.0-or-later
"""Containers run by podman (Debian 12's 4.3.1, with runc), as root.

Each "host" of a test is a podman of its own: its storage (vfs: no
overlay mounts to leave behind), run root and events under the test's
directory, so host B knows nothing of host A's container but what the
exported checkpoint carries.  podman runs runc, which runs the criu in
PATH with the plugin from CRIU's plugin directory and the options of the
file named by the org.criu.config annotation (plugin/criu.conf).

Two things of this machine kind, not of tcpcp, are worked around here:
- podman raises RLIMIT_NOFILE and RLIMIT_NPROC in the container to
  values above what a root without CAP_SYS_RESOURCE may set ("error
  setting rlimit type 7: operation not permitted"): the containers get
  explicit, lower --ulimit values.
- podman runs runc with an environment of its own, so CRIU_FAULT (needed
  where debug-register traps never fire: lib/criu.py) would not reach
  CRIU; runc's --criu flag names a wrapper that sets it and runs the criu
  in PATH.
"""
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from .criu import criu_env
from .runc import CRIU_CONF

IMAGE = 'localhost/tcpcp-busybox'


def available():
    if not shutil.which('podman'):
        return 'podman is not installed (scripts/install-deps.sh installs it)'
    if not shutil.which('runc'):
        return 'runc is not installed'
    return None


class Podman:
    def __init__(self, tmp, name):
        self.dir = tmp / f'podman-{name}'
        self.dir.mkdir()
        # podman refuses a run root longer than 50 characters.
        self.short = Path(tempfile.mkdtemp(prefix='tcpcp-pm-'))
        self.names = []
        wrapper = self.dir / 'criu'
        fault = criu_env().get('CRIU_FAULT', '')
        wrapper.write_text('#!/bin/sh\n'
                           f'[ -n "{fault}" ] && export CRIU_FAULT={fault}\n'
                           'exec criu "$@"\n')
        wrapper.chmod(0o755)
        self.base = ['podman', '--root', str(self.dir / 'storage'),
                     '--runroot', str(self.short / 'run'), '--tmpdir', str(self.short / 'tmp'),
                     '--storage-driver', 'vfs',
                     '--cgroup-manager', 'cgroupfs', '--events-backend', 'file',
                     '--runtime', shutil.which('runc'),
                     '--runtime-flag', f'criu={wrapper}']

    def run(self, *args, check=True, timeout=180, stdin=None):
        r = subprocess.run([*self.base, *map(str, args)], capture_output=True, text=True,
                           timeout=timeout, stdin=stdin, env=criu_env())
        if check and r.returncode:
            raise AssertionError(f'podman {" ".join(map(str, args))}: exit {r.returncode}: '
                                 f'{r.stderr.strip()}')
        return r

    def import_rootfs(self, rootfs):
        tar = subprocess.Popen(['tar', '-C', str(rootfs), '-c', '.'], stdout=subprocess.PIPE)
        try:
            self.run('import', '-', IMAGE, stdin=tar.stdout)
        finally:
            tar.stdout.close()
            tar.wait()

    def copy_image_to(self, other, tar):
        """The very image (same ID) on another host, as a registry would
        give it: a restore looks the image up by its ID."""
        self.run('save', '-o', tar, IMAGE)
        other.run('load', '-i', tar)

    def start(self, name, netns, *cmd, conf=CRIU_CONF):
        self.names.append(name)
        self.run('run', '-d', '--name', name, '--network', f'ns:/run/netns/{netns}',
                 '--annotation', f'org.criu.config={conf}',
                 '--ulimit', 'nofile=4096:4096', '--ulimit', 'nproc=4096:4096', IMAGE, *cmd)

    def checkpoint(self, name, export):
        """`podman container checkpoint --tcp-established --export`, as a
        user types it; CRIU's log comes back in .log."""
        r = self.run('container', 'checkpoint', '--tcp-established', '--keep', '--export',
                     export, name, check=False)
        r.log = self.criu_log(name, 'dump.log')
        assert r.returncode == 0, f'podman checkpoint: {r.stderr}\n{r.log[-3000:]}'
        return r

    def restore(self, name, export):
        self.names.append(name)
        r = self.run('container', 'restore', '--tcp-established', '--keep', '--import',
                     export, check=False)
        r.log = self.criu_log(name, 'restore.log')
        assert r.returncode == 0, f'podman restore: {r.stderr}\n{r.log[-3000:]}'
        return r

    def criu_log(self, name, log):
        r = self.run('inspect', name, check=False)
        if r.returncode:
            return ''
        info = json.loads(r.stdout)[0]
        for d in (info.get('StaticDir'), os.path.dirname(info.get('ConmonPidFile') or '')):
            if d and os.path.exists(os.path.join(d, log)):
                with open(os.path.join(d, log)) as f:
                    return f.read()
        return ''

    def cleanup(self):
        for name in self.names:
            self.run('rm', '-f', '-t', '0', name, check=False)
        self.names = []
        # Give conmon a moment to go with its container.
        time.sleep(0.2)
        shutil.rmtree(self.short, ignore_errors=True)
