# SPDX-License-Identifier: GPL-2.0-or-later
"""The README's demos, run as a newcomer would (minus installing and
building: TCPCP_SKIP_BUILD, on this suite's build).  Each must end with
its PASS line, exit 0, and leave no namespace of its own behind."""
import os
import subprocess

import pytest

from lib import build
from lib.criu import asan_build

DEMOS = ['demo.sh', 'demo-dispatcher.sh', 'demo-criu.sh']


def demo_namespaces():
    r = subprocess.run(['ip', 'netns', 'list'], capture_output=True, text=True, check=True)
    return {ln.split()[0] for ln in r.stdout.splitlines() if ln.startswith('tcpcp-demo-')}


@pytest.mark.parametrize('demo', DEMOS)
def test_demo(demo):
    if demo == 'demo-criu.sh' and asan_build():
        pytest.skip('an ASan plugin cannot load into criu')
    before = demo_namespaces()
    env = dict(os.environ, TCPCP_SKIP_BUILD='1', TCPCP_BUILD=str(build.build_dir()))
    r = subprocess.run([str(build.REPO / 'scripts' / demo)], capture_output=True, text=True,
                       env=env, timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    assert 'PASS' in r.stdout, out[-3000:]
    assert 'FAIL' not in r.stdout, out[-3000:]
    assert demo_namespaces() <= before, 'the demo left namespaces behind'
