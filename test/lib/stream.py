# SPDX-License-Identifier: GPL-2.0-or-later
"""A peer's stream to ipX:PORT and the moves of its serving end.

The peer talks to ipX:PORT; the router first sends ipX to origin.  A pass
takes the origin's socket with `tcpcp get`, recreates it at dest with
`tcpcp create --activate -- tcpcp-traffic --fd 3 --state ...`, moves ipX
to dest at the router and stops the origin process.  The stream must end
exactly as if nothing had happened: both ends verify every byte and their
hashes must agree, and the peer must never see a RST, an early FIN or
TSval going back.

The route moves only after the destination socket exists: in between, a
retransmission from the peer would otherwise reach a host with ipX but no
socket, and its RST would end the connection.
"""
from . import cli
from .capture import (Capture, assert_fin_after_data, assert_no_rst, connection,
                      tsval_never_backwards)
from .netns import hostport
from .traffic import Traffic, assert_hashes_match, read_state, wait_file

PORT = 5001
NEW_PORT = 6001             # bound:PORT mode
MB = 1 << 20
SEED_PEER, SEED_SERVER = 22, 11


class Stream:
    """The peer's connection to ipX:PORT and the process serving it."""

    def __init__(self, topo, tmp, family, nbytes, rate='1M', peer_args=(),
                 origin_args=(), dest_args=(), peer_bytes=None, port=PORT):
        """nbytes each way, or nbytes from the service and peer_bytes
        from the peer."""
        self.topo, self.tmp, self.family = topo, tmp, family
        self.nbytes, self.rate = nbytes, rate
        self.peer_bytes = nbytes if peer_bytes is None else peer_bytes
        to_peer = ('--tx-bytes', nbytes, '--rx-bytes', self.peer_bytes)
        from_peer = ('--tx-bytes', self.peer_bytes, '--rx-bytes', nbytes)
        self.ipx = topo.ipx(family)
        self.port = port
        self.taken = 0
        self.dest_args = dest_args
        self.cap = Capture(topo, 'peer', tmp / 'peer.pcap').start()
        self.host = 'origin'
        self.state = tmp / 'origin.state'
        self.server = Traffic(topo, 'origin', '--listen', hostport(self.ipx, self.port),
                              *to_peer, '--tx-seed', SEED_SERVER,
                              '--rx-seed', SEED_PEER, '--state-out', self.state,
                              *self._rate(), *origin_args)
        cli.wait_listening(topo, 'origin', self.port)
        ready = tmp / 'peer.ready'
        self.peer = Traffic(topo, 'peer', '--connect', hostport(self.ipx, self.port),
                            *from_peer, '--tx-seed', SEED_PEER,
                            '--rx-seed', SEED_SERVER, '--ready', ready,
                            *self._rate(), *peer_args)
        wait_file(ready)
        self.fd = None

    def _rate(self):
        return ('--rate', self.rate) if self.rate else ()

    def take(self, state='established'):
        """`tcpcp get` on the serving host once its end is in state (an
        ss name); returns the image."""
        assert self.server.running(), f'stream over before the pass\n{self.server.describe()}'
        sock = cli.tcp_socket(self.topo, self.host, self.server.pid, state=state)
        self.fd = sock['fd']
        img = self.tmp / f'ici{self.taken}.img'
        self.taken += 1
        cli.get(self.topo, self.host, self.server.pid, self.fd, img)
        wait_file(self.state)
        return img

    def create(self, host, img, *opts, state_in=None):
        """`tcpcp create IMG OPTS -- tcpcp-traffic --fd 3 ...` at host."""
        state_out = self.tmp / f'{host}.{self.taken}.state'
        t = Traffic(self.topo, host, '--fd', 3, '--state', state_in or self.state,
                    '--state-out', state_out, *self._rate(), *self.dest_args,
                    prefix=cli.create_prefix(img, *opts))
        t.state_out = state_out
        t.started()
        return t

    def hand_over(self, new, host, close=False):
        """The route moves to host, the old process goes (silently)."""
        self.topo.switch_to(host)
        if close:
            cli.close(self.topo, self.host, self.server.pid, self.fd)
        old, state = self.server, read_state(self.state)
        old.terminate()
        res = old.expect('taken')
        assert (res['tx'], res['rx']) == (state['tx'], state['rx'])
        self.server, self.host, self.state = new, host, new.state_out

    def finish(self, tsval_regressions=None):
        """Both streams intact, and the peer's view clean.  TSval: by
        default no step back beyond 10 ms of reordering; a caller may give
        its own rule, tsval_regressions(pkts, src) -> offending pairs."""
        try:
            a = self.peer.expect()
        except AssertionError as e:
            # The other end's story is usually the cause.
            self.server.wait(10)
            raise AssertionError(f'{e}\nserver: {self.server.describe()}') from None
        b = self.server.expect()
        assert (a['tx'], a['rx']) == (self.peer_bytes, self.nbytes)
        assert_hashes_match(a, b)
        pkts = connection(self.cap.stop(), (self.ipx, self.port))
        assert_no_rst(pkts)
        assert_fin_after_data(pkts, (self.ipx, self.port), self.nbytes)
        peer = [p for p in pkts if p.dst == self.ipx][0]
        assert_fin_after_data(pkts, (peer.src, peer.sport), self.peer_bytes)
        if tsval_regressions is None:
            assert tsval_never_backwards(pkts, (self.ipx, self.port)), 'TSval from ipX went back'
        else:
            bad = tsval_regressions(pkts, (self.ipx, self.port))
            assert not bad, 'TSval from ipX went back:\n' + \
                '\n'.join(f'{x}\n{y}' for x, y in bad)
        return pkts


def simple_pass(s, *create_opts):
    img = s.take()
    dest = s.create('dest', img, '--activate', *create_opts)
    s.hand_over(dest, 'dest')
    return img
