# SPDX-License-Identifier: GPL-2.0-or-later
"""Where the binaries under test are: $TCPCP_BUILD, else <repo>/build."""
import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def build_dir():
    return Path(os.environ.get('TCPCP_BUILD', REPO / 'build')).resolve()


def tcpcp():
    return str(build_dir() / 'tcpcp')


def traffic():
    return str(build_dir() / 'tcpcp-traffic')


def env():
    """Environment for children: the tools must find our libtcpcp.so."""
    e = dict(os.environ)
    paths = [str(build_dir())]
    if e.get('LD_LIBRARY_PATH'):
        paths.append(e['LD_LIBRARY_PATH'])
    e['LD_LIBRARY_PATH'] = ':'.join(paths)
    return e


def make_traffic():
    """tcpcp-traffic is ours, so the suite can (re)build it by itself."""
    subprocess.run(['make', '-s', '-C', str(REPO / 'test' / 'traffic'),
                    f'O={build_dir()}'], check=True)
