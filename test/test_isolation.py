# SPDX-License-Identifier: GPL-2.0-or-later
"""Isolation, seen on the origin's own wire (paper section 2, step 2).

Once the ICI is taken the origin sends nothing for the connection — no
ACK, no retransmission, no queued data, no keepalive — while the peer
keeps sending; closing the isolated socket sends nothing either; and the
connection still completes from the image at the destination.
"""
import time

import pytest

from lib import cli
from lib.capture import Capture, connection, sent_by
from lib.stream import MB, PORT, Stream


@pytest.mark.parametrize('family', [4, 6])
def test_origin_silent_once_taken(topo, tmp_path, family):
    s = Stream(topo, tmp_path, family, 4 * MB)
    at_origin = Capture(topo, 'origin', tmp_path / 'origin.pcap').start()
    time.sleep(1)
    img = s.take()
    frozen = cli.show(img)['capture_realtime_ns'] / 1e9
    time.sleep(1.5)                 # the peer keeps sending and retransmitting
    cli.close(topo, 'origin', s.server.pid, s.fd)
    s.server.terminate()
    s.server.expect('taken')
    time.sleep(0.5)
    pkts = connection(at_origin.stop(), (s.ipx, PORT))
    ours = sent_by(pkts, (s.ipx, PORT))
    after = [p for p in ours if p.ts > frozen]
    assert not after, f'{len(after)} segment(s) left the isolated origin, first: {after[0]}'
    theirs = [p for p in pkts if p.ts > frozen and p.dst == s.ipx]
    assert theirs, 'the peer sent nothing while the origin was isolated: nothing was tested'
    assert [p for p in ours if p.ts <= frozen], 'the capture missed the origin before the take'
    # And the image alone still carries the connection on.
    dest = s.create('dest', img, '--activate')
    topo.switch_to('dest')
    s.server, s.host, s.state = dest, 'dest', dest.state_out
    s.finish()
