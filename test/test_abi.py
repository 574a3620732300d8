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


GROWTH = r"""
import ctypes, os, sys
lib = ctypes.CDLL(sys.argv[1], use_errno=True)
lib.tcpcp_strerror.restype = ctypes.c_char_p
img = b'not an image'
def create(opts):
    r = lib.tcpcp_create_ex(img, len(img), opts)
    return r, ctypes.get_errno(), lib.tcpcp_strerror().decode()
def opts(size, total=64, tail=0):
    b = bytearray(total)
    b[:8] = size.to_bytes(8, 'little')
    if tail:
        b[total - 1] = tail
    return ctypes.create_string_buffer(bytes(b), total)
for name, o in [('unset', opts(0)), ('older', opts(8)),
                ('newer-zero', opts(64)), ('newer-set', opts(64, tail=1))]:
    r, e, msg = create(o)
    print(name, r, os.strerror(e), '|', msg)
"""


def test_option_structs_grow():
    """.size unset is refused by name; an older program's shorter struct
    and a newer one's longer struct with zero tail reach the image check;
    a newer one that sets a member this library lacks gets E2BIG."""
    r = subprocess.run(['python3', '-c', GROWTH, str(build.build_dir() / 'libtcpcp.so')],
                       capture_output=True, text=True, env=build.ctypes_env(), timeout=30)
    assert r.returncode == 0, r.stderr
    out = dict(line.split(' ', 1) for line in r.stdout.splitlines())
    assert out['unset'].startswith('-1 Invalid argument') and '.size 0' in out['unset']
    for name in ('older', 'newer-zero'):
        assert 'ICI' in out[name] or 'image' in out[name], out[name]
        assert '.size' not in out[name] and 'members' not in out[name]
    assert out['newer-set'].startswith('-1 Argument list too long'), out['newer-set']
    assert 'does not know' in out['newer-set']


def test_tools_use_the_public_header_only():
    """The command, the daemons, the demos and the CRIU plugin are built
    on include/tcpcp.h (and the generated ICI header) alone: nothing
    outside lib/ includes its internal header or sees its folder.  (The
    fuzz targets test lib's internal parsers and are the exception.)"""
    users = [p for d in ('tools', 'passd', 'demo', 'plugin', 'bench')
             for p in sorted((REPO / d).glob('*.[ch]'))]
    assert len(users) > 20, 'the checker found no sources'
    bad = [str(p.relative_to(REPO)) for p in users
           if re.search(r'#\s*include\s*[<"](\.\./)*(lib/)?internal\.h[>"]', p.read_text())]
    assert not bad, f'include lib/internal.h: {bad}'
    rules = (REPO / 'Makefile').read_text()
    assert not re.search(r'^\$\(O\)/(plugin|tools|passd|demo)/.*\n(\t.*\n)*\t.*-Ilib\b', rules,
                         re.M), 'a tool is compiled with -Ilib'
