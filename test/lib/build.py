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


def ctypes_env():
    """Environment for a Python process that loads our libtcpcp.so with
    ctypes: a sanitized build needs its runtime first in the process,
    and the interpreter's own allocations are not ours to report."""
    e = env()
    lib = build_dir() / 'libtcpcp.so'
    r = subprocess.run(['ldd', str(lib)], capture_output=True, text=True)
    asan = [line.split('=>')[1].split()[0] for line in r.stdout.splitlines()
            if 'libasan' in line and '=>' in line]
    if asan:
        e['LD_PRELOAD'] = asan[0]
        e['ASAN_OPTIONS'] = 'detect_leaks=0'
    return e
