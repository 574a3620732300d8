# SPDX-License-Identifier: GPL-2.0-or-later
"""The plugin's descriptor must pass the checks of the CRIU it needs: 4.x
(CHECKPOINT_DEVICES, hook 11, exists since 4.0; --network-lock skip since
3.19).  CRIU's loader refuses a plugin whose version is newer than its own
or that has more hook slots than it knows, and chains every slot below
max_hooks that is set.  The plugin is built against Debian 12's
criu-plugin.h (3.17: ten hooks, no CHECKPOINT_DEVICES), so it declares the
two newer hook numbers itself: they must be CRIU 4.1.1's, and the older
ones must not have moved."""
import ctypes
import os
import re
from pathlib import Path

import pytest

from lib import build
from lib.criu import asan_build

DEBIAN_HEADER = Path('/usr/include/criu/criu-plugin.h')
# CRIU 4.1.1's criu/include/criu-plugin.h (scripts/criu/install-criu.sh
# installs it beside the binary).
CRIU_4_HEADER = Path('/opt/tcpcp-criu/include/criu/criu-plugin.h')
HOOKS_4_1_1 = {'RESUME_DEVICES_LATE': 9, 'PAUSE_DEVICES': 10, 'CHECKPOINT_DEVICES': 11}
MAX_HOOKS_4_1_1 = 12


class Desc(ctypes.Structure):
    _fields_ = [('name', ctypes.c_char_p), ('init', ctypes.c_void_p),
                ('exit', ctypes.c_void_p), ('version', ctypes.c_uint),
                ('max_hooks', ctypes.c_uint), ('hooks', ctypes.c_void_p * MAX_HOOKS_4_1_1)]


def hook_numbers(header):
    text = header.read_text()
    enum = text[text.index('CR_PLUGIN_HOOK__DUMP_UNIX_SK'):text.index('CR_PLUGIN_HOOK__MAX')]
    return {m[1]: int(m[2]) for m in re.finditer(r'CR_PLUGIN_HOOK__(\w+)\s*=\s*(\d+)', enum)}


def header_version(header):
    text = header.read_text()
    v = {k: int(re.search(rf'#define CRIU_PLUGIN_VERSION_{k}\s+(\d+)', text).group(1))
         for k in ('MAJOR', 'MINOR', 'SUBLEVEL')}
    return (v['MAJOR'] << 16) + (v['MINOR'] << 8) + v['SUBLEVEL']


def test_hook_numbers_match_criu_4():
    old = hook_numbers(DEBIAN_HEADER)
    assert len(old) == 10, f"{DEBIAN_HEADER} is not CRIU 3.17's ({len(old)} hooks)"
    assert old['RESUME_DEVICES_LATE'] == HOOKS_4_1_1['RESUME_DEVICES_LATE']
    if not CRIU_4_HEADER.exists():
        pytest.skip(f'{CRIU_4_HEADER} not installed (scripts/criu/install-criu.sh)')
    new = hook_numbers(CRIU_4_HEADER)
    assert {k: new[k] for k in HOOKS_4_1_1} == HOOKS_4_1_1, new
    assert len(new) == MAX_HOOKS_4_1_1, new
    assert all(new[k] == v for k, v in old.items()), 'CRIU 4 renumbered a 3.17 hook'


@pytest.mark.skipif(asan_build(), reason='an ASan .so cannot be loaded into python')
def test_descriptor_fits_criu_4():
    so = build.build_dir() / 'criu-plugin' / 'tcpcp_plugin.so'
    assert [p.name for p in so.parent.iterdir()] == ['tcpcp_plugin.so'], \
        'criu --lib loads every .so of the folder: it must hold the plugin alone'
    # Lazy: print_on_level and criu_get_image_dir come from the criu binary.
    lib = ctypes.CDLL(str(so), mode=os.RTLD_LAZY | os.RTLD_LOCAL)
    d = Desc.in_dll(lib, 'CR_PLUGIN_DESC')
    assert d.name == b'tcpcp'
    assert d.version <= header_version(DEBIAN_HEADER), hex(d.version)
    assert d.max_hooks == MAX_HOOKS_4_1_1, d.max_hooks
    assert d.init and d.exit
    hooks = {i for i in range(MAX_HOOKS_4_1_1) if d.hooks[i]}
    assert hooks == {HOOKS_4_1_1['RESUME_DEVICES_LATE'], HOOKS_4_1_1['CHECKPOINT_DEVICES']}, hooks
