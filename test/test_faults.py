# SPDX-License-Identifier: GPL-2.0-or-later
"""Things that go wrong in the middle of a pass, and what tcpcp promises.

- The origin process dies after its ICI was taken: the image is all the
  connection needs, the pass completes, the peer notices nothing.
- The peer closes (FIN) while the connection is isolated: the FIN is held
  back at the origin, retransmitted by the peer, and reaches the
  destination after every byte; both streams end intact.
- The peer resets (RST) while isolated: the destination's application
  gets the reset, as the origin's would have; nothing else is sent to
  the peer in the origin's name.
"""
import time

from lib import cli
from lib.capture import RST, connection, fins, sent_by
from lib.stream import MB, PORT, Stream
from lib.traffic import read_state, wait_for


def test_origin_killed_after_get(topo, tmp_path):
    s = Stream(topo, tmp_path, 4, 3 * MB)
    time.sleep(1)
    img = s.take()
    s.server.proc.kill()
    s.server.wait()
    # Its socket went away in repair mode: silently, and the gate stays
    # so that the peer's retransmissions are not answered with a RST.
    assert cli.gate_entries(topo, 'origin') == 1
    time.sleep(0.5)
    dest = s.create('dest', img, '--activate')
    topo.switch_to('dest')
    s.server, s.host, s.state = dest, 'dest', dest.state_out
    s.finish()


def test_peer_fin_while_isolated(topo, tmp_path):
    """The peer sends its last byte and FIN during the pass."""
    nbytes = 3 * MB // 2
    s = Stream(topo, tmp_path, 4, nbytes, rate=None,
               peer_args=('--rate', '1M'), origin_args=('--rate', '256K'),
               dest_args=('--rate', '256K'))
    time.sleep(0.8)
    img = s.take()
    assert cli.show(img)['recvq_len'] < nbytes
    time.sleep(1.5)         # the peer is done sending: its FIN is held at the gate
    dest = s.create('dest', img, '--activate')
    s.hand_over(dest, 'dest', close=True)
    pkts = s.finish()
    peer = [p for p in pkts if p.dst == s.ipx][0]
    first_fin = fins(sent_by(pkts, (peer.src, peer.sport)))[0]
    assert first_fin.ts > cli.show(img)['capture_realtime_ns'] / 1e9, \
        'the peer closed before the pass: this test did not test anything'


def test_peer_reset_while_isolated(topo, tmp_path):
    # The peer stops reading, so killing it makes its kernel send a RST.
    s = Stream(topo, tmp_path, 4, 8 * MB, peer_args=('--read-stall', '512K:60000'))
    wait_for(lambda: cli.tcp_socket(topo, 'peer', s.peer.pid)['recvq'] > 0, 5,
             'unread data at the peer')
    img = s.take()
    s.peer.proc.kill()
    s.peer.wait()
    time.sleep(0.3)
    dest = s.create('dest', img, '--activate')
    topo.switch_to('dest')
    cli.close(topo, 'origin', s.server.pid, s.fd)
    s.server.terminate()
    st = read_state(s.state)
    res = s.server.expect('taken')
    assert (res['tx'], res['rx']) == (st['tx'], st['rx'])
    assert dest.wait() == 4, dest.describe()
    assert 'connection reset' in dest.err, dest.describe()
    pkts = connection(s.cap.stop(), (s.ipx, PORT))
    from_ipx = sent_by(pkts, (s.ipx, PORT))
    assert not [p for p in from_ipx if p.flags & RST], 'a RST went out in the origin\'s name'
