# SPDX-License-Identifier: GPL-2.0-or-later
import os
import shutil
import signal
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from lib import build, netns  # noqa: E402


def pytest_configure(config):
    # A SIGTERM'd run must still remove its namespaces: make it an exit
    # that runs atexit handlers.
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


@pytest.fixture(scope='session', autouse=True)
def traffic_binary():
    build.make_traffic()


@pytest.fixture(scope='session', autouse=True)
def gate_bpffs():
    """tcpcp's bpffs, mounted here once: the tests run tcpcp under
    `ip netns exec`, whose private mount namespace cannot."""
    subprocess.run([build.tcpcp(), 'gate', 'setup'], check=True, env=build.env())
    yield
    # The host's programs, attached nowhere once every namespace is gone;
    # refused (and left) while another user's namespace has a gate.
    subprocess.run([build.tcpcp(), 'gate', 'unload'], env=build.env(),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture
def topo():
    t = netns.Topology()
    yield t
    t.cleanup()


@pytest.fixture
def installed():
    """The CRIU plugin where CRIU loads plugins without --lib, as `make
    install` puts it (runc and podman pass no --lib); gone again
    afterwards."""
    from lib.criu import default_plugin_dir, plugin_dir
    d = default_plugin_dir()
    d.mkdir(parents=True, exist_ok=True)
    dst = d / 'tcpcp_plugin.so'
    assert not dst.exists(), f'{dst} is there already: not for this test to replace'
    shutil.copy(plugin_dir() / 'tcpcp_plugin.so', dst)
    try:
        yield dst
    finally:
        dst.unlink()
