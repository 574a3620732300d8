# SPDX-License-Identifier: GPL-2.0-or-later
"""Live passes between running hosts: tcpcp-pass at the origin talks to
tcpcp-passd at the destination over an authenticated control connection
(issue 4).  The stream checks of test_pass.py apply: both ends verify
every byte and agree on hashes, and the peer never sees a RST, an early
FIN or TSval going back.
"""
import time

import pytest

from lib import cli
from lib.passd import Passd, make_key, pass_conn, route_switch
from lib.traffic import read_state, wait_for
from test_pass import MB, Stream


class Live:
    """A Stream whose serving end moves with tcpcp-pass."""

    def __init__(self, topo, tmp, family, nbytes, rate='1M', **kw):
        self.topo, self.tmp, self.family = topo, tmp, family
        self.s = Stream(topo, tmp, family, nbytes, rate=rate, **kw)
        self.key = make_key(tmp / 'key')
        self.daemons = {}
        self.count = {}

    def passd(self, host, key=None):
        rate = ('--rate', self.s.rate) if self.s.rate else ()
        d = Passd(self.topo, host, key or self.key, self.tmp, traffic_args=rate)
        self.daemons[host] = d
        self.count[host] = 0
        return d

    def fd(self):
        return cli.tcp_socket(self.topo, self.s.host, self.s.server.pid)['fd']

    def pass_to(self, host, switch_to=None, switch_back=None, key=None, check=True):
        """Returns tcpcp-pass's (CompletedProcess, JSON)."""
        s, d = self.s, self.daemons[host]
        assert s.server.running(), 'stream over before the pass'
        switch_to = switch_to or route_switch(self.topo, host)
        switch_back = switch_back or route_switch(self.topo, s.host)
        r, res = pass_conn(self.topo, s.host, s.server.pid, self.fd(), d.addr,
                           key or self.key, state_file=s.state, switch_to=switch_to,
                           switch_back=switch_back, check=check)
        if r.returncode == 0:
            self._handed_over(host, d)
        return r, res

    def _handed_over(self, host, d):
        s = self.s
        old, state = s.server, read_state(s.state)
        old.terminate()
        res = old.expect('taken')
        assert (res['tx'], res['rx']) == (state['tx'], state['rx'])
        s.server = d.handler(self.count[host])
        self.count[host] += 1
        s.host, s.state = host, s.server.state_out

    def finish(self):
        return self.s.finish()


@pytest.mark.parametrize('family', [4, 6])
def test_live_pass_route(topo, tmp_path, family):
    """The paper's scenario: the route at the gateway moves ipX."""
    live = Live(topo, tmp_path, family, 4 * MB)
    live.passd('dest')
    time.sleep(1)
    r, res = live.pass_to('dest')
    assert res['result'] == 'passed', r.stderr
    live.finish()
