# SPDX-License-Identifier: GPL-2.0-or-later
"""One command: every subcommand of tcpcp answers --help on stdout with
exit 0, tcpcp --version says the version, and tcpcp-pass / tcpcp-passd
are the same program under their own names."""
import re
import subprocess
from pathlib import Path

import pytest

from lib import build

COMMANDS = ['get', 'release', 'close', 'create', 'activate', 'show', 'edit', 'gate', 'probe',
            'pass', 'passd', 'standby']


def run(*argv):
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                          env=build.env(), timeout=10)


@pytest.mark.parametrize('cmd', COMMANDS)
def test_help(cmd):
    r = run(build.tcpcp(), cmd, '--help')
    assert r.returncode == 0, r.stderr
    assert cmd in r.stdout.splitlines()[0].split(), r.stdout
    assert not r.stderr


@pytest.mark.parametrize('action', ['close', 'flush', 'status', 'setup', 'unload'])
def test_help_of_gate_actions(action):
    """`tcpcp gate close --help` prints the usage, not "cannot open image
    --help"; no action is taken."""
    r = run(build.tcpcp(), 'gate', action, '--help')
    assert r.returncode == 0, r.stderr
    assert 'tcpcp gate close' in r.stdout and not r.stderr


def test_every_command_listed():
    r = run(build.tcpcp(), '--help')
    assert r.returncode == 0
    listed = set(re.findall(r'^  ([a-z]+) ', r.stdout, re.M))
    assert listed == set(COMMANDS)


def test_version():
    r = run(build.tcpcp(), '--version')
    assert r.returncode == 0 and re.fullmatch(r'tcpcp \d+\.\d+\.\d+\n', r.stdout), r


@pytest.mark.parametrize('name', ['tcpcp-pass', 'tcpcp-passd', 'tcpcp-standby'])
def test_own_names(name):
    path = Path(build.build_dir()) / name
    assert path.resolve() == Path(build.tcpcp()).resolve()
    r = run(path, '--help')
    assert r.returncode == 0 and r.stdout.startswith(f'usage: tcpcp {name[6:]} '), r
    r = run(path, '--no-such-option')
    assert r.returncode == 2 and name in r.stderr


def test_unknown_command():
    r = run(build.tcpcp(), 'frobnicate')
    assert r.returncode == 2 and "unknown command 'frobnicate'" in r.stderr
