# SPDX-License-Identifier: GPL-2.0-or-later
"""libtcpcp.so exports exactly the functions include/tcpcp.h declares, all
under the version node TCPCP_1.0 (lib/libtcpcp.map): no generated
protobuf-c symbol, no helper, nothing the header does not promise."""
import re
import subprocess
from pathlib import Path

from lib import build

REPO = Path(__file__).resolve().parent.parent


def declared():
    text = (REPO / 'include' / 'tcpcp.h').read_text()
    text = re.sub(r'/\*.*?\*/', '', text, flags=re.S)
    return set(re.findall(r'\b(tcpcp_[a-z0-9_]+)\s*\(', text))


def exported():
    out = subprocess.run(['nm', '-D', '--defined-only', str(build.build_dir() / 'libtcpcp.so')],
                         capture_output=True, text=True, check=True).stdout
    syms = {}
    for line in out.splitlines():
        _, kind, name = line.split()
        syms[name] = kind
    return syms


def test_exports_match_header():
    syms = exported()
    assert syms.pop('TCPCP_1.0', None) == 'A', 'no version node'
    names = {n.split('@')[0] for n in syms}
    assert names == declared(), (f'exported, not declared: {sorted(names - declared())}; '
                                 f'declared, not exported: {sorted(declared() - names)}')
    assert all(n.endswith('@@TCPCP_1.0') for n in syms), sorted(syms)
    assert set(syms.values()) == {'T'}


def test_checker_sees_a_leak():
    """The comparison above would notice one generated symbol."""
    assert 'tcpcp_ici__pack' not in declared()
    assert len(declared()) > 20
