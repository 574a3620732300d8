# SPDX-License-Identifier: GPL-2.0-or-later
"""The plugin's descriptor must pass the checks of every CRIU we claim:
Debian 12's 3.17.1 (which cannot run on recent kernels, so it cannot be
asked directly) and 4.x.  CRIU's loader refuses a plugin whose version is
newer than its own or that has more hook slots than it knows; 4.x accepts
fewer.  The limits are read from Debian's installed criu-plugin.h."""
import ctypes
import os
import re
from pathlib import Path

import pytest

from lib import build
from lib.criu import asan_build

HEADER = Path('/usr/include/criu/criu-plugin.h')


class Desc(ctypes.Structure):
    _fields_ = [('name', ctypes.c_char_p), ('init', ctypes.c_void_p),
                ('exit', ctypes.c_void_p), ('version', ctypes.c_uint),
                ('max_hooks', ctypes.c_uint)]


def header_limits():
    text = HEADER.read_text()
    enum = text[text.index('CR_PLUGIN_HOOK__DUMP_UNIX_SK'):text.index('CR_PLUGIN_HOOK__MAX')]
    hooks = len(re.findall(r'CR_PLUGIN_HOOK__\w+\s*=\s*\d+', enum))
    v = {k: int(re.search(rf'#define CRIU_PLUGIN_VERSION_{k}\s+(\d+)', text).group(1))
         for k in ('MAJOR', 'MINOR', 'SUBLEVEL')}
    return hooks, (v['MAJOR'] << 16) + (v['MINOR'] << 8) + v['SUBLEVEL']


@pytest.mark.skipif(asan_build(), reason='an ASan .so cannot be loaded into python')
def test_descriptor_fits_criu_3_17():
    so = build.build_dir() / 'criu-plugin' / 'tcpcp_plugin.so'
    assert [p.name for p in so.parent.iterdir()] == ['tcpcp_plugin.so'], \
        'criu --lib loads every .so of the folder: it must hold the plugin alone'
    # Lazy: print_on_level and criu_get_image_dir come from the criu binary.
    lib = ctypes.CDLL(str(so), mode=os.RTLD_LAZY | os.RTLD_LOCAL)
    d = Desc.in_dll(lib, 'CR_PLUGIN_DESC')
    hooks, version = header_limits()
    assert hooks == 10, f'{HEADER} is not CRIU 3.17\'s ({hooks} hooks)'
    assert d.name == b'tcpcp'
    assert d.version <= version and d.max_hooks <= hooks, (d.version, d.max_hooks)
    assert d.init and d.exit
